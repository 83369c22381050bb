"""Identity resolution against the synthetic business's ground truth (SQLite ledger).

About 21k customer records of 18k persons, spread over three systems so duplicates fall
across and within systems; the export is made harder than the default with households (same
surname and address, another person), duplicates without an address and duplicates made after
a move.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from connectors.records import SourceCustomer
from sandbox.synthetic import BusinessSpec, write_csv_folder
from sync.db import create_ledger_engine, ensure_current_schema
from sync.identity import model
from sync.identity.features import feature_rows
from sync.reconcile import ReconcileResult, load_model, reconcile
from tests.conftest import ingest_records
from tests.identity_truth import (
    customers_by_system,
    ledger_clusters,
    live_customers,
    score,
    truth,
)

SPEC = BusinessSpec(
    customers=18_000,
    seed=11,
    household_share=0.05,
    duplicate_no_address_share=0.3,
    duplicate_moved_share=0.15,
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NEW_RECORDS = 1_000


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("business")
    summary = write_csv_folder(SPEC, folder)
    assert summary.customers >= 20_000
    return folder


@dataclass(frozen=True, slots=True)
class Ledger:
    """A ledger that reconciled all but the last 1k records in one run, then those 1k."""

    engine: Engine
    first_run: ReconcileResult
    added: ReconcileResult
    total: int
    new_ids: set[int]


@pytest.fixture(scope="module")
def ledger(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    folder = tmp_path_factory.mktemp("ledger")
    engine = create_ledger_engine(f"sqlite:///{folder / 'ledger.db'}")
    ensure_current_schema(engine)
    by_system = customers_by_system(export)
    total = sum(len(records) for records in by_system.values())
    first_new = total - NEW_RECORDS + 1

    def new(record: SourceCustomer) -> bool:
        return int(record.external_id[1:]) >= first_new

    for system, records in by_system.items():
        ingest_records(engine, system, [r for r in records if not new(r)])
    first_run = reconcile(engine, T0)
    for system, records in by_system.items():
        ingest_records(engine, system, [r for r in records if new(r)])
    added = reconcile(engine, T0 + timedelta(hours=1))
    with engine.connect() as connection:
        new_ids = {r.id for r in live_customers(connection) if int(r.external_id[1:]) >= first_new}
    yield Ledger(engine, first_run, added, total, new_ids)
    engine.dispose()


def test_precision_and_recall_on_the_ground_truth(export: Path, ledger: Ledger) -> None:
    scores = score(ledger_clusters(ledger.engine), truth(export))
    print(f"\nground truth: {scores}")
    assert ledger.first_run.trained
    assert ledger.added.source_customers == ledger.total >= 20_000
    assert scores.precision >= 0.99
    assert scores.recall >= 0.97
    assert scores.cluster_f1 >= 0.97
    # Blocking keeps the candidates near-linear: a few pairs per record, not n².
    assert ledger.first_run.compared_pairs < 2 * ledger.first_run.source_customers


def test_new_records_are_compared_only_with_the_ledger_and_cluster_as_a_full_run(
    ledger: Ledger,
) -> None:
    engine, added = ledger.engine, ledger.added
    incremental = ledger_clusters(engine)

    assert not added.trained
    assert added.compared_records == NEW_RECORDS
    # The same pairs a full run compares that involve a new record, and no others.
    with engine.connect() as connection:
        live = live_customers(connection)
        stored = load_model(connection)
    assert stored is not None
    frame = model.features_frame(feature_rows(r.item for r in live))
    every = model.score_all(frame, stored[1], 0.0).pairs
    new_ids = ledger.new_ids
    touching = every[every.unique_id_l.isin(new_ids) | every.unique_id_r.isin(new_ids)]
    assert added.compared_pairs == len(touching) < len(every)

    again = reconcile(engine, T0 + timedelta(hours=2), full=True)
    assert again.compared_records == ledger.total
    assert again.links_changed == 0
    assert ledger_clusters(engine) == incremental
