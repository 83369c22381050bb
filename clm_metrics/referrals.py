"""Referrals, evangelists and return on customer (docs/metrics.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from clm_metrics.inputs import MONEY
from config.models import ReferralSettings

ACTIVE_STAGES = ("new", "active")


def referrals(table: pl.DataFrame, links: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """Per referrer: ``referrals_made``, ``referred_revenue`` (the referred customers' net
    revenue) and ``referred_revenue_window`` (their revenue in the ROC window)."""
    known = (
        links.filter(
            (pl.col("occurred_at").is_null() | (pl.col("occurred_at") <= as_of.astimezone(UTC)))
            & (pl.col("referrer_id") != pl.col("referred_id"))
        )
        .select("referrer_id", "referred_id")
        .unique()
    )
    return (
        known.join(
            table.select(
                pl.col("customer_id").alias("referred_id"), "net_revenue", "revenue_roc_window"
            ),
            on="referred_id",
            how="left",
        )
        .group_by(pl.col("referrer_id").alias("customer_id"))
        .agg(
            referrals_made=pl.len().cast(pl.Int64),
            referred_revenue=pl.col("net_revenue").sum(),
            referred_revenue_window=pl.col("revenue_roc_window").sum(),
        )
    )


def evangelist(settings: ReferralSettings) -> pl.Expr:
    enough = (pl.col("referrals_made") >= settings.evangelist_min_referrals) | (
        pl.col("referred_revenue")
        >= pl.lit(str(settings.evangelist_min_referred_revenue)).cast(MONEY)
    )
    return enough & pl.col("lifecycle_stage").is_in(ACTIVE_STAGES)


def return_on_customer() -> pl.Expr:
    """(revenue + referred revenue - CAC - service cost) / (CAC + service cost) over the
    ROC window; CAC counts in full. Empty when nothing was spent on the customer."""
    cost = pl.col("cac").cast(pl.Float64).fill_null(0.0) + pl.col("support_cost_window").cast(
        pl.Float64
    )
    gain = pl.col("revenue_roc_window").cast(pl.Float64) + pl.col("referred_revenue_window").cast(
        pl.Float64
    )
    return pl.when(cost > 0).then((gain - cost) / cost)
