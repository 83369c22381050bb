"""The catalogue of per-customer metrics: name, kind and meaning.

The names are what the YAML push mapping (``push.fields[].metric``) and the customer export
use; ``docs/metrics.md`` gives every formula and a test keeps it in step with this list.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

MetricValue = int | float | Decimal | date | str | bool | None


class Kind(enum.StrEnum):
    COUNT = "count"
    MONEY = "money"
    """Home currency, rounded half-even to cents when the value leaves the engine."""
    DATE = "date"
    NUMBER = "number"
    """A float, rounded to the metric's ``digits``."""
    TEXT = "text"
    FLAG = "flag"


@dataclass(frozen=True, slots=True)
class Metric:
    kind: Kind
    meaning: str
    digits: int = 2


METRICS: dict[str, Metric] = {
    "orders": Metric(Kind.COUNT, "Number of sales (refunds are not orders)."),
    "net_revenue": Metric(Kind.MONEY, "Sales minus refunds, in the home currency."),
    "first_purchase": Metric(Kind.DATE, "Date of the first sale (UTC)."),
    "last_purchase": Metric(Kind.DATE, "Date of the latest sale (UTC)."),
    "recency_days": Metric(Kind.COUNT, "Whole days from the last sale to the as-of date."),
    "lifespan_days": Metric(Kind.COUNT, "Days from the first sale to the latest transaction."),
    "repeat_purchases": Metric(Kind.COUNT, "Sales after the first one."),
    "avg_days_between_orders": Metric(
        Kind.NUMBER, "Days from first to last sale over the gaps between sales.", 1
    ),
    "average_order_value": Metric(Kind.MONEY, "Net revenue per order."),
    "revenue_12m": Metric(Kind.MONEY, "Net revenue of the revenue window before as-of."),
    "support_incidents": Metric(Kind.COUNT, "Conversations with a support message."),
    "open_incidents": Metric(Kind.COUNT, "Support conversations without a resolved label."),
    "last_incident": Metric(Kind.DATE, "Date of the latest support message."),
    "support_cost": Metric(Kind.MONEY, "Incidents and messages at their YAML cost."),
    "acquisition_channel": Metric(Kind.TEXT, "The marketing channel that brought them."),
    "cac": Metric(Kind.MONEY, "Channel spend of the acquisition period per customer acquired."),
    "referrals_made": Metric(Kind.COUNT, "Customers this customer referred."),
    "referred_revenue": Metric(Kind.MONEY, "Net revenue of the customers they referred."),
    "return_on_customer": Metric(
        Kind.NUMBER, "(revenue + referred revenue - CAC - service) / (CAC + service)."
    ),
    "rfm_recency": Metric(Kind.COUNT, "R score 1-5 among buyers (5: most recent)."),
    "rfm_frequency": Metric(Kind.COUNT, "F score 1-5 among buyers (5: most orders)."),
    "rfm_monetary": Metric(Kind.COUNT, "M score 1-5 among buyers (5: highest net revenue)."),
    "rfm_segment": Metric(Kind.TEXT, "The first YAML segment whose R and F ranges match."),
    "usual_gap_days": Metric(
        Kind.NUMBER, "Own average gap between orders, else the repeat buyers' median.", 1
    ),
    "lifecycle_stage": Metric(
        Kind.TEXT, "prospect, new, active, at_risk, lapsed or lost (recency / usual gap)."
    ),
    "evangelist": Metric(Kind.FLAG, "Refers enough customers or revenue and still active."),
    "loss_reason": Metric(Kind.TEXT, "The admin's reason, else the first loss signal."),
    "loss_signals": Metric(Kind.TEXT, "Every loss signal of a lapsed or lost customer."),
    "p_alive": Metric(Kind.NUMBER, "BG/NBD probability that the customer is still active.", 4),
    "churn_risk": Metric(Kind.NUMBER, "1 - p_alive.", 4),
    "expected_purchases": Metric(
        Kind.NUMBER, "BG/NBD expected purchase days in the prediction horizon (90 days)."
    ),
    "expected_next_order": Metric(
        Kind.DATE, "As-of date plus the expected gap between purchases, if likely alive."
    ),
    "expected_order_value": Metric(Kind.MONEY, "Gamma-Gamma expected value of an order."),
    "clv": Metric(Kind.MONEY, "Discounted expected revenue over the CLV horizon."),
}
"""Every metric a customer has, in export column order."""
