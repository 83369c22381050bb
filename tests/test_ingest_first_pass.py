"""A pass into a stream with no rows yet (a first import) keeps no seen ids per stored row.

It must behave exactly like any other pass: same rows, same quarantine reasons, same sweep.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from connectors.records import SourceCustomer
from sync.ingest import StreamIngest
from sync.ledger import IngestSeen
from tests.test_ingest import CONTEXT, CUSTOMERS, QUARANTINE, ListStream, customer, ingest, rows

SEEN = IngestSeen.__table__  # type: ignore[attr-defined]
TOO_LONG = "x" * 2_000


def _pages() -> list[list[Any]]:
    """Repeats of every sort across pages: valid twice, invalid then valid, tombstones."""
    return [
        [customer("C1", name="First"), customer("C2", name=TOO_LONG), customer("C3")],
        [customer("C1", name="Second"), customer("C2"), SourceCustomer("C4", deleted=True)],
        [SourceCustomer("C4", deleted=True), customer("C5"), SourceCustomer("C3", deleted=True)],
    ]


def _outcome(engine: Engine, system: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        stored = {
            row.external_id: (row.name, row.deleted, row.content_hash)
            for row in connection.execute(select(CUSTOMERS).where(CUSTOMERS.c.system == system))
            if row.external_id != "Z9"
        }
        quarantined = connection.execute(
            select(QUARANTINE.c.external_id, QUARANTINE.c.reason).where(
                QUARANTINE.c.system == system
            )
        ).all()
    return stored, sorted(tuple(row) for row in quarantined)


@pytest.mark.parametrize("full_refresh", [True, False])
def test_a_first_pass_stores_and_quarantines_as_any_pass(
    engine: Engine, full_refresh: bool
) -> None:
    first = StreamIngest(
        engine, "first", ListStream(_pages(), full_refresh=full_refresh, full_pass=True), CONTEXT
    ).run(run_id=None)

    # the same pages into a stream that holds a row already: the general path
    seeded = ListStream([[customer("Z9")]], full_refresh=full_refresh)
    StreamIngest(engine, "seeded", seeded, CONTEXT).run(run_id=None)
    again = ListStream(_pages(), full_refresh=full_refresh, full_pass=True)
    again.pass_id = "pass-2"
    general = StreamIngest(engine, "seeded", again, CONTEXT).run(run_id=None)

    assert _outcome(engine, "first") == _outcome(engine, "seeded")
    assert (first.new, first.changed, first.unchanged, first.quarantined) == (
        general.new,
        general.changed,
        general.unchanged,
        general.quarantined,
    )
    assert first.quarantined > 0
    assert general.deleted == first.deleted + 1  # Z9, not seen
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(SEEN)).scalar_one() == 0


def test_a_first_pass_resumed_after_a_crash_then_a_pass_that_misses_a_row(engine: Engine) -> None:
    pages = [[customer("C1")], [customer("C2"), customer("C1", name="Again")], [customer("C3")]]
    with pytest.raises(ConnectionError):
        ingest(engine, ListStream(pages, full_refresh=True, fail_at=2))
    counts = ingest(engine, ListStream(pages, full_refresh=True, resume=True))
    assert counts.deleted == 0 and counts.new == 1
    stored = rows(engine)
    assert stored["C1"].name == "Ann" and not any(row.deleted for row in stored.values())
    with engine.connect() as connection:
        reasons = connection.execute(select(QUARANTINE.c.reason)).scalars().all()
    assert len(reasons) == 1 and "occurs twice in the source" in reasons[0]

    second = ListStream([[customer("C1")], [customer("C3")]], full_refresh=True)
    second.pass_id = "pass-2"
    assert ingest(engine, second).deleted == 1
    assert rows(engine)["C2"].deleted
