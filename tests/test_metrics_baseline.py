"""Baselines in the ledger (sync/baselines.py), on both databases: frozen for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from config.models import MetricsConfig
from connectors.records import SourceCustomer, SourceTransaction
from sync.baselines import BaselineError, compare_with_baseline, create_baseline
from sync.figures import compute_figures
from sync.ledger import Baseline, BaselineCustomer, MetricsRun
from sync.reconcile import reconcile
from tests.conftest import ingest_records

BASELINE = Baseline.__table__  # type: ignore[attr-defined]
BASELINE_CUSTOMER = BaselineCustomer.__table__  # type: ignore[attr-defined]
RUN = MetricsRun.__table__  # type: ignore[attr-defined]
AS_OF = datetime(2024, 7, 1, 12, tzinfo=UTC)
SETTINGS = MetricsConfig()


def sale(external_id: str, customer: str, day: str, amount: int) -> SourceTransaction:
    moment = datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)
    return SourceTransaction(external_id, customer, moment, Decimal(amount), "USD")


def frozen(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with engine.connect() as connection:
        baselines = connection.execute(select(BASELINE).order_by(BASELINE.c.name)).all()
        customers = connection.execute(
            select(BASELINE_CUSTOMER).order_by(BASELINE_CUSTOMER.c.ledger_customer_id)
        ).all()
    return [tuple(row) for row in baselines], [tuple(row) for row in customers]


def test_a_baseline_is_unchanged_by_later_cycles_merges_and_splits(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            SourceCustomer("A", email="ann@example.com"),
            SourceCustomer("B", email="bob@example.com"),
            sale("T1", "A", "2024-03-01", 100),
            sale("T2", "A", "2024-05-01", 50),
            sale("T3", "B", "2024-06-01", 70),
        ],
    )
    reconcile(engine, AS_OF)
    create_baseline(engine, "spring", AS_OF, SETTINGS, AS_OF)
    before = frozen(engine)
    assert len(before[1]) == 2

    # A later cycle: new sales, and a record that merges Ann and Bob (same phone as both).
    ingest_records(
        engine,
        "books",
        [
            SourceCustomer("X", email="ann@example.com", phone="+1 415 555 0100"),
            SourceCustomer("Y", email="bob@example.com", phone="+1 415 555 0100"),
            sale("T9", "X", "2024-06-20", 900),
        ],
    )
    merged = reconcile(engine, AS_OF + timedelta(days=5))
    assert merged.ledger_customers == 1
    compute_figures(engine, AS_OF + timedelta(days=5))
    assert frozen(engine) == before

    # Split again: the linking record is deleted.
    ingest_records(engine, "books", [SourceCustomer("Y", deleted=True)])
    split = reconcile(engine, AS_OF + timedelta(days=6))
    assert split.ledger_customers == 2
    compute_figures(engine, AS_OF + timedelta(days=6))
    assert frozen(engine) == before

    with pytest.raises(BaselineError, match="exists already"):
        create_baseline(engine, "spring", AS_OF, SETTINGS, AS_OF)
    assert frozen(engine) == before


def test_compare_refuses_until_the_waiting_rule_allows(engine: Engine) -> None:
    records: list[SourceCustomer | SourceTransaction] = []
    for index in range(10):
        # every customer buys twice, ten days apart
        records.append(SourceCustomer(f"C{index}", email=f"c{index}@example.com"))
        records.append(sale(f"T{index}-a", f"C{index}", "2024-06-01", 10))
        records.append(sale(f"T{index}-b", f"C{index}", "2024-06-11", 10))
    ingest_records(engine, "shop", records)
    reconcile(engine, AS_OF)
    create_baseline(engine, "june", AS_OF, SETTINGS, AS_OF)

    early = compare_with_baseline(engine, "june", AS_OF + timedelta(days=3), SETTINGS)
    assert early.status == "too_early"
    assert "means something from 2024-07-11" in early.message

    later = compare_with_baseline(engine, "june", AS_OF + timedelta(days=10), SETTINGS)
    assert later.status == "final"  # everyone's gap is 10 days: fast = slow
    revenue = {c.figure: c for c in later.changes}["average_revenue_per_customer"]
    assert (revenue.baseline, revenue.now, revenue.change) == (20.0, 20.0, 0.0)

    with pytest.raises(BaselineError, match="no baseline named 'july' \\(baselines: june\\)"):
        compare_with_baseline(engine, "july", AS_OF, SETTINGS)


def test_every_metrics_run_keeps_its_models(engine: Engine) -> None:
    ingest_records(engine, "shop", [SourceCustomer("A"), sale("T1", "A", "2024-03-01", 10)])
    reconcile(engine, AS_OF)
    result = compute_figures(engine, AS_OF)
    assert result.messages[0].startswith("too little data for predictions: 1 customers")
    with engine.connect() as connection:
        (run,) = connection.execute(select(RUN)).mappings().all()
    assert (run["as_of"], run["customers"], run["changed"]) == (AS_OF, 1, 1)
    assert '"bgnbd": null' in run["models_json"]
