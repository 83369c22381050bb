"""The metrics engine: ledger frames in, one row of figures per customer out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import polars as pl

from clm_metrics.acquisition import cac
from clm_metrics.basis import customer_basis
from clm_metrics.catalog import METRICS, Kind, MetricValue
from clm_metrics.history import history_figures
from clm_metrics.inputs import MONEY, LedgerFrames
from clm_metrics.loss import loss_reasons
from clm_metrics.predict import ModelFits, fit_models, predictions, purchase_summary
from clm_metrics.referrals import evangelist, referrals, return_on_customer
from clm_metrics.segments import lifecycle, rfm
from config.models import MetricsConfig

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class MetricsResult:
    """The figures of every customer (one row each, by id; the METRICS columns first, then
    the window sums the business figures need) and the models behind them."""

    table: pl.DataFrame
    fits: ModelFits


def finish(
    basis: pl.DataFrame,
    referral_links: pl.DataFrame,
    spend: pl.DataFrame,
    as_of: datetime,
    settings: MetricsConfig,
) -> MetricsResult:
    """Every metric of every customer from all customers' basis (see :mod:`basis`), the
    referrals and the spend: what compares customers with each other."""
    zero = pl.lit(0).cast(MONEY)
    table = basis.with_columns(history_figures(as_of))
    table = table.join(cac(table, spend, as_of, settings.acquisition), on="customer_id", how="left")
    table = table.join(
        referrals(table, referral_links, as_of), on="customer_id", how="left"
    ).with_columns(
        pl.col("referrals_made").fill_null(0),
        pl.col("referred_revenue", "referred_revenue_window").fill_null(zero),
    )
    table = table.with_columns(return_on_customer=return_on_customer())
    table = table.join(rfm(table, settings.rfm_segments), on="customer_id", how="left")
    table = table.join(lifecycle(table, settings.lifecycle), on="customer_id", how="left")
    table = table.with_columns(evangelist=evangelist(settings.referrals))
    table = table.join(loss_reasons(table, settings.loss), on="customer_id", how="left")
    summary = purchase_summary(table, as_of)
    fits = fit_models(summary, settings.prediction)
    predicted = predictions(summary, fits, as_of, settings.prediction)
    table = table.join(predicted, on="customer_id", how="left")
    ordered = table.select("customer_id", *METRICS, pl.exclude("customer_id", *METRICS))
    return MetricsResult(ordered.sort("customer_id"), fits)


def customer_metrics(
    frames: LedgerFrames, as_of: datetime, settings: MetricsConfig | None = None
) -> MetricsResult:
    """Every metric of :data:`METRICS` for every customer of ``frames``, as of ``as_of``."""
    settings = settings or MetricsConfig()
    basis = customer_basis(frames, as_of, settings)
    return finish(basis, frames.referrals, frames.spend, as_of, settings)


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
