"""Predictive figures: BG/NBD and Gamma-Gamma fitted on the whole customer base as of a date.

Time is counted in days. A purchase *day* is one point of the purchase process (two orders on
one day are one purchase for the model, as in the papers' data); its value is the day's sales.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from clm_metrics.bgnbd import Array, BgNbd, FitError, GammaGamma, fit_bgnbd, fit_gamma_gamma
from clm_metrics.history import IS_SALE
from config.models import PredictionSettings

DAYS_PER_MONTH = 30
"""CLV is summed month by month; a month is 30 days."""

PREDICTED = (
    "p_alive",
    "churn_risk",
    "expected_purchases",
    "expected_next_order",
    "expected_order_value",
    "clv",
)


@dataclass(frozen=True, slots=True)
class ModelFits:
    """The fitted models of one run (kept with the run) and why any is missing."""

    bgnbd: BgNbd | None = None
    gamma_gamma: GammaGamma | None = None
    messages: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        def params(model: BgNbd | GammaGamma | None) -> dict[str, float] | None:
            if model is None:
                return None
            return {name: getattr(model, name) for name in model.__dataclass_fields__}

        return {
            "bgnbd": params(self.bgnbd),
            "gamma_gamma": params(self.gamma_gamma),
            "messages": list(self.messages),
        }


def purchase_basis(known: pl.DataFrame) -> pl.DataFrame:
    """Per buyer: ``purchase_days`` (days with a sale) and ``mean_value``, the mean sales of
    the purchase days after the first (null without one)."""
    days = (
        known.filter(IS_SALE)
        .group_by("customer_id", pl.col("occurred_at").dt.date().alias("day"))
        .agg(value=pl.col("home_amount").sum().cast(pl.Float64))
    )
    return days.group_by("customer_id").agg(
        purchase_days=pl.len().cast(pl.Int64),
        mean_value=pl.when(pl.len() > 1).then(
            (pl.col("value").sum() - pl.col("value").sort_by("day").first()) / (pl.len() - 1)
        ),
    )


def purchase_summary(table: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """Per buyer: ``x`` repeat purchase days, ``t_x`` days from the first purchase day to the
    last, ``T`` days from the first purchase day to the as-of date, and ``mean_value``."""
    today = as_of.astimezone(UTC).date()
    one_day = pl.duration(days=1)
    return table.filter(pl.col("purchase_days").is_not_null()).select(
        "customer_id",
        x=(pl.col("purchase_days") - 1).cast(pl.Float64),
        t_x=((pl.col("last_purchase") - pl.col("first_purchase")) / one_day).cast(pl.Float64),
        T=((pl.lit(today) - pl.col("first_purchase")) / one_day).cast(pl.Float64),
        mean_value="mean_value",
    )


def fit_models(summary: pl.DataFrame, settings: PredictionSettings) -> ModelFits:
    """Fit both models, or say why not; never raises for the data."""
    buyers = summary.height
    repeaters = int((summary["x"] > 0).sum()) if buyers else 0
    if buyers < settings.min_customers or repeaters < settings.min_repeat_buyers:
        return ModelFits(
            messages=(
                f"too little data for predictions: {buyers} customers with a purchase (need "
                f"{settings.min_customers}) and {repeaters} who came back on another day "
                f"(need {settings.min_repeat_buyers}); only history figures are given",
            )
        )
    x, t_x, big_t = (summary[name].to_numpy() for name in ("x", "t_x", "T"))
    try:
        bgnbd = fit_bgnbd(x, t_x, big_t)
    except FitError as error:
        return ModelFits(messages=(f"BG/NBD could not be fitted: {error}",))
    mean_value = summary["mean_value"].fill_null(0.0).to_numpy()
    try:
        gamma_gamma: GammaGamma | None = fit_gamma_gamma(x, mean_value)
        messages: tuple[str, ...] = ()
    except FitError as error:
        gamma_gamma = None
        messages = (f"Gamma-Gamma could not be fitted, so no order value or CLV: {error}",)
    return ModelFits(bgnbd, gamma_gamma, messages)


def _clv(
    bgnbd: BgNbd, value: Array, x: Array, t_x: Array, big_t: Array, s: PredictionSettings
) -> Array:
    """Expected purchases of each month ahead times the expected order value, discounted."""
    monthly_rate = (1.0 + s.annual_discount_rate) ** (1.0 / 12.0) - 1.0
    total = np.zeros_like(x)
    before = np.zeros_like(x)
    for month in range(1, s.clv_horizon_months + 1):
        cumulative = bgnbd.expected_purchases(month * DAYS_PER_MONTH, x, t_x, big_t)
        total += (cumulative - before) / (1.0 + monthly_rate) ** month
        before = cumulative
    result: Array = value * total
    return result


def predictions(
    summary: pl.DataFrame, fits: ModelFits, as_of: datetime, settings: PredictionSettings
) -> pl.DataFrame:
    """The predicted figures of every buyer in ``summary`` (empty columns without a model)."""
    if fits.bgnbd is None:
        return summary.select(
            "customer_id",
            *(pl.lit(None, dtype=pl.Float64).alias(name) for name in PREDICTED),
        ).with_columns(pl.col("expected_next_order").cast(pl.Date))
    model = fits.bgnbd
    x, t_x, big_t = (summary[name].to_numpy() for name in ("x", "t_x", "T"))
    alive = model.p_alive(x, t_x, big_t)
    columns: dict[str, Any] = {
        "customer_id": summary["customer_id"],
        "p_alive": alive,
        "churn_risk": 1.0 - alive,
        "expected_purchases": model.expected_purchases(
            settings.purchases_horizon_days, x, t_x, big_t
        ),
        "next_in_days": np.where(
            alive >= settings.next_order_min_p_alive, np.ceil(model.mean_gap(x, big_t)), np.nan
        ),
    }
    if fits.gamma_gamma is not None:
        value = fits.gamma_gamma.expected_value(x, summary["mean_value"].fill_null(0).to_numpy())
        columns["expected_order_value"] = value
        columns["clv"] = _clv(model, value, x, t_x, big_t, settings)
    else:
        columns["expected_order_value"] = np.full_like(x, np.nan)
        columns["clv"] = np.full_like(x, np.nan)
    today = as_of.astimezone(UTC).date()
    return (
        pl.DataFrame(columns)
        .with_columns(pl.exclude("customer_id").fill_nan(None))
        .with_columns(
            expected_next_order=pl.lit(today)
            + pl.duration(days=pl.col("next_in_days").cast(pl.Int64))
        )
        .select("customer_id", *PREDICTED)
    )
