"""Comparing figures with a baseline, and the waiting rule (docs/metrics.md, "Baselines").

The waiting rule follows the white paper: a change cannot show before the customers who buy
most often have had time to buy again, so no comparison sooner than the usual gap between
orders of the fastest repeat purchasers; results stay preliminary until the slowest repeat
purchasers have had time too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from clm_metrics.bgnbd import Array
from config.models import BaselineSettings

BUYERS = pl.col("orders") >= 1
COMPARED: dict[str, tuple[pl.Expr, pl.Expr]] = {
    "average_revenue_per_customer": (pl.col("net_revenue"), BUYERS),
    "average_order_value": (pl.col("average_order_value"), BUYERS),
    "average_lifespan_days": (pl.col("lifespan_days"), BUYERS),
    "repeat_purchase_rate": ((pl.col("orders") >= 2).cast(pl.Float64), BUYERS),
    "support_cost_per_customer": (pl.col("support_cost"), pl.lit(True)),
    "average_cac": (pl.col("cac"), BUYERS & pl.col("cac").is_not_null()),
}
"""Figures compared: a mean of a per-customer value over the customers it concerns."""
BOOTSTRAP_SEED = 20_240_701
"""Resampling is seeded, so the same figures always give the same interval."""


@dataclass(frozen=True, slots=True)
class Waiting:
    earliest: date
    final: date
    fast_gap_days: float
    slow_gap_days: float


def waiting_rule(
    baseline_gaps: Array, baseline_day: date, settings: BaselineSettings, default_gap_days: int
) -> Waiting:
    """From the repeat purchasers' usual gaps at the baseline: ``earliest`` is the baseline
    day plus the median gap of the fastest ``fast_share`` of them (at least one customer),
    ``final`` plus the median gap of the slowest ``slow_share``. Without repeat purchasers
    both gaps are ``default_gap_days``."""
    gaps = np.sort(baseline_gaps[np.isfinite(baseline_gaps)])
    if gaps.size == 0:
        fast = slow = float(default_gap_days)
    else:
        fast = float(np.median(gaps[: max(1, math.ceil(settings.fast_share * gaps.size))]))
        slow = float(np.median(gaps[-max(1, math.ceil(settings.slow_share * gaps.size)) :]))
    return Waiting(
        baseline_day + timedelta(days=math.ceil(fast)),
        baseline_day + timedelta(days=math.ceil(max(slow, fast))),
        fast,
        slow,
    )


@dataclass(frozen=True, slots=True)
class Change:
    figure: str
    baseline: float | None
    now: float | None
    change: float | None
    """Relative change, now / baseline - 1; empty when the baseline is 0 or missing."""
    low: float | None
    high: float | None
    """Bootstrap interval of ``change`` at the configured confidence."""


@dataclass(frozen=True, slots=True)
class Comparison:
    status: str
    """``too_early``, ``preliminary`` or ``final``."""
    waiting: Waiting
    changes: tuple[Change, ...]
    message: str
    flow: pl.DataFrame | None = None
    """Customers by lifecycle stage at the baseline (``from``; ``(none)`` for customers new
    since) and now (``to``)."""


def _values(table: pl.DataFrame, value: pl.Expr, who: pl.Expr) -> Array:
    column = table.filter(who).select(value.cast(pl.Float64)).to_series().drop_nulls()
    return column.to_numpy()


def _change(figure: str, before: Array, after: Array, settings: BaselineSettings) -> Change:
    if before.size == 0 or after.size == 0:
        return Change(
            figure,
            float(before.mean()) if before.size else None,
            float(after.mean()) if after.size else None,
            None,
            None,
            None,
        )
    base, now = float(before.mean()), float(after.mean())
    if base == 0:
        return Change(figure, base, now, None, None, None)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    samples = np.empty(settings.bootstrap_samples)
    for index in range(settings.bootstrap_samples):
        resampled_base = before[rng.integers(0, before.size, before.size)].mean()
        resampled_now = after[rng.integers(0, after.size, after.size)].mean()
        samples[index] = resampled_now / resampled_base - 1 if resampled_base else np.nan
    tail = (1 - settings.confidence) / 2 * 100
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return Change(figure, base, now, now / base - 1, float(low), float(high))


def stage_flow(baseline: pl.DataFrame, now: pl.DataFrame) -> pl.DataFrame:
    """How many customers moved from each lifecycle stage at the baseline to each now."""
    before = baseline.select("customer_id", pl.col("lifecycle_stage").alias("from"))
    after = now.select("customer_id", pl.col("lifecycle_stage").alias("to"))
    return (
        after.join(before, on="customer_id", how="left")
        .with_columns(pl.col("from").fill_null("(none)"))
        .group_by("from", "to")
        .agg(customers=pl.len().cast(pl.Int64))
        .sort("from", "to")
    )


def compare(
    baseline: pl.DataFrame,
    now: pl.DataFrame,
    baseline_day: date,
    today: date,
    settings: BaselineSettings,
    default_gap_days: int,
) -> Comparison:
    """``now`` against ``baseline`` (per-customer figure tables), or an honest refusal."""
    gaps = _values(baseline, pl.col("avg_days_between_orders"), pl.col("orders") >= 2)
    waiting = waiting_rule(gaps, baseline_day, settings, default_gap_days)
    if today < waiting.earliest:
        return Comparison(
            "too_early",
            waiting,
            (),
            f"too early to compare with the baseline of {baseline_day.isoformat()}: the fastest "
            f"repeat purchasers buy every {waiting.fast_gap_days:g} days, so a comparison "
            f"means something from {waiting.earliest.isoformat()} (preliminary until "
            f"{waiting.final.isoformat()})",
        )
    changes = tuple(
        _change(figure, _values(baseline, value, who), _values(now, value, who), settings)
        for figure, (value, who) in COMPARED.items()
    )
    flow = stage_flow(baseline, now)
    if today < waiting.final:
        return Comparison(
            "preliminary",
            waiting,
            changes,
            f"preliminary: the slowest repeat purchasers buy every {waiting.slow_gap_days:g} "
            f"days, so results are final from {waiting.final.isoformat()}",
            flow,
        )
    return Comparison("final", waiting, changes, "final", flow)
