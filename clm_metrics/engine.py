"""The metrics engine: ledger frames in, one row of figures per customer out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import polars as pl

from clm_metrics.catalog import METRICS, Kind, MetricValue
from clm_metrics.history import history, known_transactions
from clm_metrics.inputs import LedgerFrames
from clm_metrics.predict import ModelFits, fit_models, predictions, purchase_summary
from clm_metrics.segments import lifecycle, rfm
from config.models import MetricsConfig

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class MetricsResult:
    """The figures of every customer (one row each, by id) and the models behind them."""

    table: pl.DataFrame
    fits: ModelFits


def customer_metrics(
    frames: LedgerFrames, as_of: datetime, settings: MetricsConfig | None = None
) -> MetricsResult:
    """Every metric of :data:`METRICS` for every customer of ``frames``, as of ``as_of``."""
    settings = settings or MetricsConfig()
    table = history(frames, as_of, settings.revenue_window_days)
    summary = purchase_summary(known_transactions(frames, as_of), as_of)
    fits = fit_models(summary, settings.prediction)
    predicted = predictions(summary, fits, as_of, settings.prediction)
    table = table.join(rfm(table, settings.rfm_segments), on="customer_id", how="left")
    table = table.join(lifecycle(table, settings.lifecycle), on="customer_id", how="left")
    table = table.join(predicted, on="customer_id", how="left")
    return MetricsResult(table.select("customer_id", *METRICS).sort("customer_id"), fits)


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
