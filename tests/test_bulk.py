"""Bulk inserts store exactly what SQLAlchemy's own statements store, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select, text

from connectors.records import RecordKind
from sync.bulk import insert_ids, insert_rows
from sync.ledger import SOURCE_TABLES, IngestSeen

TABLE = SOURCE_TABLES[RecordKind.TRANSACTION].__table__  # type: ignore[attr-defined]
NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def row(external_id: str) -> dict[str, Any]:
    return {
        "system": "shop",
        "stream": "orders",
        "external_id": external_id,
        "content_hash": "0" * 32,
        "deleted": False,
        "first_seen_at": NOW,
        "updated_at": NOW,
        "customer_external_id": "C1",
        "occurred_at": datetime(2024, 3, 5, 15, 22, tzinfo=timezone(timedelta(hours=1))),
        "amount": Decimal("1234567890.1230"),
        "currency": "USD",
        "transaction_kind": "sale",
        "home_amount": Decimal("17.30"),
    }


def test_bulk_rows_are_stored_like_sqlalchemys_own(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, TABLE, [row("bulk")])
        connection.execute(insert(TABLE), [row("core")])
    columns = "occurred_at, first_seen_at, amount, home_amount, deleted"
    with engine.connect() as connection:
        stored = {
            external_id: tuple(values)
            for external_id, *values in connection.execute(
                text(f"SELECT external_id, {columns} FROM source_transaction")
            )
        }
        typed = connection.execute(
            select(TABLE.c.amount, TABLE.c.occurred_at).where(TABLE.c.external_id == "bulk")
        ).one()
    assert stored["bulk"] == stored["core"]
    assert typed == (Decimal("1234567890.1230"), datetime(2024, 3, 5, 14, 22, tzinfo=UTC))
    assert str(typed.amount) == "1234567890.1230"


def test_ids_are_inserted_as_given(engine: Engine) -> None:
    seen = IngestSeen.__table__  # type: ignore[attr-defined]
    ids = ["C1", "Zoë 😀", 'quote " and \\ backslash', "x" * 255]
    shared = {"system": "shop", "stream": "customers", "pass_id": "p1"}
    with engine.begin() as connection:
        insert_ids(connection, seen, "external_id", ids, shared)
    with engine.connect() as connection:
        stored = connection.execute(
            select(seen.c.external_id, seen.c.system, seen.c.stream, seen.c.pass_id)
        ).all()
    assert sorted(stored) == sorted((value, "shop", "customers", "p1") for value in ids)
