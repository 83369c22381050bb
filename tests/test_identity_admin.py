"""Admin control over who is who, on both databases: rules, merge and unmerge with their log,
undo, the review queue, explain, and sales booked twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, select

from config.models import PushField, ReconcileConfig
from connectors.records import SourceCustomer, SourceTransaction
from sync.db import create_ledger_engine, ensure_current_schema
from sync.figures import compute_figures
from sync.identity.admin import (
    AdminError,
    explain_pair,
    merge,
    merge_log,
    review_decision,
    review_queue,
    undo,
    unmerge,
)
from sync.identity.model import TERM_FREQUENCIES
from sync.ledger import CustomerMetrics, SourceTransactionRow, TransactionMatch
from sync.push import plan_updates
from sync.reconcile import load_model, reconcile
from tests.conftest import clm_sync, ingest_records, write_config
from tests.test_reconcile import ledger_ids, links

T0 = datetime(2026, 3, 1, tzinfo=UTC)
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
FIELDS = [PushField(metric=m, field=m) for m in ("orders", "net_revenue", "last_purchase")]
METRICS = CustomerMetrics.__table__  # type: ignore[attr-defined]
MATCH = TransactionMatch.__table__  # type: ignore[attr-defined]
TRANSACTION = SourceTransactionRow.__table__  # type: ignore[attr-defined]


def sale(ext: str, customer: str, day: int, amount: str, **extra: str) -> SourceTransaction:
    return SourceTransaction(
        ext,
        customer,
        T0 + timedelta(days=day),
        Decimal(amount),
        "USD",
        **extra,  # type: ignore[arg-type]
    )


def small_shop(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            SourceCustomer("S1", name="Ann Lee", email="ann@example.com"),
            SourceCustomer("S2", name="Bob Stone", email="bob@example.com"),
            SourceCustomer("S3", name="Cleo Park", email="cleo@example.com"),
            sale("O1", "S1", 1, "100.00"),
            sale("O2", "S2", 2, "40.00"),
            sale("O3", "S2", 9, "25.00"),
            sale("O4", "S3", 3, "70.00"),
        ],
    )


def state(engine: Engine) -> tuple[dict[int, str], list[tuple[str, str, str]]]:
    """Every customer's stored figures and the push plan for the shop."""
    compute_figures(engine, AS_OF)
    with engine.connect() as connection:
        figures: dict[int, str] = dict(
            connection.execute(select(METRICS.c.ledger_customer_id, METRICS.c.values_json)).all()
        )
        plan = sorted(
            (update.external_id, update.field, update.value)
            for chunk in plan_updates(connection, "shop", FIELDS)
            for update in chunk
        )
    return figures, plan


def test_merge_then_unmerge_returns_metrics_and_push_plan_to_before(engine: Engine) -> None:
    small_shop(engine)
    reconcile(engine, T0)
    before = state(engine)
    ids = ledger_ids(engine)

    entry = merge(engine, "shop:S1", "shop:S2", "ann-admin", "same household account", T0)
    reconcile(engine, T0 + timedelta(hours=1))
    merged = ledger_ids(engine)
    assert merged["S1"] == merged["S2"]
    assert links(engine)["shop", "S2"][1] == "admin rule"
    figures, plan = state(engine)
    assert json.loads(figures[merged["S1"]])["orders"] == 3
    assert plan != before[1]

    split = unmerge(engine, "shop:S2", "ann-admin", "two people after all", T0)
    reconcile(engine, T0 + timedelta(hours=2))
    assert ledger_ids(engine) == ids, "the split-off record did not get its customer back"
    assert state(engine) == before

    log = merge_log(engine)
    assert [(e.id, e.action, e.actor, e.reason) for e in log] == [
        (split, "unmerge", "ann-admin", "two people after all"),
        (entry, "merge", "ann-admin", "same household account"),
    ]
    assert log[0].records == "shop:S2 shop:S1"


