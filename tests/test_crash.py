"""Nothing is lost or doubled when the process is killed (SIGKILL) in the middle of work."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from connectors.csv.reader import file_fingerprint
from sync.db import create_ledger_engine
from sync.ledger import (
    IngestSeen,
    QuarantineRow,
    RunRecord,
    SourceCustomerRow,
    SourceTransactionRow,
    StreamCursor,
)
from tests.conftest import ROOT, clm_sync, write_config
from tests.exports import write_exports

CUSTOMERS = SourceCustomerRow.__table__  # type: ignore[attr-defined]
TRANSACTIONS = SourceTransactionRow.__table__  # type: ignore[attr-defined]
CURSORS = StreamCursor.__table__  # type: ignore[attr-defined]
SEEN = IngestSeen.__table__  # type: ignore[attr-defined]
QUARANTINE = QuarantineRow.__table__  # type: ignore[attr-defined]
RUNS = RunRecord.__table__  # type: ignore[attr-defined]

CUSTOMER_ROWS = 10_000
TRANSACTION_ROWS = 90_000
KILLS = 4


def stored_rows(engine: Engine) -> int:
    try:
        with engine.connect() as connection:
            customers = connection.execute(select(func.count()).select_from(CUSTOMERS)).scalar_one()
            sales = connection.execute(select(func.count()).select_from(TRANSACTIONS)).scalar_one()
    except DBAPIError:
        return 0  # the schema is still being created
    return int(customers) + int(sales)


def kill_when(engine: Engine, config: Path, rows_at_least: int, deadline: float) -> int:
    """Start `once`, SIGKILL it as soon as the ledger holds ``rows_at_least`` rows."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "daemon.py"), "once", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if stored_rows(engine) >= rows_at_least:
                break
            time.sleep(0.02)
        reached = stored_rows(engine)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return reached


@pytest.mark.slow
def test_sigkill_at_random_points_then_once_leaves_exactly_the_source_rows(
    tmp_path: Path, ledger_url: str
) -> None:
    exports = write_exports(tmp_path / "exports", CUSTOMER_ROWS, TRANSACTION_ROWS)
    config = write_config(tmp_path, ledger_url, page_size=1000)
    engine = create_ledger_engine(ledger_url)
    total = CUSTOMER_ROWS + TRANSACTION_ROWS
    seed = random.randrange(1_000_000)
    targets = sorted(random.Random(seed).sample(range(2_000, total - 2_000), KILLS))
    reached = [kill_when(engine, config, target, time.monotonic() + 120) for target in targets]
    assert any(0 < count < total for count in reached), f"no kill landed mid-ingest ({reached})"

    final = clm_sync("once", "--config", str(config))
    assert final.returncode == 0, final.stderr

    with engine.connect() as connection:
        customers = connection.execute(select(CUSTOMERS.c.external_id)).scalars().all()
        sales = connection.execute(select(TRANSACTIONS.c.external_id)).scalars().all()
        cursors = {
            stream: json.loads(cursor)
            for stream, cursor in connection.execute(select(CURSORS.c.stream, CURSORS.c.cursor))
        }
        seen_left = connection.execute(select(func.count()).select_from(SEEN)).scalar_one()
        quarantined = connection.execute(select(func.count()).select_from(QUARANTINE)).scalar_one()
        deleted = connection.execute(
            select(func.count()).select_from(TRANSACTIONS).where(TRANSACTIONS.c.deleted)
        ).scalar_one()
        statuses = connection.execute(select(RUNS.c.status).order_by(RUNS.c.id)).scalars().all()
    engine.dispose()

    context = f"seed {seed}, kill targets {targets}, rows when killed {reached}"
    assert len(customers) == len(set(customers)) == CUSTOMER_ROWS, context
    assert len(sales) == len(set(sales)) == TRANSACTION_ROWS, context
    assert set(sales) == {f"T{number:07d}" for number in range(TRANSACTION_ROWS)}, context
    assert (quarantined, deleted, seen_left) == (0, 0, 0), context
    for stream in ("customers", "transactions"):
        path = exports / f"{stream}.csv"
        cursor = cursors[stream]
        assert cursor["complete"] is True, context
        assert cursor["offset"] == path.stat().st_size, context
        assert cursor["fingerprint"] == file_fingerprint(path), context
    assert "running" not in statuses, context
    assert statuses.count("interrupted") >= 1, context
