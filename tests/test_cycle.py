"""End to end through the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from sqlalchemy import select

from sync.db import create_ledger_engine
from sync.ledger import QuarantineRow, RunRecord, SourceCustomerRow, SourceTransactionRow
from sync.lock import ledger_lock
from tests.conftest import clm_sync, write_config
from tests.exports import write_exports

RUNS = RunRecord.__table__  # type: ignore[attr-defined]
QUARANTINE = QuarantineRow.__table__  # type: ignore[attr-defined]
TRANSACTIONS = SourceTransactionRow.__table__  # type: ignore[attr-defined]
CUSTOMERS = SourceCustomerRow.__table__  # type: ignore[attr-defined]

PUSH = """\
    push:
      enabled: true
      batch_size: 50
      fields:
        - {metric: net_revenue, field: lifetime_revenue, format: ".2f"}
        - {metric: orders, field: orders}
        - {metric: last_purchase, field: last_purchase, format: "%Y-%m-%d"}
"""


def source_runs(url: str) -> list[RunRecord]:
    engine = create_ledger_engine(url)
    with engine.connect() as connection:
        runs = connection.execute(select(RUNS).order_by(RUNS.c.id)).all()
    engine.dispose()
    return runs  # type: ignore[return-value]


def test_second_once_on_unchanged_input_rewrites_and_pushes_nothing(
    tmp_path: Path, ledger_url: str
) -> None:
    write_exports(tmp_path / "exports", customers=300, transactions=1_200)
    config = write_config(tmp_path, ledger_url, extra=PUSH)

    first = clm_sync("once", "--config", str(config), "--as-of", "2025-06-30")
    assert first.returncode == 0, first.stderr
    updates = (tmp_path / "exports" / "clm-sync-updates.csv").read_text(encoding="utf-8")
    assert updates.count("\n") > 300

    second = clm_sync("once", "--config", str(config), "--as-of", "2025-06-30")
    assert second.returncode == 0, second.stderr
    # Touch the exports: same bytes, new modification time, so the files are read again.
    for name in ("customers.csv", "transactions.csv"):
        os.utime(tmp_path / "exports" / name, ns=(1_700_000_000_000_000_000,) * 2)
    third = clm_sync("once", "--config", str(config), "--as-of", "2025-06-30")
    assert third.returncode == 0, third.stderr

    runs = source_runs(ledger_url)
    pulls = [run for run in runs if run.source == "exports"]
    steps = [run for run in runs if run.source is None]
    assert [run.status for run in runs] == ["ok"] * 6
    assert pulls[0].records_new == 1_500 and steps[0].pushed > 300
    for pull in pulls[1:]:
        assert (pull.records_new, pull.records_changed, pull.records_deleted) == (0, 0, 0)
    assert pulls[2].records_unchanged == 1_500, "the touched files were not read again"
    assert [step.pushed for step in steps[1:]] == [0, 0]
    assert (tmp_path / "exports" / "clm-sync-updates.csv").read_text(encoding="utf-8") == updates


def write_bad_exports(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "customers.csv").write_bytes(
        b"id,name,email\n"
        b"C1,Ann,ann@example.com\n"
        b"C2,Bob,bob@example.com\n"
        b"C2,Bob again,bob2@example.com\n"  # duplicate id
        b"C3,\xff\xfeBroken,c3@example.com\n"  # invalid UTF-8
        b"C4,Zo\xc3\xab \xf0\x9f\x98\x80,zoe@example.com\n"  # valid odd unicode
    )
    big = b"x" * (10 * 1024 * 1024)
    (folder / "transactions.csv").write_bytes(
        b"id,customer_id,date,amount,currency,kind\n"
        b"T1,C1,2024-01-05,10.00,USD,sale\n"
        b"T2,C1,05/01/2024,10.00,USD,sale\n"  # not ISO
        b"T3,C2,2024-13-45,10.00,USD,sale\n"  # impossible date
        b"T4,C2,2024-02-01,-3.00,USD,sale\n"  # negative amount
        b"T5,C2,2024-02-02," + big + b",USD,sale\n"  # 10 MB cell
        b"T6,C4,2024-02-03,7.50,USD,sale\n"
        b"T6,C4,2024-02-04,9.50,USD,sale\n"  # duplicate id
    )


def test_bad_rows_are_quarantined_with_reasons_and_the_cycle_completes(
    tmp_path: Path, ledger_url: str
) -> None:
    write_bad_exports(tmp_path / "exports")
    config = write_config(tmp_path, ledger_url)

    result = clm_sync("once", "--config", str(config))

    assert result.returncode == 0, result.stderr
    engine = create_ledger_engine(ledger_url)
    with engine.connect() as connection:
        customers = set(connection.execute(select(CUSTOMERS.c.external_id)).scalars())
        transactions = set(connection.execute(select(TRANSACTIONS.c.external_id)).scalars())
        quarantined = connection.execute(
            select(QUARANTINE.c.stream, QUARANTINE.c.external_id, QUARANTINE.c.reason)
        ).all()
        zoe = connection.execute(select(CUSTOMERS.c.name).where(CUSTOMERS.c.external_id == "C4"))
        zoe_name = zoe.scalar_one()
    assert customers == {"C1", "C2", "C4"}
    assert transactions == {"T1", "T6"}
    assert zoe_name == "Zoë 😀"
    reasons = {(stream, external_id): reason for stream, external_id, reason in quarantined}
    assert len(quarantined) == 7
    assert "occurs twice" in reasons[("customers", "C2")]
    assert "not valid utf-8" in reasons[("customers", None)]
    with engine.connect() as connection:
        locations = set(connection.execute(select(QUARANTINE.c.location)).scalars())
    assert str(tmp_path / "exports" / "customers.csv") + ":5" in locations
    engine.dispose()
    assert "not a date" in reasons[("transactions", "T2")]
    assert "not a date" in reasons[("transactions", "T3")]
    assert "negative" in reasons[("transactions", "T4")]
    assert "T5" not in transactions and ("transactions", "T5") in reasons
    assert "occurs twice" in reasons[("transactions", "T6")]

    status = clm_sync("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    assert "7 in the last run, 7 in all" in status.stdout
    assert "quarantined records" in status.stdout


def test_second_process_on_the_same_ledger_refuses_and_names_the_holder(
    tmp_path: Path, ledger_url: str
) -> None:
    write_exports(tmp_path / "exports", customers=10, transactions=10)
    config = write_config(tmp_path, ledger_url)
    assert clm_sync("once", "--config", str(config)).returncode == 0
    engine = create_ledger_engine(ledger_url)
    with ledger_lock(engine):
        blocked = clm_sync("once", "--config", str(config))
    engine.dispose()
    assert blocked.returncode == 1
    assert "in use by" in blocked.stderr
    assert str(os.getpid()) in blocked.stderr


def test_export_and_push_dry_run(tmp_path: Path, ledger_url: str) -> None:
    write_exports(tmp_path / "exports", customers=20, transactions=40)
    config = write_config(tmp_path, ledger_url, extra=PUSH)
    assert clm_sync("once", "--config", str(config), "--as-of", "2025-01-01").returncode == 0

    out = tmp_path / "customers.csv"
    result = clm_sync("export", "customers", "--config", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8", newline="") as handle:
        exported = list(csv.DictReader(handle))
    # Every tenth customer shares a phone with the previous one: 20 records, 18 people.
    assert len(exported) == 18
    assert list(exported[0])[:3] == ["customer_id", "sources", "orders"]
    merged = [row for row in exported if ";" in row["sources"]]
    assert [row["sources"] for row in merged] == [
        "exports:C000008;exports:C000009",
        "exports:C000018;exports:C000019",
    ]
    assert sum(int(row["orders"]) for row in exported) == 38  # 40 minus two refunds

    dry = clm_sync("push", "--dry-run", "--config", str(config))
    assert dry.returncode == 0, dry.stderr
    assert "would write 0 values" in dry.stdout