def test_undoing_a_merge_restores_the_customers(engine: Engine) -> None:
    small_shop(engine)
    reconcile(engine, T0)
    before = state(engine)
    ids = ledger_ids(engine)
    entry = merge(engine, "shop:S2", "shop:S3", "ops", None, T0)
    reconcile(engine, T0 + timedelta(hours=1))
    assert len(set(ledger_ids(engine).values())) == 2

    undone = undo(engine, entry, "lead", T0 + timedelta(hours=2))
    reconcile(engine, T0 + timedelta(hours=3))

    assert (undone.undone_by, undone.undone_at) == ("lead", T0 + timedelta(hours=2))
    assert ledger_ids(engine) == ids
    assert state(engine) == before
    try:
        undo(engine, entry, "lead", T0)
    except AdminError as error:
        assert "undone already" in str(error)
    else:
        raise AssertionError("an entry was undone twice")


def test_yaml_rules_win_over_keys_and_unknown_records_are_refused(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            SourceCustomer("A", name="Dee Fox", email="family@example.com"),
            SourceCustomer("B", name="Eli Fox", email="family@example.com"),
            SourceCustomer("C", name="Gus Wren"),
            SourceCustomer("D", name="Hal Moss"),
        ],
    )
    config = ReconcileConfig(
        never_merge=[("shop:A", "shop:B")], always_merge=[("shop:C", "shop:D")]
    )
    result = reconcile(engine, T0, config)
    ids = ledger_ids(engine)
    assert ids["A"] != ids["B"]
    assert ids["C"] == ids["D"]
    assert result.held_back == 1
    for bad in ("shop:Z", "nonsense"):
        try:
            merge(engine, "shop:A", bad, "ops", None, T0)
        except AdminError as error:
            assert bad in str(error)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_review_lists_uncertain_pairs_and_a_decision_writes_a_rule(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            SourceCustomer("P1", name="Nora Quinn", address_line1="5 Elm St", postcode="30301"),
            SourceCustomer("P2", name="Nora Quinn", address_line1="7 Elm St", postcode="30301"),
            SourceCustomer("P3", name="Otto Vance", address_line1="9 Oak Rd", postcode="10001"),
        ],
    )
    # A band wide enough for the built-in model's view of two same-named neighbours.
    config = ReconcileConfig(review_threshold=0.001, link_threshold=0.99999)
    reconcile(engine, T0, config)
    neighbours = explain_pair(engine, "shop:P1", "shop:P2")
    assert 0.001 <= neighbours.explanation.match_probability < 0.99999
    assert not neighbours.same_customer
    queue = review_queue(engine, config)
    assert [(q.record_a, q.record_b) for q in queue] == [("shop:P1", "shop:P2")]
    assert queue[0].name_a == "Nora Quinn"

    review_decision(engine, "shop:P1", "shop:P2", accept=True, actor="ops", reason=None, now=T0)
    assert review_queue(engine, config) == []
    reconcile(engine, T0 + timedelta(hours=1), config)
    ids = ledger_ids(engine)
    assert ids["P1"] == ids["P2"] != ids["P3"]
    assert merge_log(engine)[0].action == "review-accept"


def test_explain_names_every_comparison_and_the_link(engine: Engine) -> None:
    small_shop(engine)
    ingest_records(engine, "books", [SourceCustomer("B1", name="Ann Lee", email="ANN@example.com")])
    reconcile(engine, T0)
    report = explain_pair(engine, "shop:S1", "books:B1")
    assert report.same_customer
    assert report.rule_b == "same email"
    parts = {c.comparison: c.level for c in report.explanation.contributions}
    assert parts["email"] == "exact"
    assert set(parts) == {"first_name", "last_name", "email", "phone", "company", "address", "city"}
    assert not explain_pair(engine, "shop:S1", "shop:S2").same_customer


