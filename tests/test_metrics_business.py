"""Business figures, the waiting rule and baseline comparisons (clm_metrics/business.py,
clm_metrics/compare.py), worked by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import polars as pl

from clm_metrics import LedgerFrames, customer_metrics, customers_frame, transactions_frame
from clm_metrics.business import business_figures, cohort_retention
from clm_metrics.compare import compare, stage_flow, waiting_rule
from clm_metrics.history import known_transactions
from config.models import BaselineSettings, MetricsConfig
from tests.test_metrics_segments import AS_OF, BUSINESS


def test_business_figures_of_the_worked_business() -> None:
    frames = LedgerFrames(customers_frame(range(1, 7)), transactions_frame(BUSINESS))
    settings = MetricsConfig()
    table = customer_metrics(frames, AS_OF, settings).table

    figures = business_figures(table, known_transactions(frames, AS_OF), settings)

    assert figures.summary == {
        "customers": 6,
        "buyers": 5,
        "average_revenue_per_customer": 204.0,  # (300 + 100 + 500 + 20 + 100) / 5
        "average_lifespan_days": 22.0,  # (20 + 60 + 0 + 0 + 30) / 5
        "repeat_purchase_rate": 0.6,  # 3 of 5 bought twice or more
        "support_cost_per_customer": 0.0,
        "average_cac": 0.0,  # nothing was spent
        "return_on_customers": None,  # nor on service: no return to divide by
    }
    tables = figures.tables
    assert tables["customers_by_stage"].rows() == [
        ("prospect", 1),
        ("new", 1),
        ("active", 1),
        ("at_risk", 1),
        ("lapsed", 1),
        ("lost", 1),
    ]
    # Customer 4 bought on 2023-01-01 with a usual gap of 10 days: lost after 6 gaps, in March.
    assert tables["acquired_and_lost"].rows() == [
        (date(2023, 1, 1), 1, 0),
        (date(2023, 3, 1), 0, 1),
        (date(2024, 1, 1), 1, 0),
        (date(2024, 4, 1), 1, 0),
        (date(2024, 6, 1), 2, 0),
    ]
    assert tables["repeat_purchasers_by_orders"].rows() == [
        ("2", 1),
        ("3-4", 2),
        ("5-9", 0),
        ("10+", 0),
    ]
    assert tables["cac_by_channel"].rows() == [("(none)", 5, 0.0)]
    assert tables["loss_reasons"].rows() == [("one_time_buyer", 1, 20.0)]
    assert tables["top_evangelists"].height == 0
    assert figures.as_dict()["tables"]["acquired_and_lost"][0] == {
        "month": "2023-01-01",
        "acquired": 1,
        "lost": 0,
    }


def test_cohort_retention_by_acquisition_month() -> None:
    def sale(customer: int, month: int) -> tuple[int, datetime, str, Decimal]:
        return (customer, datetime(2024, month, 15, tzinfo=UTC), "sale", Decimal(1))

    sales = transactions_frame(
        [sale(1, 1), sale(1, 2), sale(1, 2), sale(1, 4), sale(2, 1), sale(3, 2), sale(3, 3)]
    )
    assert cohort_retention(sales).rows() == [
        (date(2024, 1, 1), 0, 2, 1.0),
        (date(2024, 1, 1), 1, 1, 0.5),  # customer 1 came back in February, 2 did not
        (date(2024, 1, 1), 3, 1, 0.5),
        (date(2024, 2, 1), 0, 1, 1.0),
        (date(2024, 2, 1), 1, 1, 1.0),
    ]


GAPS = np.array([5, 7, 10, 12, 15, 20, 30, 40, 60, 90] * 2, dtype=np.float64)


def test_waiting_rule_worked_example() -> None:
    settings = BaselineSettings(fast_share=0.10, slow_share=0.10)
    # 20 repeat purchasers: the fastest 10% are two with gaps 5 and 5 (median 5 days); the
    # slowest 10% two with 90 and 90.
    waiting = waiting_rule(GAPS, date(2024, 1, 1), settings, 90)
    assert (waiting.fast_gap_days, waiting.slow_gap_days) == (5.0, 90.0)
    assert (waiting.earliest, waiting.final) == (date(2024, 1, 6), date(2024, 3, 31))

    wider = waiting_rule(GAPS, date(2024, 1, 1), BaselineSettings(fast_share=0.2), 90)
    # four fastest: 5, 5, 7, 7 -> median 6 days
    assert (wider.fast_gap_days, wider.earliest) == (6.0, date(2024, 1, 7))

    nobody = waiting_rule(np.array([]), date(2024, 1, 1), settings, 30)
    assert (nobody.earliest, nobody.final) == (date(2024, 1, 31), date(2024, 1, 31))


def _figures(revenue: list[float], gaps: np.ndarray) -> pl.DataFrame:
    count = len(revenue)
    return pl.DataFrame(
        {
            "customer_id": list(range(1, count + 1)),
            "lifecycle_stage": ["active"] * count,
            "orders": [2] * count,
            "net_revenue": revenue,
            "average_order_value": [r / 2 for r in revenue],
            "lifespan_days": [100] * count,
            "support_cost": [0.0] * count,
            "cac": [None] * count,
            "avg_days_between_orders": gaps[:count],
        },
        schema_overrides={"cac": pl.Float64},
    )


def test_compare_refuses_honestly_when_too_early() -> None:
    baseline = _figures([100.0] * 20, GAPS)
    result = compare(baseline, baseline, date(2024, 1, 1), date(2024, 1, 5), BaselineSettings(), 90)
    assert (result.status, result.changes) == ("too_early", ())
    assert result.message == (
        "too early to compare with the baseline of 2024-01-01: the fastest repeat purchasers "
        "buy every 5 days, so a comparison means something from 2024-01-06 (preliminary "
        "until 2024-03-31)"
    )


def test_compare_gives_changes_with_a_bootstrap_interval() -> None:
    baseline = _figures([100.0] * 20, GAPS)
    later = _figures([110.0] * 20, GAPS)
    settings = BaselineSettings()

    early = compare(baseline, later, date(2024, 1, 1), date(2024, 1, 6), settings, 90)
    assert early.status == "preliminary"
    assert early.message.endswith("results are final from 2024-03-31")

    final = compare(baseline, later, date(2024, 1, 1), date(2024, 3, 31), settings, 90)
    assert final.status == "final"
    revenue = {change.figure: change for change in final.changes}["average_revenue_per_customer"]
    assert (revenue.baseline, revenue.now) == (100.0, 110.0)
    # Every customer's revenue rose by 10%: every resample says +10% too.
    assert revenue.change is not None and round(revenue.change, 6) == 0.1
    assert (round(revenue.low or 0, 6), round(revenue.high or 0, 6)) == (0.1, 0.1)
    cac = {change.figure: change for change in final.changes}["average_cac"]
    assert (cac.baseline, cac.change) == (None, None), "no CAC known: nothing to compare"

    rng = np.random.default_rng(3)
    noisy = compare(
        _figures(list(rng.normal(100, 20, 20)), GAPS),
        _figures(list(rng.normal(100, 20, 20)), GAPS),
        date(2024, 1, 1),
        date(2024, 6, 1),
        settings,
        90,
    )
    spread = {change.figure: change for change in noisy.changes}["average_revenue_per_customer"]
    assert spread.low is not None and spread.high is not None and spread.change is not None
    assert spread.low < spread.change < spread.high
    assert spread.high - spread.low > 0.05, "20 noisy customers cannot pin the change"


def test_stage_flow_counts_moves_between_stages_since_the_baseline() -> None:
    then = pl.DataFrame({"customer_id": [1, 2, 3], "lifecycle_stage": ["active", "active", "new"]})
    now = pl.DataFrame(
        {"customer_id": [1, 2, 3, 4], "lifecycle_stage": ["active", "lapsed", "active", "new"]}
    )
    assert stage_flow(then, now).rows() == [
        ("(none)", "new", 1),  # acquired since the baseline
        ("active", "active", 1),
        ("active", "lapsed", 1),
        ("new", "active", 1),
    ]
