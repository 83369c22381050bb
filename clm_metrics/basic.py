"""The first per-customer figures: orders, net revenue, first and last purchase, recency.

The metrics issue replaces this module with the full engine (RFM, CLV, churn, ...); the
names here are what the YAML push mapping and the customer export refer to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

CENT = Decimal("0.01")

MetricValue = int | Decimal | date | None

METRICS: dict[str, str] = {
    "orders": "Number of sales (refunds do not count as orders).",
    "net_revenue": "Sales minus refunds, in the home currency, rounded to cents.",
    "first_purchase": "Date of the first sale (UTC).",
    "last_purchase": "Date of the latest sale (UTC).",
    "recency_days": "Whole days from the last sale to the as-of date.",
}
"""Every metric a customer has, by the name the YAML and the export use."""


@dataclass(frozen=True, slots=True)
class Purchase:
    """A sale or refund of one customer, in the home currency."""

    occurred_at: datetime
    kind: Literal["sale", "refund"]
    home_amount: Decimal


@dataclass(frozen=True, slots=True)
class CustomerFigures:
    orders: int
    net_revenue: Decimal
    first_purchase: date | None
    last_purchase: date | None
    recency_days: int | None

    def values(self) -> dict[str, MetricValue]:
        """The figures by metric name (the keys of :data:`METRICS`)."""
        return {
            "orders": self.orders,
            "net_revenue": self.net_revenue,
            "first_purchase": self.first_purchase,
            "last_purchase": self.last_purchase,
            "recency_days": self.recency_days,
        }


def customer_figures(purchases: Iterable[Purchase], as_of: datetime) -> CustomerFigures:
    """Figures of one customer from all their sales and refunds, as of ``as_of`` (aware).

    Purchases after ``as_of`` are ignored, so a report as of a past date is reproducible.
    """
    orders = 0
    net = Decimal(0)
    first: datetime | None = None
    last: datetime | None = None
    for purchase in purchases:
        if purchase.occurred_at > as_of:
            continue
        if purchase.kind == "refund":
            net -= purchase.home_amount
            continue
        orders += 1
        net += purchase.home_amount
        if first is None or purchase.occurred_at < first:
            first = purchase.occurred_at
        if last is None or purchase.occurred_at > last:
            last = purchase.occurred_at
    # Dates are UTC dates whatever the zone of the inputs (METRICS says so).
    first_day = None if first is None else first.astimezone(UTC).date()
    last_day = None if last is None else last.astimezone(UTC).date()
    return CustomerFigures(
        orders=orders,
        net_revenue=net.quantize(CENT, rounding=ROUND_HALF_EVEN),
        first_purchase=first_day,
        last_purchase=last_day,
        recency_days=None if last_day is None else (as_of.astimezone(UTC).date() - last_day).days,
    )