def test_a_shop_order_booked_again_in_quickbooks_counts_once(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            SourceCustomer("S1", name="Ann Lee", email="ann@example.com"),
            sale("1001", "S1", 1, "120.00"),
            sale("1002", "S1", 5, "30.00"),
        ],
    )
    ingest_records(
        engine,
        "quickbooks",
        [
            SourceCustomer("Q7", name="Ann Lee", email="ann@example.com"),
            # The order, entered as a sales receipt a day later, naming the order number.
            sale("SR-88", "Q7", 2, "120.00", memo="Web order #1001", document_kind="SalesReceipt"),
            # Same amount, but another sale: nothing names it and it is weeks apart.
            sale("INV-9", "Q7", 40, "30.00", document_kind="Invoice"),
        ],
    )
    config = ReconcileConfig(revenue_authority="quickbooks")
    result = reconcile(engine, T0, config)
    compute_figures(engine, AS_OF)

    assert result.transactions_matched == 1
    with engine.connect() as connection:
        (values,) = connection.execute(select(METRICS.c.values_json)).scalars().all()
        matched = connection.execute(
            select(MATCH.c.rule, TRANSACTION.c.system, TRANSACTION.c.external_id).join(
                TRANSACTION, TRANSACTION.c.id == MATCH.c.transaction_id
            )
        ).all()
    figures = json.loads(values)
    assert figures["orders"] == 3
    assert Decimal(figures["net_revenue"]) == Decimal("180.00")
    # QuickBooks is the authority: its sales receipt counts, the shop's order is left out.
    assert [tuple(row) for row in matched] == [("same order number", "shop", "1001")]


def test_admin_commands_from_the_command_line(tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    (tmp_path / "exports").mkdir()
    config = str(write_config(tmp_path, ledger))
    engine = create_ledger_engine(ledger)
    ensure_current_schema(engine)
    small_shop(engine)
    engine.dispose()

    done = clm_sync("reconcile", "--full", "-c", config)
    assert done.returncode == 0, done.stderr
    assert "3 source records -> 3 ledger customers" in done.stdout

    merged = clm_sync(
        "merge", "shop:S1", "shop:S3", "--reason", "one family", "--by", "kim", "-c", config
    )
    assert merged.returncode == 0, merged.stderr
    assert "Merge-log entry 1" in merged.stdout
    assert clm_sync("reconcile", "-c", config).returncode == 0

    why = clm_sync("explain", "shop:S1", "shop:S3", "-c", config)
    assert why.returncode == 0, why.stderr
    for word in ("first_name", "last_name", "email", "address", "total", "Linked: one customer"):
        assert word in why.stdout

    log = clm_sync("merge-log", "-c", config)
    assert "kim" in log.stdout and "one family" in log.stdout

    undone = clm_sync("undo", "1", "--by", "lee", "-c", config)
    assert undone.returncode == 0 and "Undid entry 1" in undone.stdout

    unknown = clm_sync("unmerge", "shop:NOPE", "-c", config)
    assert unknown.returncode == 1 and "no live customer record shop:NOPE" in unknown.stderr

    half = clm_sync("review", "shop:S1", "-c", config)
    assert half.returncode == 2 and "exactly one of --accept or --reject" in half.stderr


def test_the_model_trains_when_due_and_again_on_demand(engine: Engine) -> None:
    people = [
        SourceCustomer(
            f"P{i}",
            name=f"{first} {last}",
            email=f"{first}.{last}{i}@example.com".lower(),
            address_line1=f"{i} Elm St",
            postcode=f"{30300 + i % 7}",
        )
        for i, (first, last) in enumerate(
            (f, s) for f in ("Ann", "Bob", "Cleo", "Dan", "Eve") for s in ("Lee", "Fox", "Moss")
        )
    ]
    ingest_records(engine, "shop", people)
    config = ReconcileConfig(min_training_records=10)

    first = reconcile(engine, T0, config)
    again = reconcile(engine, T0 + timedelta(hours=1), config)
    retrained = reconcile(engine, T0 + timedelta(hours=2), config, retrain=True)

    assert first.trained and not again.trained and retrained.trained
    assert again.compared_records == 0
    assert retrained.model_id > first.model_id
    assert retrained.compared_records == len(people)
    with engine.connect() as connection:
        stored = load_model(connection)
    assert stored is not None and stored[0] == retrained.model_id
    assert set(stored[1][TERM_FREQUENCIES]) == {"first_name", "last_name"}
