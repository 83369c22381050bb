"""The metrics engine: ledger frames in, one row of figures per customer out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import polars as pl

from clm_metrics.catalog import METRICS, Kind, MetricValue
from clm_metrics.history import history
from clm_metrics.inputs import LedgerFrames
from config.models import MetricsConfig

CENT = Decimal("0.01")


def customer_metrics(
    frames: LedgerFrames, as_of: datetime, settings: MetricsConfig | None = None
) -> pl.DataFrame:
    """Every metric of :data:`METRICS` for every customer of ``frames``, by customer id."""
    settings = settings or MetricsConfig()
    table = history(frames, as_of, settings.revenue_window_days)
    return table.select("customer_id", *METRICS)


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
