"""Support cost, CAC, referrals, return on customer and loss reasons, worked by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from clm_metrics import LedgerFrames, MetricValue, customer_metrics, metric_rows
from clm_metrics.inputs import (
    CUSTOMER_SCHEMA,
    INTERACTION_SCHEMA,
    REFERRAL_SCHEMA,
    SPEND_SCHEMA,
    frame,
    transactions_frame,
)
from config.models import (
    LifecycleSettings,
    MetricsConfig,
    ReferralSettings,
    SupportSettings,
)

AS_OF = datetime(2024, 7, 1, 12, tzinfo=UTC)
D = Decimal


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=10, tzinfo=UTC)


def message(
    customer: int,
    day: str,
    kind: str = "email",
    *,
    support: bool = True,
    conversation: str | None = None,
    cost: str | None = None,
    labels: Sequence[str] = (),
    text: str | None = None,
) -> tuple[Any, ...]:
    return (
        customer,
        at(day),
        kind,
        support,
        conversation,
        None if cost is None else D(cost),
        list(labels),
        text,
    )


def run(
    customers: Sequence[tuple[Any, ...]],
    transactions: Sequence[tuple[Any, ...]],
    settings: MetricsConfig,
    interactions: Sequence[tuple[Any, ...]] = (),
    referrals: Sequence[tuple[Any, ...]] = (),
    spend: Sequence[tuple[Any, ...]] = (),
) -> dict[int, dict[str, MetricValue]]:
    frames = LedgerFrames(
        frame(customers, CUSTOMER_SCHEMA),
        transactions_frame(transactions),
        frame(interactions, INTERACTION_SCHEMA),
        frame(referrals, REFERRAL_SCHEMA),
        frame(spend, SPEND_SCHEMA),
    )
    return dict(metric_rows(customer_metrics(frames, AS_OF, settings).table))


@pytest.fixture(scope="module")
def shop() -> dict[int, dict[str, MetricValue]]:
    settings = MetricsConfig(
        support=SupportSettings(
            cost_per_incident=D(10), cost_per_message=D(2), cost_per_message_by_kind={"phone": D(5)}
        ),
        referrals=ReferralSettings(evangelist_min_referrals=2),
    )
    customers = [(1, "ads"), (2, "ads"), (3, None), (4, "fair"), (5, "ads")]
    sales = [
        (1, at("2024-06-05"), "sale", D(100)),
        (2, at("2024-06-20"), "sale", D(300)),
        (3, at("2024-06-10"), "sale", D(50)),
        (4, at("2024-05-15"), "sale", D(80)),
    ]
    interactions = [
        message(1, "2024-06-10", conversation="A"),
        message(1, "2024-06-11", conversation="A", labels=["Resolved"]),
        message(1, "2024-06-20", "phone", conversation="B"),
        message(1, "2024-06-21", conversation="B", cost="7.50"),
        message(1, "2024-06-22", support=False),  # not support: no cost, no incident
        message(4, "2024-05-20"),  # no conversation id: an incident of its own
        message(4, "2023-01-10", conversation="Z", labels=["closed"]),  # before the window
    ]
    referrals = [
        (1, 2, at("2024-06-19")),
        (1, 3, None),  # date unknown: counts
        (1, 2, at("2024-06-19")),  # the same referral from a second system
        (4, 4, at("2024-06-01")),  # self-referral: ignored
        (4, 5, at("2024-07-02")),  # after as-of: not known yet
    ]
    spend = [
        (date(2024, 6, 1), "ads", D(300)),
        (date(2024, 6, 15), "ads", D(100)),
        (date(2024, 6, 3), "radio", D(90)),  # acquired nobody in June: blended
        (date(2024, 5, 1), "fair", D(60)),
        (date(2024, 5, 2), "ads", D(50)),  # ads acquired nobody in May: blended
        (date(2024, 7, 5), "ads", D(1000)),  # after as-of
    ]
    return run(customers, sales, settings, interactions, referrals, spend)


def test_support_incidents_and_cost(shop: dict[int, dict[str, MetricValue]]) -> None:
    pick = ("support_incidents", "open_incidents", "last_incident", "support_cost")
    assert {c: tuple(v[name] for name in pick) for c, v in shop.items()} == {
        # A: 10 + 2 + 2; B: 10 + 5 (phone) + 7.50 (its own cost); B has no resolved label
        1: (2, 1, date(2024, 6, 21), D("36.50")),
        2: (0, 0, None, D("0.00")),
        3: (0, 0, None, D("0.00")),
        4: (2, 1, date(2024, 5, 20), D("24.00")),  # 10 + 2 each
        5: (0, 0, None, D("0.00")),
    }


def test_cac_shares_channel_spend_and_blends_the_unattributed(
    shop: dict[int, dict[str, MetricValue]],
) -> None:
    assert {c: (v["acquisition_channel"], v["cac"]) for c, v in shop.items()} == {
        1: ("ads", D("230.00")),  # ads June 400 / 2 + radio June 90 / 3 buyers
        2: ("ads", D("230.00")),
        3: (None, D("30.00")),  # no channel: only the blended share
        4: ("fair", D("110.00")),  # fair May 60 / 1 + ads May 50 blended / 1
        5: ("ads", None),  # a prospect was not acquired yet
    }


def test_referrals_evangelists_and_return_on_customer(
    shop: dict[int, dict[str, MetricValue]],
) -> None:
    pick = ("referrals_made", "referred_revenue", "evangelist", "return_on_customer")
    assert {c: tuple(v[name] for name in pick) for c, v in shop.items()} == {
        # (100 + 350 - 230 - 36.50) / (230 + 36.50) = 0.6886; two referrals and new
        1: (2, D("350.00"), True, 0.69),
        2: (0, D("0.00"), False, 0.3),  # (300 - 230) / 230 = 0.3043
        3: (0, D("0.00"), False, 0.67),  # (50 - 30) / 30
        4: (0, D("0.00"), False, -0.34),  # (80 - 110 - 12) / (110 + 12): 2023 cost is outside
        5: (0, D("0.00"), False, None),  # nothing spent on a prospect
    }


def test_an_evangelist_must_still_be_active() -> None:
    settings = MetricsConfig(
        referrals=ReferralSettings(
            evangelist_min_referrals=5, evangelist_min_referred_revenue=D(40)
        ),
        lifecycle=LifecycleSettings(default_gap_days=10),
    )
    sales = [
        (1, at("2024-06-28"), "sale", D(10)),
        (2, at("2024-01-01"), "sale", D(10)),
        (3, at("2024-06-28"), "sale", D(45)),
    ]
    result = run(
        [(1, None), (2, None), (3, None)], sales, settings, referrals=[(1, 3, None), (2, 3, None)]
    )
    # Both referred 45.00 (>= 40), but customer 2 is lost (182 days / 10).
    assert (result[1]["evangelist"], result[2]["evangelist"]) == (True, False)
    assert result[2]["lifecycle_stage"] == "lost"


def test_loss_reasons_of_lapsed_and_lost_customers() -> None:
    settings = MetricsConfig(
        support=SupportSettings(cost_per_incident=D(10)),
        lifecycle=LifecycleSettings(default_gap_days=10),
    )
    customers = [
        (1, None, "Called her.\nLoss reason: moved away", []),
        (2, None, None, ["VIP", "Lost: price "]),
        (3, None, None, []),
        (4, None, None, []),
    ]
    transactions = [
        (1, at("2024-03-01"), "sale", D(40), D(5)),  # bought with a discount ...
        (1, at("2024-03-05"), "refund", D(40), None),  # ... and was refunded
        (2, at("2024-05-30"), "sale", D(40), None),  # 32 days: lapsed (3.2 gaps)
        (3, at("2024-06-28"), "sale", D(40), None),  # new: no loss figures
        (4, at("2024-01-10"), "sale", D(40), None),
    ]
    interactions = [
        message(2, "2024-06-01", text="Broken zipper, formal complaint"),  # open incident
        message(3, "2024-06-29", labels=["Closed"], text="where is my parcel"),
        *(
            message(4, f"2024-02-0{day}", labels=["Closed"], text="a question")
            for day in range(2, 7)
        ),
        # a complaint, but older than the 5 latest messages searched
        message(4, "2024-01-20", support=False, text="refund please"),
    ]
    result = run(customers, transactions, settings, interactions)

    assert {
        c: (v["lifecycle_stage"], v["loss_reason"], v["loss_signals"]) for c, v in result.items()
    } == {
        1: (
            "lost",
            "moved away",  # the admin's note wins
            "last_order_refunded, one_time_buyer, discount_only_buyer",
        ),
        2: ("lapsed", "price", "open_incident, complaints, one_time_buyer"),
        3: ("new", None, None),
        # support cost 50 > 3 x the median (10) of customers with any support cost
        4: ("lost", "high_support_cost", "high_support_cost, one_time_buyer"),
    }
