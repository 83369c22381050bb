"""Incremental reconcile (sync/reconcile.py, sync/identity/stored.py) on both databases:
whatever changed — new, edited and deleted records, admin rules added and dropped — the
incremental cycle featurizes and compares only the changed records and ends with the
clusters a full run gives."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, inspect, select

from config.models import ReconcileConfig
from connectors.records import SourceCustomer
from sandbox.synthetic import BusinessSpec, write_csv_folder
from sync.identity import stored
from sync.identity.admin import explain_pair
from sync.ledger import MatchFeatures
from sync.reconcile import ReconcileResult, reconcile
from tests.conftest import ingest_records
from tests.identity_truth import customers_by_system, ledger_clusters, system_of

SPEC = BusinessSpec(
    customers=1_100,
    seed=5,
    household_share=0.05,
    duplicate_no_address_share=0.3,
    duplicate_moved_share=0.15,
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATE = 60
"""Records ingested only after the first run."""
FEATURES = MatchFeatures.__table__  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[SourceCustomer]]:
    folder = tmp_path_factory.mktemp("business")
    write_csv_folder(SPEC, folder)
    return customers_by_system(folder)


def _number(record: SourceCustomer) -> int:
    return int(record.external_id[1:])


def _first_run(engine: Engine, export: dict[str, list[SourceCustomer]]) -> int:
    """Ingest all but the last records and reconcile them; the first late record's number."""
    first_late = sum(len(records) for records in export.values()) - LATE + 1
    for system, records in export.items():
        ingest_records(engine, system, [r for r in records if _number(r) < first_late])
    assert reconcile(engine, T0).trained
    return first_late


def _groups(engine: Engine) -> list[list[str]]:
    """Customers with two or more records, each as its records' external ids."""
    members: dict[int, list[str]] = {}
    for external_id, ledger_id in ledger_clusters(engine).items():
        members.setdefault(ledger_id, []).append(external_id)
    return sorted(sorted(group) for group in members.values() if len(group) > 1)


def _record(export: dict[str, list[SourceCustomer]], external_id: str) -> SourceCustomer:
    return next(r for r in export[system_of(external_id)] if r.external_id == external_id)


def _same_as_a_full_run(engine: Engine, at: datetime) -> ReconcileResult:
    incremental = ledger_clusters(engine)
    again = reconcile(engine, at, full=True)
    assert again.links_changed == again.retired == again.revived == 0
    assert ledger_clusters(engine) == incremental
    return again


def test_new_edited_and_deleted_records_end_as_a_full_run(
    engine: Engine, export: dict[str, list[SourceCustomer]]
) -> None:
    first_late = _first_run(engine, export)
    groups = _groups(engine)
    assert len(groups) >= 30

    # Late records arrive; two records take the e-mail of another customer; one record of
    # a customer becomes somebody else entirely; the first record of others is deleted.
    for system, records in export.items():
        ingest_records(engine, system, [r for r in records if _number(r) >= first_late])
    lonely = [
        _record(export, external_id)
        for external_id, count in Counter(
            ext for ext in ledger_clusters(engine) if _number(_record(export, ext)) < first_late
        ).items()
        if count == 1 and not any(external_id in group for group in groups)
    ]
    donors = [_record(export, group[0]) for group in groups[:2]]
    takers = [r for r in lonely if r.email][:2]
    edited = [replace(t, email=d.email) for t, d in zip(takers, donors, strict=True) if d.email]
    stranger = replace(
        _record(export, groups[2][0]),
        name="Zebulon Quartermaine",
        first_name="Zebulon",
        last_name="Quartermaine",
        email="zq@example.org",
        phone=None,
        address_line1="1 Nowhere Lane",
        postcode="99999",
    )
    edited.append(stranger)
    deleted = [replace(_record(export, group[0]), deleted=True) for group in groups[3:8]]
    for record in [*edited, *deleted]:
        ingest_records(engine, system_of(record.external_id), [record])

    added = reconcile(engine, T0 + timedelta(hours=1))
    assert not added.trained
    assert added.compared_records == LATE + len(edited)
    clusters = ledger_clusters(engine)
    for taker, donor in zip(takers, donors, strict=True):
        assert clusters[taker.external_id] == clusters[donor.external_id]
    assert clusters[stranger.external_id] != clusters[groups[2][1]]

    _same_as_a_full_run(engine, T0 + timedelta(hours=2))
    # Nothing changed since: the next cycle compares and featurizes nothing.
    idle = reconcile(engine, T0 + timedelta(hours=3))
    assert idle.compared_records == idle.compared_pairs == idle.links_changed == 0
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(FEATURES)).scalar_one()
    assert stored == idle.source_customers


def test_rules_added_and_dropped_between_cycles_end_as_a_full_run(
    engine: Engine, export: dict[str, list[SourceCustomer]]
) -> None:
    _first_run(engine, export)
    groups = _groups(engine)
    a, b = (f"{system_of(ext)}:{ext}" for ext in (groups[0][0], groups[1][0]))
    c, d = (f"{system_of(ext)}:{ext}" for ext in groups[2][:2])
    rules = ReconcileConfig(always_merge=[(a, b)], never_merge=[(c, d)])

    merged = reconcile(engine, T0 + timedelta(hours=1), rules)
    assert merged.compared_records == 0
    clusters = ledger_clusters(engine)
    assert clusters[groups[0][0]] == clusters[groups[1][0]]
    assert clusters[groups[2][0]] != clusters[groups[2][1]]
    incremental = ledger_clusters(engine)
    again = reconcile(engine, T0 + timedelta(hours=2), rules, full=True)
    assert again.links_changed == 0
    assert ledger_clusters(engine) == incremental

    reconcile(engine, T0 + timedelta(hours=3))
    clusters = ledger_clusters(engine)
    assert clusters[groups[0][0]] != clusters[groups[1][0]]
    assert clusters[groups[2][0]] == clusters[groups[2][1]]
    _same_as_a_full_run(engine, T0 + timedelta(hours=4))


def test_explain_reads_a_record_that_arrived_after_the_last_cycle(
    engine: Engine, export: dict[str, list[SourceCustomer]]
) -> None:
    first_late = _first_run(engine, export)
    late = next(r for r in export["shop"] if _number(r) >= first_late)
    twin = replace(late, external_id="twin")
    ingest_records(engine, "shop", [late, twin])
    report = explain_pair(engine, f"shop:{late.external_id}", "shop:twin")
    assert report.explanation.match_probability > 0.99
    assert not report.same_customer


def test_a_bulk_feature_write_builds_the_indexes_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stored, "_BULK", 5)
    people = [
        SourceCustomer(f"P{n}", name=f"Person {n}", email=f"p{n}@example.com") for n in range(12)
    ]
    ingest_records(engine, "shop", [*people, replace(people[0], external_id="again")])
    reconcile(engine, T0)
    clusters = ledger_clusters(engine)
    assert clusters["again"] == clusters["P0"] != clusters["P1"]
    built = {index["name"] for index in inspect(engine).get_indexes("match_features")}
    assert built == {index.name for index in FEATURES.indexes}
