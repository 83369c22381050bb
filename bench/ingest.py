"""Ingest benchmark: clm-sync's CSV ingest against a bare ``executemany`` of the same rows.

Generates a synthetic business (200k customers and about 1M transactions by default) as a CSV
export folder, then for each database (SQLite, and PostgreSQL started through pgserver) runs,
each in its own child process so that its peak RSS is its own:

1. **bare insert** (the baseline of the target) — the rows clm-sync stores, already parsed and
   converted outside the clock, inserted with the driver's own ``executemany`` and a commit per
   page of ``--page-size`` rows into the same ledger tables (same columns, keys and indexes) of
   a second, fresh database on the same server: what the database itself costs;
2. **text insert** (for reference) — the CSV rows as read by the ``csv`` module into tables of
   text columns without keys: the floor of getting bytes into the database at all;
3. **clm-sync** — the real ingest (``SyncService.pull``: reading, parsing, validation,
   normalized e-mail and phone, content hashes, lookups of existing rows, the seen-ids of the
   full pass, cursors, run history) into a fresh ledger.

Printed per database: records/s of each, the ratio clm-sync / bare insert (target ≥ 0.3) and
clm-sync's peak RSS (target < 500 MB). All run on the same machine in the same run, so the
ratio holds up on a noisy machine better than any one figure.

    python bench/ingest.py                       # full size, both databases
    python bench/ingest.py --customers 20000 --transactions 100000 --db sqlite
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/ingest.py` from a checkout
    sys.path.insert(0, str(ROOT))

from config.loader import load_config  # noqa: E402
from config.models import AppConfig  # noqa: E402
from connectors.base import ConnectorContext  # noqa: E402
from connectors.csv.streams import FILES  # noqa: E402
from connectors.registry import build_connector  # noqa: E402
from sandbox.synthetic import spec_for_transactions, write_csv_folder  # noqa: E402
from sync.cycle import SyncService  # noqa: E402
from sync.db import create_ledger_engine, migrate  # noqa: E402
from sync.ledger import SOURCE_TABLES  # noqa: E402
from sync.rows import (  # noqa: E402
    InvalidRecord,
    RowContext,
    checked_external_id,
    content_hash,
    record_values,
)
from sync.tokens import TokenStore  # noqa: E402

RATIO_TARGET = 0.3
RSS_TARGET_MB = 500
SOURCE_NAME = "bench"
CHILD = "--child"
"""First argument of the child processes that take one measurement each."""

console = Console()


class Database(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"
    BOTH = "both"


class Mode(StrEnum):
    BARE = "bare"
    TEXT = "text"
    CLM_SYNC = "clm-sync"


def _peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(url: str, data: Path, page_size: int) -> AppConfig:
    """The config `clm-sync` would load for one CSV source (YAML is a superset of JSON)."""
    source = {"name": SOURCE_NAME, "type": "csv", "path": str(data), "page_size": page_size}
    folder = Path(tempfile.mkdtemp(prefix="clm-sync-bench-config-"))
    try:
        config = folder / "clm-sync.yaml"
        config.write_text(json.dumps({"ledger": url, "sources": [source]}), encoding="utf-8")
        return load_config(config)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _result(records: int, seconds: float) -> dict[str, Any]:
    return {"records": records, "seconds": seconds, "rss_mb": _peak_rss_mb()}


def _bare_insert(url: str, data: Path, page_size: int) -> dict[str, Any]:
    """The ledger rows, converted outside the clock; timed: executemany and commit per page."""
    settings = _settings(url, data, page_size)
    engine = create_ledger_engine(url)
    migrate(engine)
    context = RowContext(settings.home_currency, settings.phone_region)
    connector = build_connector(
        settings.source(SOURCE_NAME), settings, ConnectorContext(tokens=TokenStore(engine))
    )
    dialect = engine.dialect
    raw = engine.raw_connection()
    records, seconds = 0, 0.0
    try:
        cursor = raw.cursor()
        for stream in connector.streams():
            table = SOURCE_TABLES[stream.record_kind].__table__  # type: ignore[attr-defined]
            columns = [column for column in table.columns if column.name != "id"]
            compiled = table.insert().compile(
                dialect=dialect, column_keys=[column.name for column in columns]
            )
            statement, order = str(compiled), compiled.positiontup
            processors = {
                c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns
            }
            now = datetime.now(UTC)
            for page in stream.pages({}):
                rows: list[Any] = []
                for record in page.records:
                    try:
                        external_id = checked_external_id(record)
                        values = record_values(record, context)
                    except InvalidRecord:
                        continue
                    row = values | {
                        "system": connector.system,
                        "stream": stream.name,
                        "external_id": external_id,
                        "content_hash": content_hash(values),
                        "deleted": False,
                        "first_seen_at": now,
                        "updated_at": now,
                    }
                    converted = {
                        name: value if (process := processors[name]) is None else process(value)
                        for name, value in row.items()
                    }
                    # the driver's own parameter style: positional (SQLite) or named (psycopg)
                    rows.append(converted if order is None else [converted[n] for n in order])
                started = time.perf_counter()
                cursor.executemany(statement, rows)
                raw.commit()
                seconds += time.perf_counter() - started
                records += len(rows)
    finally:
        raw.close()
        engine.dispose()
    return _result(records, seconds)


def _csv_pages(path: Path, page_size: int) -> Iterator[tuple[list[str], list[list[str]]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        page: list[list[str]] = []
        for row in reader:
            page.append(row)
            if len(page) == page_size:
                yield header, page
                page = []
        if page:
            yield header, page


def _text_insert(url: str, data: Path, page_size: int) -> dict[str, Any]:
    """The CSV rows as text into tables without keys; reading the files is timed too."""
    engine = create_ledger_engine(url)
    raw = engine.raw_connection()
    marker = "?" if engine.dialect.name == "sqlite" else "%s"
    records = 0
    started = time.perf_counter()
    try:
        cursor = raw.cursor()
        for spec in FILES:
            path = data / spec.filename
            if not path.exists():
                continue
            table = f"bench_text_{spec.stream}"
            created = False
            for header, page in _csv_pages(path, page_size):
                if not created:
                    columns = ", ".join(f'"{name}" TEXT' for name in header)
                    cursor.execute(f"CREATE TABLE {table} ({columns})")
                    created = True
                placeholders = ", ".join([marker] * len(header))
                cursor.executemany(f"INSERT INTO {table} VALUES ({placeholders})", page)
                raw.commit()
                records += len(page)
    finally:
        raw.close()
        engine.dispose()
    return _result(records, time.perf_counter() - started)


def _clm_sync(url: str, data: Path, page_size: int) -> dict[str, Any]:
    """clm-sync's own ingest of the CSV source, as `clm-sync once` pulls it."""
    settings = _settings(url, data, page_size)
    engine = create_ledger_engine(url)
    migrate(engine)
    started = time.perf_counter()
    outcome = SyncService(settings, engine).pull(SOURCE_NAME)
    seconds = time.perf_counter() - started
    engine.dispose()
    if outcome.error:
        raise SystemExit(f"the ingest failed: {outcome.error}")
    return _result(outcome.counts.records_in, seconds)


