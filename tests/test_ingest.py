"""Ingest semantics on both databases: upsert, hash, deletions, quarantine, cursor."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.base import Cursor, Page
from connectors.records import RecordKind, Rejected, SourceCustomer, SourceTransaction
from sync.ingest import StreamIngest, load_cursor
from sync.ledger import QuarantineRow, SourceCustomerRow, SourceTransactionRow, StreamCursor
from sync.rows import RowContext

CONTEXT = RowContext("USD", "US")
CUSTOMERS = SourceCustomerRow.__table__  # type: ignore[attr-defined]
TRANSACTIONS = SourceTransactionRow.__table__  # type: ignore[attr-defined]
QUARANTINE = QuarantineRow.__table__  # type: ignore[attr-defined]
CURSORS = StreamCursor.__table__  # type: ignore[attr-defined]


class ListStream:
    """A stream over pages given by the test; the cursor is the index of the next page."""

    def __init__(
        self,
        pages: Sequence[Sequence[Any]],
        *,
        kind: RecordKind = RecordKind.CUSTOMER,
        full_refresh: bool = False,
        fail_at: int | None = None,
        rejected: Sequence[Rejected] = (),
        resume: bool = False,
        full_pass: bool = False,
    ) -> None:
        self.name = "things"
        self.record_kind = kind
        self.full_refresh = full_refresh
        self.batches = pages
        self.fail_at = fail_at
        self.rejected = rejected
        self.pass_id = "pass-1"
        self.resume = resume
        self.full_pass = full_pass

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        start = int(cursor.get("next", 0)) if self.resume else 0
        for index in range(start, len(self.batches)):
            if index == self.fail_at:
                raise ConnectionError("remote went away")
            yield Page(
                self.batches[index],
                {"next": index + 1},
                self.rejected if index == start else (),
                pass_complete=index == len(self.batches) - 1,
                pass_id=self.pass_id,
                full_pass=self.full_pass,
            )


def customer(external_id: str, name: str = "Ann", **fields: Any) -> SourceCustomer:
    return SourceCustomer(external_id, name=name, **fields)


def sale(external_id: str, amount: str, **fields: Any) -> SourceTransaction:
    values: dict[str, Any] = {
        "customer_external_id": "C1",
        "occurred_at": datetime(2024, 5, 1, tzinfo=UTC),
        "amount": Decimal(amount),
        "currency": "USD",
    } | fields
    return SourceTransaction(external_id, **values)


def ingest(engine: Engine, stream: ListStream) -> Any:
    return StreamIngest(engine, "shop", stream, CONTEXT).run(run_id=None)


def rows(engine: Engine, table: Any = CUSTOMERS) -> dict[str, Any]:
    with engine.connect() as connection:
        return {row.external_id: row for row in connection.execute(select(table))}


def test_new_changed_unchanged_are_told_apart_by_content(engine: Engine) -> None:
    first = ingest(engine, ListStream([[customer("C1"), customer("C2")]]))
    assert (first.new, first.changed, first.unchanged) == (2, 0, 0)
    before = rows(engine)

    second = ingest(engine, ListStream([[customer("C1"), customer("C2", name="Bea")]]))

    assert (second.new, second.changed, second.unchanged) == (0, 1, 1)
    after = rows(engine)
    assert after["C1"].updated_at == before["C1"].updated_at, "unchanged row was rewritten"
    assert after["C2"].name == "Bea"
    assert after["C2"].updated_at > before["C2"].updated_at


def test_details_round_trip_and_unknown_details_leave_the_hash_alone(engine: Engine) -> None:
    ingest(engine, ListStream([[customer("C1"), customer("C2")]]))
    plain = rows(engine)["C1"].content_hash

    second = ingest(
        engine,
        ListStream([[customer("C1", labels=(), guest=False), customer("C2", labels=("VIP", " "))]]),
    )

    assert (second.changed, second.unchanged) == (1, 1)
    stored = rows(engine)
    assert stored["C1"].content_hash == plain
    assert stored["C1"].labels == () and stored["C2"].labels == ("VIP",)
    assert stored["C2"].guest is False


def test_tombstones_flag_rows_deleted_without_erasing_them(engine: Engine) -> None:
    ingest(engine, ListStream([[customer("C1"), customer("C2")]]))
    counts = ingest(engine, ListStream([[SourceCustomer("C2", deleted=True)]]))
    assert counts.deleted == 1
    stored = rows(engine)
    assert stored["C2"].deleted and stored["C2"].name == "Ann"
    assert not stored["C1"].deleted


def test_full_refresh_pass_flags_unseen_rows_deleted_only_when_complete(engine: Engine) -> None:
    ingest(engine, ListStream([[customer("C1")], [customer("C2")]], full_refresh=True))
    partial = ListStream([[customer("C1")], [customer("C3")]], full_refresh=True, fail_at=1)
    partial.pass_id = "pass-2"
    with pytest.raises(ConnectionError):
        ingest(engine, partial)
    assert not rows(engine)["C2"].deleted, "an unfinished pass must not delete anything"

    # The next run resumes the same pass after the committed page and completes it.
    resumed = ListStream([[customer("C1")], [customer("C3")]], full_refresh=True, resume=True)
    resumed.pass_id = "pass-2"
    counts = ingest(engine, resumed)
    stored = rows(engine)
    assert stored["C2"].deleted and not stored["C1"].deleted and not stored["C3"].deleted
    assert counts.deleted == 1


def test_a_full_pass_of_an_incremental_stream_flags_unseen_rows_deleted(engine: Engine) -> None:
    ingest(engine, ListStream([[customer("C1"), customer("C2")], [customer("C3")]]))
    changes = ingest(engine, ListStream([[customer("C1", name="Ann B")]]))
    assert changes.deleted == 0, "an incremental pass shows changes only, never absences"

    # A complete pass whose pages overlap (C2 twice), cut off after its first page ...
    pages = [[customer("C1", name="Ann B"), customer("C2")], [customer("C2", name="Bea")]]
    partial = ListStream(pages, full_pass=True, fail_at=1)
    with pytest.raises(ConnectionError):
        ingest(engine, partial)
    assert not rows(engine)["C3"].deleted, "an unfinished pass must not delete anything"

    # ... and resumed: the repeat is stored, not quarantined; C3 was not seen, so it is gone.
    counts = ingest(engine, ListStream(pages, full_pass=True, resume=True))

    stored = rows(engine)
    assert (counts.deleted, counts.changed, counts.quarantined) == (1, 1, 0)
    assert stored["C3"].deleted and not stored["C1"].deleted and stored["C2"].name == "Bea"


def test_an_id_twice_in_a_full_refresh_pass_is_quarantined_first_kept(engine: Engine) -> None:
    stream = ListStream(
        [[customer("C1", name="First")], [customer("C1", name="Second")]], full_refresh=True
    )
    counts = ingest(engine, stream)
    assert counts.quarantined == 1
    assert rows(engine)["C1"].name == "First"
    with engine.connect() as connection:
        reason = connection.execute(select(QUARANTINE.c.reason)).scalar_one()
    assert "occurs twice" in reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (sale("T1", "-5"), "negative"),
        (sale("T2", "1e15"), "beyond any plausible amount"),
        (sale("T3", "5", currency="EURO"), "ISO 4217"),
        (sale("T4", "5", currency="EUR"), "home-currency amount"),
        (sale("T5", "5", occurred_at=datetime(1850, 1, 1, tzinfo=UTC)), "outside 1900"),
        (sale("", "5"), "no id"),
        (sale("T6", "5", customer_external_id="x" * 300), "characters long"),
    ],
)
def test_invalid_records_are_quarantined_with_reason(
    engine: Engine, record: SourceTransaction, reason: str
) -> None:
    counts = ingest(engine, ListStream([[record, sale("OK", "1")]], kind=RecordKind.TRANSACTION))
    assert (counts.new, counts.quarantined) == (1, 1)
    with engine.connect() as connection:
        stored_reason, raw = connection.execute(select(QUARANTINE.c.reason, QUARANTINE.c.raw)).one()
    assert reason in stored_reason
    assert raw
    assert set(rows(engine, TRANSACTIONS)) == {"OK"}


def test_rejected_payloads_with_nul_surrogates_and_huge_size_are_stored(engine: Engine) -> None:
    nasty = Rejected("cannot decode", "bad\x00byte \udcff " + "x" * 2_000_000, "C\x009")
    counts = ingest(engine, ListStream([[customer("C1")]], rejected=[nasty]))
    assert counts.quarantined == 1
    with engine.connect() as connection:
        raw, external_id = connection.execute(
            select(QUARANTINE.c.raw, QUARANTINE.c.external_id)
        ).one()
    assert raw.startswith("bad\\x00byte \\udcff")
    assert len(raw) < 1_100_000 and raw.endswith("more characters]")
    assert external_id == "C\\x009"


def test_cursor_moves_with_its_page_and_a_failure_keeps_committed_pages(engine: Engine) -> None:
    stream = ListStream([[customer("C1")], [customer("C2")], [customer("C3")]], fail_at=2)
    with pytest.raises(ConnectionError):
        ingest(engine, stream)
    assert set(rows(engine)) == {"C1", "C2"}
    with engine.connect() as connection:
        assert load_cursor(connection, "shop", "things") == {"next": 2}
    resumed = ListStream([[customer("C1")], [customer("C2")], [customer("C3")]], resume=True)
    counts = ingest(engine, resumed)
    assert counts.new == 1 and set(rows(engine)) == {"C1", "C2", "C3"}


def test_a_page_whose_cursor_cannot_be_saved_leaves_no_rows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(engine, ListStream([[customer("C1")]]))

    def crash(*_args: object) -> None:
        raise RuntimeError("power cut between the rows and the cursor")

    monkeypatch.setattr("sync.ingest._save_cursor", crash)
    with pytest.raises(RuntimeError):
        ingest(engine, ListStream([[customer("C2"), customer("C3")]]))
    assert set(rows(engine)) == {"C1"}, "rows were committed without their cursor"
    with engine.connect() as connection:
        assert json.loads(connection.execute(select(CURSORS.c.cursor)).scalar_one()) == {"next": 1}
