"""Per-customer purchase history: counts, dates, revenue (docs/metrics.md, "History")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from clm_metrics.inputs import MONEY, LedgerFrames

IS_SALE = pl.col("kind") == "sale"
SIGNED = pl.when(IS_SALE).then(pl.col("home_amount")).otherwise(-pl.col("home_amount"))


def known_transactions(frames: LedgerFrames, as_of: datetime) -> pl.DataFrame:
    """The transactions that had happened by ``as_of`` (one at exactly ``as_of`` counts)."""
    return frames.transactions.filter(pl.col("occurred_at") <= as_of.astimezone(UTC))


def history_basis(
    frames: LedgerFrames, as_of: datetime, revenue_window_days: int, roc_window_days: int
) -> pl.DataFrame:
    """Per customer of ``frames.customers``: the sums and dates of their own transactions
    known at ``as_of`` (``revenue_roc_window`` is the net revenue of the return-on-customer
    window; ``latest_transaction`` the date of the latest sale or refund).

    Money stays exact (``MONEY``) and unrounded; rounding to cents happens once, when values
    leave the engine.
    """
    as_of = as_of.astimezone(UTC)
    window_start = as_of - timedelta(days=revenue_window_days)
    roc_start = as_of - timedelta(days=roc_window_days)
    per_customer = (
        known_transactions(frames, as_of)
        .group_by("customer_id")
        .agg(
            orders=IS_SALE.sum().cast(pl.Int64),
            first_purchase=pl.col("occurred_at").filter(IS_SALE).min().dt.date(),
            last_purchase=pl.col("occurred_at").filter(IS_SALE).max().dt.date(),
            latest_transaction=pl.col("occurred_at").max().dt.date(),
            net_revenue=SIGNED.sum(),
            revenue_12m=SIGNED.filter(pl.col("occurred_at") > window_start).sum(),
            revenue_roc_window=SIGNED.filter(pl.col("occurred_at") > roc_start).sum(),
        )
    )
    zero = pl.lit(0).cast(MONEY)
    return (
        frames.customers.select("customer_id")
        .join(per_customer, on="customer_id", how="left")
        .with_columns(
            pl.col("orders").fill_null(0),
            pl.col("net_revenue", "revenue_12m", "revenue_roc_window").fill_null(zero),
        )
    )


def history_figures(as_of: datetime) -> list[pl.Expr]:
    """The history metrics computed from the basis columns, as of ``as_of``."""
    days = pl.duration(days=1)
    today = as_of.astimezone(UTC).date()
    return [
        ((pl.col("latest_transaction") - pl.col("first_purchase")) / days)
        .cast(pl.Int64)
        .alias("lifespan_days"),
        ((pl.lit(today) - pl.col("last_purchase")) / days).cast(pl.Int64).alias("recency_days"),
        (pl.col("orders") - 1).clip(lower_bound=0).alias("repeat_purchases"),
        pl.when(pl.col("orders") >= 2)
        .then(
            ((pl.col("last_purchase") - pl.col("first_purchase")) / days) / (pl.col("orders") - 1)
        )
        .alias("avg_days_between_orders"),
        pl.when(pl.col("orders") >= 1)
        .then(pl.col("net_revenue") / pl.col("orders").cast(MONEY))
        .alias("average_order_value"),
    ]
