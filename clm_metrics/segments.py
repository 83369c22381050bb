"""RFM scores and segments, and the lifecycle stage (docs/metrics.md, "Segments")."""

from __future__ import annotations

import polars as pl

from config.models import LifecycleSettings, RfmSegment

BUYER = pl.col("orders") >= 1


def _score(value: pl.Expr, buyers: pl.Expr) -> pl.Expr:
    """1 to 5 by rank among buyers: ``1 + floor(5 * (rank - 1) / n)``, ties share the lowest
    rank, so equal values always get equal scores."""
    return (1 + (5 * (value.rank("min") - 1) / buyers).floor()).cast(pl.Int64)


def rfm(table: pl.DataFrame, segments: list[RfmSegment]) -> pl.DataFrame:
    """``rfm_recency``, ``rfm_frequency``, ``rfm_monetary`` and ``rfm_segment`` of buyers."""
    buyers = table.filter(BUYER)
    n = pl.lit(max(buyers.height, 1))
    scored = buyers.select(
        "customer_id",
        rfm_recency=_score(-pl.col("recency_days"), n),
        rfm_frequency=_score(pl.col("orders"), n),
        rfm_monetary=_score(pl.col("net_revenue").cast(pl.Float64), n),
    )
    segment: pl.Expr = pl.lit(None, dtype=pl.String)
    for rule in reversed(segments):
        matches = pl.col("rfm_recency").is_between(*rule.recency) & pl.col(
            "rfm_frequency"
        ).is_between(*rule.frequency)
        segment = pl.when(matches).then(pl.lit(rule.name)).otherwise(segment)
    return scored.with_columns(rfm_segment=segment)


def lifecycle(table: pl.DataFrame, settings: LifecycleSettings) -> pl.DataFrame:
    """``usual_gap_days`` and ``lifecycle_stage`` of every customer.

    The usual gap is the customer's own average gap between orders; a one-time buyer is
    judged by the median of the repeat buyers' gaps (``default_gap_days`` if there is none).
    """
    typical = table.filter(pl.col("orders") >= 2)["avg_days_between_orders"].median()
    peer_gap = float(typical) if isinstance(typical, int | float) else settings.default_gap_days
    gap = (
        pl.when(pl.col("orders") >= 2)
        .then(pl.col("avg_days_between_orders"))
        .otherwise(pl.lit(peer_gap))
        .clip(lower_bound=1.0)
    )
    ratio = pl.col("recency_days") / pl.col("usual_gap_days")
    stage = (
        pl.when(~BUYER)
        .then(pl.lit("prospect"))
        .when(ratio > settings.lost_after)
        .then(pl.lit("lost"))
        .when(ratio > settings.lapsed_after)
        .then(pl.lit("lapsed"))
        .when(ratio > settings.at_risk_after)
        .then(pl.lit("at_risk"))
        .when(pl.col("orders") == 1)
        .then(pl.lit("new"))
        .otherwise(pl.lit("active"))
    )
    return (
        table.select("customer_id", "orders", "recency_days", "avg_days_between_orders")
        .with_columns(usual_gap_days=pl.when(BUYER).then(gap))
        .with_columns(lifecycle_stage=stage)
        .select("customer_id", "usual_gap_days", "lifecycle_stage")
    )
