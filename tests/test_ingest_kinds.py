"""Ingest of a stream whose pages mix record kinds (``MultiKindStream``), on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from connectors.base import Cursor, MultiKindStream, Page, ledger_streams
from connectors.records import Record, RecordKind, Rejected, SourceReferral
from sync.ingest import StreamIngest, _KindIngest
from sync.ledger import SourceCustomerRow
from tests.test_ingest import (
    CONTEXT,
    CURSORS,
    QUARANTINE,
    TRANSACTIONS,
    ListStream,
    customer,
    rows,
    sale,
)

CUSTOMERS = SourceCustomerRow.__table__  # type: ignore[attr-defined]


class MixedStream:
    """Pages of sales and customers read together; cursor: the pass and its next page."""

    name = "orders"
    record_kind = RecordKind.TRANSACTION
    full_refresh = False
    ledger_streams: Mapping[RecordKind, str] = {
        RecordKind.TRANSACTION: "orders",
        RecordKind.CUSTOMER: "buyers",
    }

    def __init__(
        self,
        pages: Sequence[Sequence[Record]],
        *,
        full_pass: bool = False,
        pass_id: str = "pass-1",
        rejected: Sequence[Rejected] = (),
    ) -> None:
        self.batches = pages
        self.full_pass = full_pass
        self.pass_id = pass_id
        self.rejected = rejected

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        start = int(cursor["next"]) if cursor.get("pass") == self.pass_id else 0
        for index in range(start, len(self.batches)):
            yield Page(
                self.batches[index],
                {"pass": self.pass_id, "next": index + 1},
                self.rejected if index == 0 else (),
                pass_complete=index == len(self.batches) - 1,
                pass_id=self.pass_id,
                full_pass=self.full_pass,
            )


def ingest(engine: Engine, stream: MixedStream) -> Any:
    return StreamIngest(engine, "shop", stream, CONTEXT).run(run_id=None)


def cursors(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        found = connection.execute(select(CURSORS.c.stream, CURSORS.c.cursor))
        return {stream: json.loads(text) for stream, text in found}


def test_each_kind_goes_to_its_own_table_under_its_own_stream_name(engine: Engine) -> None:
    assert isinstance(MixedStream([]), MultiKindStream)
    assert not isinstance(ListStream([]), MultiKindStream)
    assert ledger_streams(ListStream([])) == {RecordKind.CUSTOMER: "things"}

    counts = ingest(
        engine,
        MixedStream([[sale("1", "10"), customer("1"), sale("2", "20")], [customer("2")]]),
    )

    assert (counts.new, counts.pages) == (4, 2)
    sales, buyers = rows(engine, TRANSACTIONS), rows(engine)
    assert set(sales) == {"1", "2"} and {row.stream for row in sales.values()} == {"orders"}
    assert set(buyers) == {"1", "2"} and {row.stream for row in buyers.values()} == {"buyers"}
    assert cursors(engine) == {"orders": {"pass": "pass-1", "next": 2}}, "one cursor for the stream"


def test_a_crash_while_storing_one_kind_leaves_no_kind_of_that_page(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages: list[list[Record]] = [[sale("1", "10"), customer("1")], [sale("2", "20"), customer("2")]]
    store = _KindIngest.store
    stored = {"buyers": 0}

    def crash_on_the_second_customers(self: _KindIngest, *args: Any) -> Any:
        if self.name == "buyers":
            stored["buyers"] += 1
            if stored["buyers"] == 2:
                raise RuntimeError("power cut after the sales of page 2")
        return store(self, *args)

    monkeypatch.setattr(_KindIngest, "store", crash_on_the_second_customers)
    with pytest.raises(RuntimeError):
        ingest(engine, MixedStream(pages))
    assert (set(rows(engine, TRANSACTIONS)), set(rows(engine))) == ({"1"}, {"1"})
    assert cursors(engine) == {"orders": {"pass": "pass-1", "next": 1}}

    monkeypatch.setattr(_KindIngest, "store", store)
    counts = ingest(engine, MixedStream(pages))

    assert (counts.new, counts.unchanged) == (2, 0), "page 1 was read again or page 2 lost"
    assert (set(rows(engine, TRANSACTIONS)), set(rows(engine))) == ({"1", "2"}, {"1", "2"})


def test_a_full_pass_flags_unseen_rows_of_every_kind_even_without_a_last_record(
    engine: Engine,
) -> None:
    first: list[list[Record]] = [[sale("1", "10"), customer("A")], [sale("2", "20"), customer("B")]]
    ingest(engine, MixedStream(first, full_pass=True))
    # the second pass ends on a page without customers: the customers' pass must end too
    second: list[list[Record]] = [[sale("1", "10"), customer("A")], [sale("3", "30")]]

    counts = ingest(engine, MixedStream(second, full_pass=True, pass_id="pass-2"))

    assert counts.deleted == 2
    sales, buyers = rows(engine, TRANSACTIONS), rows(engine)
    assert {key for key, row in sales.items() if row.deleted} == {"2"}
    assert {key for key, row in buyers.items() if row.deleted} == {"B"}


def test_the_same_id_in_two_kinds_is_two_rows_and_rejections_go_to_the_stream(
    engine: Engine,
) -> None:
    bad = Rejected("unreadable order", "{", "9", "orders page 1")
    stray = SourceReferral("R1", "A", "B")

    counts = ingest(engine, MixedStream([[sale("7", "10"), customer("7"), stray]], rejected=[bad]))

    assert (counts.new, counts.quarantined) == (2, 2)
    with engine.connect() as connection:
        quarantined = connection.execute(select(QUARANTINE.c.stream, QUARANTINE.c.reason)).all()
        live = connection.execute(select(func.count()).select_from(CUSTOMERS)).scalar_one()
    assert live == 1
    assert {stream for stream, _ in quarantined} == {"orders"}
    assert any("referral record" in reason for _, reason in quarantined)