MEASURES = {Mode.BARE: _bare_insert, Mode.TEXT: _text_insert, Mode.CLM_SYNC: _clm_sync}


def _child(mode: str, url: str, data: str, page_size: str) -> None:
    """Takes one measurement in this process and prints it as JSON for the parent."""
    print(json.dumps(MEASURES[Mode(mode)](url, Path(data), int(page_size))))


def _measure(mode: Mode, url: str, data: Path, page_size: int) -> dict[str, Any]:
    command = [sys.executable, __file__, CHILD, mode.value, url, str(data), str(page_size)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextlib.contextmanager
def _databases(kind: Database, workdir: Path) -> Iterator[tuple[dict[Mode, str], str]]:
    """A fresh database per measurement, on one SQLite folder or one PostgreSQL server."""
    if kind is Database.SQLITE:
        urls = {mode: f"sqlite:///{workdir / f'{mode.value}.db'}" for mode in Mode}
        yield urls, f"SQLite {sqlite3.sqlite_version}"
        return
    from pgserver import get_server  # type: ignore[attr-defined]

    data = workdir / "pgdata"
    data.mkdir()
    # pgserver runs PostgreSQL as an unprivileged user when started by root
    for folder in (workdir, data):
        folder.chmod(0o755)
    server = get_server(data, cleanup_mode="stop")
    try:
        urls = {}
        for mode in Mode:
            name = f"bench_{mode.name.lower()}"
            server.psql(f'CREATE DATABASE "{name}";')
            urls[mode] = str(server.get_uri(name))
        version = server.psql("SHOW server_version;").split("\n")[2].strip()
        yield urls, f"PostgreSQL {version}"
    finally:
        server.cleanup()


def _machine_facts() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, load {load} at the end · Python {platform.python_version()} · "
        f"{platform.platform()}"
    )


