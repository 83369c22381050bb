"""The ledger as the metrics engine reads it (sync/frames.py), on both databases."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from connectors.records import (
    SourceCustomer,
    SourceInteraction,
    SourceReferral,
    SourceSpend,
    SourceTransaction,
    TransactionKind,
)
from sync.export import export_customers
from sync.figures import compute_figures
from sync.frames import read_frames
from sync.ledger import CustomerLink, CustomerMetrics, SourceCustomerRow
from sync.reconcile import reconcile
from tests.conftest import ingest_records

FIGURES = CustomerMetrics.__table__  # type: ignore[attr-defined]
LINK = CustomerLink.__table__  # type: ignore[attr-defined]
SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
AS_OF = datetime(2024, 7, 1, 12, tzinfo=UTC)


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


def ledger_id(engine: Engine, system: str, external_id: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(LINK.c.ledger_customer_id)
                .join(SOURCE, SOURCE.c.id == LINK.c.source_customer_id)
                .where(SOURCE.c.system == system, SOURCE.c.external_id == external_id)
            ).scalar_one()
        )


def business(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            SourceCustomer("S1", email="ann@example.com", acquisition_channel="ads"),
            SourceCustomer("S2", email="bob@example.com", labels=("Lost: price",)),
            SourceTransaction(
                "T1", "S1", at("2024-06-05"), Decimal(100), "USD", discount=Decimal(5)
            ),
            SourceTransaction(
                "T2", "S2", at("2024-06-20"), Decimal(90), "EUR", home_amount=Decimal(99)
            ),
            SourceTransaction(
                "T3",
                "S2",
                at("2024-06-21"),
                Decimal(90),
                "EUR",
                TransactionKind.REFUND,
                home_amount=Decimal(99),
            ),
            SourceReferral("R1", "S1", "S2", at("2024-06-19")),
            SourceSpend("P1", date(2024, 6, 1), "ads", Decimal(40), "USD"),
        ],
    )
    ingest_records(
        engine,
        "mail",
        [
            # Ann again (same e-mail): her notes and the support thread come from here.
            SourceCustomer("M1", email="ANN@example.com", notes="prefers phone"),
            SourceInteraction(
                "I1",
                "M1",
                at("2024-06-10"),
                "email",
                subject="Broken lid",
                support=True,
                conversation_id="c-1",
                labels=("Resolved",),
                preview="it broke",
            ),
        ],
    )
    reconcile(engine, AS_OF)


def test_frames_hold_every_kind_of_row_by_ledger_customer(engine: Engine) -> None:
    business(engine)
    ann, bob = ledger_id(engine, "shop", "S1"), ledger_id(engine, "shop", "S2")
    assert ledger_id(engine, "mail", "M1") == ann

    with engine.connect() as connection:
        frames = read_frames(connection)

    customers = {row["customer_id"]: row for row in frames.customers.iter_rows(named=True)}
    assert customers[ann] == {
        "customer_id": ann,
        "acquisition_channel": "ads",
        "notes": "prefers phone",
        "labels": [],
    }
    assert customers[bob]["labels"] == ["Lost: price"]
    assert sorted(frames.transactions.select("customer_id", "kind", "home_amount").rows()) == [
        (ann, "sale", Decimal(100)),
        (bob, "refund", Decimal(99)),
        (bob, "sale", Decimal(99)),
    ]
    assert frames.interactions.select("customer_id", "support", "labels", "text").rows() == [
        (ann, True, ["Resolved"], "Broken lid\nit broke")
    ]
    assert frames.referrals.select("referrer_id", "referred_id").rows() == [(ann, bob)]
    assert frames.spend.rows() == [(date(2024, 6, 1), "ads", Decimal(40))]

    with engine.connect() as connection:
        only_bob = read_frames(connection, [bob])
    assert only_bob.customers["customer_id"].to_list() == [bob]
    assert set(only_bob.transactions["customer_id"]) == {bob}


def test_stored_figures_combine_the_systems(engine: Engine) -> None:
    business(engine)
    compute_figures(engine, AS_OF)
    with engine.connect() as connection:
        stored: dict[int, Any] = {
            ledger: json.loads(text)
            for ledger, text in connection.execute(
                select(FIGURES.c.ledger_customer_id, FIGURES.c.values_json)
            )
        }
    ann = stored[ledger_id(engine, "shop", "S1")]
    assert (ann["support_incidents"], ann["open_incidents"], ann["cac"]) == (1, 0, "40.00")
    assert (ann["referrals_made"], ann["referred_revenue"]) == (1, "0.00")
    assert ann["acquisition_channel"] == "ads"


def test_export_as_of_a_past_date_uses_only_what_was_known_then(
    engine: Engine, tmp_path: Path
) -> None:
    business(engine)
    compute_figures(engine, AS_OF)
    ann, bob = ledger_id(engine, "shop", "S1"), ledger_id(engine, "shop", "S2")

    def orders(out: Path) -> dict[int, str]:
        with out.open(encoding="utf-8", newline="") as handle:
            return {int(row["customer_id"]): row["orders"] for row in csv.DictReader(handle)}

    export_customers(engine, tmp_path / "now.csv")
    export_customers(engine, tmp_path / "then.csv", datetime(2024, 6, 6, tzinfo=UTC))

    assert orders(tmp_path / "now.csv") == {ann: "1", bob: "1"}
    assert orders(tmp_path / "then.csv") == {ann: "1", bob: "0"}  # Bob bought on 2024-06-20
