"""Shared fixtures: every ledger test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from ``pgserver`` (PostgreSQL 16 binaries from PyPI, no root, no system
service): one server per test session, one fresh database per test.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from connectors.base import Cursor, Page
from connectors.records import Record, RecordKind
from sync.db import create_ledger_engine, ensure_current_schema
from sync.ingest import IngestCounts, StreamIngest
from sync.rows import RowContext

ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("sqlite", "postgresql")
_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    from pgserver import get_server  # type: ignore[attr-defined]

    # Not under pytest's tmp_path: that tree is private to the user running the tests, and
    # when that user is root pgserver runs PostgreSQL as its own unprivileged user.
    data = Path(tempfile.mkdtemp(prefix="clm-sync-test-pg-"))
    data.chmod(0o755)
    server = get_server(data, cleanup_mode="stop")
    # A throwaway server: without fsync, creating a database per test and the shutdown
    # checkpoint at the end take a moment instead of tens of seconds on a busy disk.
    server.psql("ALTER SYSTEM SET fsync = off;\nSELECT pg_reload_conf();")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(params=DATABASES)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty ledger database, once per kind of database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    server = request.getfixturevalue("pg_server")
    name = f"ledger_{os.getpid()}_{next(_database_numbers)}"
    server.psql(f'CREATE DATABASE "{name}";')
    return str(server.get_uri(name))


@pytest.fixture
def engine(ledger_url: str) -> Iterator[Engine]:
    engine = create_ledger_engine(ledger_url)
    ensure_current_schema(engine)
    yield engine
    engine.dispose()


ROW_CONTEXT = RowContext(home_currency="USD", phone_region="US")


class OnePageStream:
    """An incremental stream that yields the given records as one page."""

    full_refresh = False

    def __init__(self, kind: RecordKind, records: Sequence[Record]) -> None:
        self.name = f"{kind.value}s"
        self.record_kind = kind
        self.records = records

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        yield Page(self.records, {"done": True}, pass_complete=True)


def ingest_records(engine: Engine, system: str, records: Sequence[Record]) -> IngestCounts:
    """Store ``records`` of one system through the real ingest step, one stream per kind
    (``customers``, ``transactions``, ...), customers first. Tombstones delete."""
    total = IngestCounts()
    for kind in RecordKind:
        own = [record for record in records if record.kind == kind]
        if own:
            total.add(StreamIngest(engine, system, OnePageStream(kind, own), ROW_CONTEXT).run(None))
    return total


def write_config(folder: Path, ledger_url: str, extra: str = "", **source: Any) -> Path:
    """A config with one CSV source ``exports`` at ``folder/exports``."""
    settings = {"page_size": 500} | source
    lines = "".join(f"    {key}: {value}\n" for key, value in settings.items())
    path = folder / "clm-sync.yaml"
    path.write_text(
        f"ledger: {ledger_url}\n"
        "sources:\n"
        "  - name: exports\n"
        "    type: csv\n"
        "    path: ./exports\n"
        f"{lines}"
        f"{extra}",
        encoding="utf-8",
    )
    return path


def clm_sync(*args: str, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the command line as an admin would, in a separate process, with no stdin."""
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        check=False,
        **kwargs,
    )