def main(
    customers: Annotated[int, typer.Option(help="Persons in the synthetic business.")] = 200_000,
    transactions: Annotated[int, typer.Option(help="Transactions, about.")] = 1_000_000,
    db: Annotated[Database, typer.Option(help="Which database to measure.")] = Database.BOTH,
    data: Annotated[
        Path | None, typer.Option(help="Export folder to reuse or create (default: a temp dir).")
    ] = None,
    page_size: Annotated[int, typer.Option(help="Rows per page, all three runs.")] = 1000,
) -> None:
    """Print records/s, the ratio to a bare bulk insert and peak RSS per database."""
    workdir = Path(tempfile.mkdtemp(prefix="clm-sync-bench-"))
    try:
        folder = data or workdir / "exports"
        if not (folder / "transactions.csv").exists():
            with console.status(f"writing {customers:,} customers, ~{transactions:,} transactions"):
                write_csv_folder(spec_for_transactions(customers, transactions), folder)
        kinds = [Database.SQLITE, Database.POSTGRESQL] if db is Database.BOTH else [db]
        table = Table(title=f"Ingest of {folder} (page size {page_size:,})")
        for column in (
            "database",
            "records",
            "bare insert rec/s",
            "text insert rec/s",
            "clm-sync rec/s",
            "ratio to bare",
            "clm-sync peak RSS",
        ):
            table.add_column(column, justify="left" if column == "database" else "right")
        verdicts = []
        for kind in kinds:
            run_dir = workdir / kind.value
            run_dir.mkdir()
            results: dict[Mode, dict[str, Any]] = {}
            with _databases(kind, run_dir) as (urls, version):
                for mode in Mode:
                    with console.status(f"{version}: {mode.value} ..."):
                        results[mode] = _measure(mode, urls[mode], folder, page_size)
            rates = {mode: r["records"] / r["seconds"] for mode, r in results.items()}
            ours = results[Mode.CLM_SYNC]
            ratio = rates[Mode.CLM_SYNC] / rates[Mode.BARE]
            good = ratio >= RATIO_TARGET and ours["rss_mb"] < RSS_TARGET_MB
            verdicts.append(f"{version}: {'meets' if good else 'MISSES'} the targets")
            table.add_row(
                version,
                f"{ours['records']:,}",
                *(f"{rates[mode]:,.0f}" for mode in Mode),
                f"{ratio:.2f}",
                f"{ours['rss_mb']:,.0f} MB",
            )
            if len({r["records"] for r in results.values()}) != 1:
                counts = ", ".join(f"{m.value} {r['records']:,}" for m, r in results.items())
                console.print(f"[yellow]note: the runs stored different counts: {counts}[/]")
        console.print(table)
        console.print(f"Targets: ratio ≥ {RATIO_TARGET}, peak RSS < {RSS_TARGET_MB} MB. ")
        console.print(" · ".join(verdicts))
        console.print(_machine_facts())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD]:
        _child(*sys.argv[2:])
    else:
        typer.run(main)
