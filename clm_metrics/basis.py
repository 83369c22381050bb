"""A customer's *basis*: everything the metrics need from that customer's own rows.

The engine runs in two stages. :func:`customer_basis` reduces each customer's transactions,
interactions and records to one row (sums, dates, counts); it depends only on that customer's
rows and the as-of time, so the metrics step can keep the basis of untouched customers from
the last run and recompute only the touched ones. The second stage
(:func:`clm_metrics.engine.finish`) compares customers with each other (RFM ranks, rhythms,
CAC shares, referrals, the fitted models) and needs every customer's basis.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from clm_metrics.history import history_basis, known_transactions
from clm_metrics.inputs import MOMENT, MONEY, LedgerFrames
from clm_metrics.loss import loss_basis
from clm_metrics.predict import purchase_basis
from clm_metrics.support import support
from config.models import MetricsConfig

BASIS_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "acquisition_channel": pl.String(),
    "orders": pl.Int64(),
    "first_purchase": pl.Date(),
    "last_purchase": pl.Date(),
    "latest_transaction": pl.Date(),
    "net_revenue": MONEY,
    "revenue_12m": MONEY,
    "revenue_roc_window": MONEY,
    "purchase_days": pl.Int64(),
    "mean_value": pl.Float64(),
    "support_incidents": pl.Int64(),
    "open_incidents": pl.Int64(),
    "last_incident": pl.Date(),
    "support_cost": MONEY,
    "support_cost_window": MONEY,
    "last_sale": MOMENT,
    "last_refund": MOMENT,
    "discounted": pl.Boolean(),
    "complaints": pl.Boolean(),
    "admin_reason": pl.String(),
}


def customer_basis(frames: LedgerFrames, as_of: datetime, settings: MetricsConfig) -> pl.DataFrame:
    """One ``BASIS_SCHEMA`` row per customer of ``frames.customers``."""
    known = known_transactions(frames, as_of)
    known_interactions = frames.interactions.filter(pl.col("occurred_at") <= as_of)
    zero = pl.lit(0).cast(MONEY)
    return (
        history_basis(frames, as_of, settings.revenue_window_days, settings.roc_window_days)
        .join(frames.customers.select("customer_id", "acquisition_channel"), on="customer_id")
        .join(purchase_basis(known), on="customer_id", how="left")
        .join(
            support(frames.interactions, as_of, settings.roc_window_days, settings.support),
            on="customer_id",
            how="left",
        )
        .with_columns(
            pl.col("support_incidents", "open_incidents").fill_null(0),
            pl.col("support_cost", "support_cost_window").fill_null(zero),
        )
        .join(
            loss_basis(frames.customers, known, known_interactions, settings.loss),
            on="customer_id",
            how="left",
        )
        .select(list(BASIS_SCHEMA))
        .cast(BASIS_SCHEMA)  # type: ignore[arg-type]
        .sort("customer_id")
    )
