"""The service (`clm-sync run`): scheduling, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from sync.db import create_ledger_engine
from sync.ledger import RunRecord, SourceTransactionRow, StreamCursor
from tests.conftest import ROOT, write_config
from tests.exports import write_exports
from tests.test_crash import stored_rows

TRANSACTIONS = SourceTransactionRow.__table__  # type: ignore[attr-defined]
CURSORS = StreamCursor.__table__  # type: ignore[attr-defined]
RUNS = RunRecord.__table__  # type: ignore[attr-defined]
STOP_LIMIT_SECONDS = 10


def test_sigterm_during_run_exits_0_within_10_s_without_a_half_written_page(
    tmp_path: Path, ledger_url: str
) -> None:
    exports = write_exports(tmp_path / "exports", customers=2_000, transactions=150_000)
    config = write_config(tmp_path, ledger_url, page_size=500)
    engine = create_ledger_engine(ledger_url)
    service = subprocess.Popen(
        [sys.executable, str(ROOT / "daemon.py"), "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while stored_rows(engine) < 12_000 and time.monotonic() < deadline:
            assert service.poll() is None, service.communicate()[1]
            time.sleep(0.05)
        service.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = service.communicate(timeout=STOP_LIMIT_SECONDS + 5)
        stopped_after = time.monotonic() - sent
    finally:
        if service.poll() is None:
            service.kill()
    assert service.returncode == 0, stderr
    assert stopped_after < STOP_LIMIT_SECONDS, f"took {stopped_after:.1f} s to stop"

    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(TRANSACTIONS)).scalar_one()
        cursor = json.loads(
            connection.execute(
                select(CURSORS.c.cursor).where(CURSORS.c.stream == "transactions")
            ).scalar_one()
        )
        statuses = connection.execute(select(RUNS.c.status)).scalars().all()
    engine.dispose()
    assert 0 < stored < 150_000, "the stop did not land during the transactions pass"
    with (exports / "transactions.csv").open("rb") as handle:
        committed_rows = handle.read(cursor["offset"]).count(b"\n") - 1  # minus the header
    assert stored == committed_rows, "rows and cursor disagree: a page was half written"
    assert stored % 500 == 0
    assert statuses == ["stopped"]
    assert "stopping" in stderr
