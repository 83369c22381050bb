"""Support incidents and their cost (docs/metrics.md, "Support")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from clm_metrics.inputs import MONEY
from config.models import SupportSettings

ZERO = pl.lit(0).cast(MONEY)


def support(
    interactions: pl.DataFrame, as_of: datetime, window_days: int, settings: SupportSettings
) -> pl.DataFrame:
    """Per customer with support messages: ``support_incidents``, ``open_incidents``,
    ``last_incident``, ``support_cost`` and ``support_cost_window`` (the ROC window)."""
    as_of = as_of.astimezone(UTC)
    window_start = as_of - timedelta(days=window_days)
    resolved = [label.casefold() for label in settings.resolved_labels]
    by_kind = {kind: str(cost) for kind, cost in settings.cost_per_message_by_kind.items()}
    kind_cost = (
        pl.col("kind")
        .replace_strict(by_kind, default=str(settings.cost_per_message), return_dtype=pl.String)
        .cast(MONEY)
    )
    messages = (
        interactions.filter(pl.col("support") & (pl.col("occurred_at") <= as_of))
        .with_row_index("row")
        .with_columns(
            incident=pl.coalesce(
                pl.col("conversation_id"), pl.format("#{}", pl.col("row").cast(pl.String))
            ),
            message_cost=pl.coalesce(pl.col("cost"), kind_cost),
            resolving=pl.col("labels")
            .list.eval(pl.element().str.to_lowercase().is_in(resolved))
            .list.any()
            .fill_null(False),
        )
    )
    incidents = messages.group_by("customer_id", "incident").agg(
        started=pl.col("occurred_at").min(),
        last=pl.col("occurred_at").max(),
        resolved=pl.col("resolving").any(),
        cost=pl.col("message_cost").sum(),
        window_cost=pl.col("message_cost").filter(pl.col("occurred_at") > window_start).sum(),
    )
    per_incident = pl.lit(str(settings.cost_per_incident)).cast(MONEY)
    in_window = (pl.col("started") > window_start).cast(pl.Int64).cast(MONEY)
    return incidents.group_by("customer_id").agg(
        support_incidents=pl.len().cast(pl.Int64),
        open_incidents=(~pl.col("resolved")).sum().cast(pl.Int64),
        last_incident=pl.col("last").max().dt.date(),
        support_cost=(pl.col("cost") + per_incident).sum(),
        support_cost_window=(pl.col("window_cost") + per_incident * in_window).sum(),
    )
