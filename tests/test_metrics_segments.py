"""RFM scores and segments, and lifecycle stages (clm_metrics/segments.py), worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from clm_metrics import (
    LedgerFrames,
    MetricValue,
    TransactionTuple,
    customer_metrics,
    customers_frame,
    metric_rows,
    transactions_frame,
)
from config.models import LifecycleSettings, MetricsConfig

AS_OF = datetime(2024, 7, 1, 12, tzinfo=UTC)


def sales(customer: int, amount: str, *days: str) -> list[TransactionTuple]:
    return [
        (
            customer,
            datetime.fromisoformat(day).replace(hour=10, tzinfo=UTC),
            "sale",
            Decimal(amount),
        )
        for day in days
    ]


def figures(
    rows: list[TransactionTuple], customers: range, settings: MetricsConfig | None = None
) -> dict[int, dict[str, MetricValue]]:
    frames = LedgerFrames(customers_frame(customers), transactions_frame(rows))
    return dict(metric_rows(customer_metrics(frames, AS_OF, settings).table))


# recency 10, 3 orders, net 300, gap 10 | recency 122, 2 orders, net 100, gap 60
# recency 11, 1 order, net 500         | recency 547, 1 order, net 20
# recency 41, 4 orders, net 100, gap 10 | a prospect
BUSINESS = [
    *sales(1, "100", "2024-06-01", "2024-06-11", "2024-06-21"),
    *sales(2, "50", "2024-01-01", "2024-03-01"),
    *sales(3, "500", "2024-06-20"),
    *sales(4, "20", "2023-01-01"),
    *sales(5, "25", "2024-04-21", "2024-05-01", "2024-05-11", "2024-05-21"),
]


def test_rfm_scores_rank_buyers_into_fifths_with_ties_sharing_a_score() -> None:
    result = figures(BUSINESS, range(1, 7))
    scores = {
        customer: (values["rfm_recency"], values["rfm_frequency"], values["rfm_monetary"])
        for customer, values in result.items()
    }
    # Five buyers: score = 1 + floor(5 * (rank - 1) / 5) = rank; ties take the lowest rank.
    # F: one order twice (rank 1, 1), then 2, 3, 4 orders (ranks 3, 4, 5).
    # M: 20 (1), 100 twice (2, 2), 300 (4), 500 (5).
    assert scores == {
        1: (5, 4, 4),
        2: (2, 3, 2),
        3: (4, 1, 5),
        4: (1, 1, 1),
        5: (3, 5, 2),
        6: (None, None, None),
    }
    assert {customer: values["rfm_segment"] for customer, values in result.items()} == {
        1: "champions",  # R 4-5, F 4-5
        2: "at_risk",  # R 1-2, F 3-5
        3: "potential_loyalists",  # R 4-5, F 1-3 (not new: R is not 5)
        4: "hibernating",  # R 1-2, F 1-2
        5: "loyal",  # R 3-5, F 3-5
        6: None,
    }


def test_lifecycle_stage_is_judged_against_each_customers_own_rhythm() -> None:
    result = figures(BUSINESS, range(1, 7))
    # Repeat buyers' gaps 10, 60, 10: one-time buyers are judged by the median, 10 days.
    assert {c: (v["usual_gap_days"], v["lifecycle_stage"]) for c, v in result.items()} == {
        1: (10.0, "active"),  # 10 / 10 = 1.0 <= 1.5
        2: (60.0, "at_risk"),  # 122 / 60 = 2.03: a slow buyer, only at risk after 4 months
        3: (10.0, "new"),  # one order, 11 / 10 = 1.1
        4: (10.0, "lost"),  # 547 / 10 > 6
        5: (10.0, "lapsed"),  # 41 / 10 = 4.1: between 3 and 6 gaps
        6: (None, "prospect"),
    }


def test_without_repeat_buyers_the_default_gap_applies() -> None:
    one = sales(1, "10", "2024-03-23")  # 100 days before the as-of date
    assert figures(one, range(1, 2))[1]["lifecycle_stage"] == "new"  # 100 / 90 = 1.1
    settings = MetricsConfig(lifecycle=LifecycleSettings(default_gap_days=30))
    lapsed = figures(one, range(1, 2), settings)[1]
    assert (lapsed["usual_gap_days"], lapsed["lifecycle_stage"]) == (30.0, "lapsed")
