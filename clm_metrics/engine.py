"""The metrics engine: ledger frames in, one row of figures per customer out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import polars as pl

from clm_metrics.acquisition import cac
from clm_metrics.catalog import METRICS, Kind, MetricValue
from clm_metrics.history import history, known_transactions
from clm_metrics.inputs import MONEY, LedgerFrames
from clm_metrics.loss import loss_reasons
from clm_metrics.predict import ModelFits, fit_models, predictions, purchase_summary
from clm_metrics.referrals import evangelist, referrals, return_on_customer
from clm_metrics.segments import lifecycle, rfm
from clm_metrics.support import support
from config.models import MetricsConfig

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class MetricsResult:
    """The figures of every customer (one row each, by id; the METRICS columns first, then
    the window sums the business figures need) and the models behind them."""

    table: pl.DataFrame
    fits: ModelFits


def customer_metrics(
    frames: LedgerFrames, as_of: datetime, settings: MetricsConfig | None = None
) -> MetricsResult:
    """Every metric of :data:`METRICS` for every customer of ``frames``, as of ``as_of``."""
    settings = settings or MetricsConfig()
    known = known_transactions(frames, as_of)
    table = history(frames, as_of, settings.revenue_window_days, settings.roc_window_days)
    costs = support(frames.interactions, as_of, settings.roc_window_days, settings.support)
    zero = pl.lit(0).cast(MONEY)
    table = table.join(costs, on="customer_id", how="left").with_columns(
        pl.col("support_incidents", "open_incidents").fill_null(0),
        pl.col("support_cost", "support_cost_window").fill_null(zero),
    )
    table = table.join(
        cac(table, frames.customers, frames.spend, as_of, settings.acquisition),
        on="customer_id",
        how="left",
    )
    table = table.join(
        referrals(table, frames.referrals, as_of), on="customer_id", how="left"
    ).with_columns(
        pl.col("referrals_made").fill_null(0),
        pl.col("referred_revenue", "referred_revenue_window").fill_null(zero),
    )
    table = table.with_columns(return_on_customer=return_on_customer())
    table = table.join(rfm(table, settings.rfm_segments), on="customer_id", how="left")
    table = table.join(lifecycle(table, settings.lifecycle), on="customer_id", how="left")
    table = table.with_columns(evangelist=evangelist(settings.referrals))
    known_interactions = frames.interactions.filter(pl.col("occurred_at") <= as_of)
    table = table.join(
        loss_reasons(table, frames.customers, known, known_interactions, settings.loss),
        on="customer_id",
        how="left",
    )
    summary = purchase_summary(known, as_of)
    fits = fit_models(summary, settings.prediction)
    predicted = predictions(summary, fits, as_of, settings.prediction)
    table = table.join(predicted, on="customer_id", how="left")
    ordered = table.select("customer_id", *METRICS, pl.exclude("customer_id", *METRICS))
    return MetricsResult(ordered.sort("customer_id"), fits)


def _value(kind: Kind, digits: int, value: Any) -> MetricValue:
    if value is None:
        return None
    if kind is Kind.MONEY:
        return Decimal(value).quantize(CENT, rounding=ROUND_HALF_EVEN)
    if kind is Kind.NUMBER:
        return round(float(value), digits)
    return value  # type: ignore[no-any-return]


def metric_rows(table: pl.DataFrame) -> Iterator[tuple[int, dict[str, MetricValue]]]:
    """(customer id, values by metric name) of an engine table, values as they are stored:
    money rounded half-even to cents, numbers to their digits."""
    names = [name for name in METRICS if name in table.columns]
    for row in table.iter_rows(named=True):
        yield (
            row["customer_id"],
            {name: _value(METRICS[name].kind, METRICS[name].digits, row[name]) for name in names},
        )
