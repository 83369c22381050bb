"""Loss-reason signals of lapsed and lost customers (docs/metrics.md, "Loss reasons")."""

from __future__ import annotations

import re

import polars as pl

from clm_metrics.history import IS_SALE
from config.models import LossSettings

LOST_STAGES = ("lapsed", "lost")
SIGNALS = (
    "last_order_refunded",
    "open_incident",
    "high_support_cost",
    "complaints",
    "one_time_buyer",
    "discount_only_buyer",
)
"""Every signal, in the order that picks ``loss_reason`` when no admin gave one."""


def admin_reason(customers: pl.DataFrame, settings: LossSettings) -> pl.DataFrame:
    """The reason an admin wrote: a note line ``<note_tag>: ...`` or a label
    ``<label_prefix> ...`` (case-insensitive); the note wins over a label."""
    note = rf"(?i){re.escape(settings.note_tag)}\s*:\s*([^\n;]+)"
    prefix = settings.label_prefix.casefold()
    label = (
        pl.col("labels")
        .list.eval(pl.element().filter(pl.element().str.to_lowercase().str.starts_with(prefix)))
        .list.first()
        .str.slice(len(prefix))
    )
    return customers.select(
        "customer_id",
        admin_reason=pl.coalesce(pl.col("notes").str.extract(note, 1), label)
        .str.strip_chars()
        .replace("", None),
    )


def loss_basis(
    customers: pl.DataFrame,
    known_transactions: pl.DataFrame,
    known_interactions: pl.DataFrame,
    settings: LossSettings,
) -> pl.DataFrame:
    """Per customer, what the signals need from their own rows: ``last_sale``,
    ``last_refund``, ``discounted`` (every sale had a discount), ``complaints`` and
    ``admin_reason``."""
    purchases = known_transactions.group_by("customer_id").agg(
        last_sale=pl.col("occurred_at").filter(IS_SALE).max(),
        last_refund=pl.col("occurred_at").filter(~IS_SALE).max(),
        discounted=(pl.col("discount") > 0).fill_null(False).filter(IS_SALE).all(),
    )
    words = "|".join(re.escape(word) for word in settings.complaint_words) or "(?!)"
    complaints = known_interactions.group_by("customer_id").agg(
        complaints=pl.col("text")
        .sort_by("occurred_at", descending=True)
        .head(settings.complaint_messages)
        .str.contains(rf"(?i)\b({words})\b")
        .any()
    )
    return (
        admin_reason(customers, settings)
        .join(purchases, on="customer_id", how="left")
        .join(complaints, on="customer_id", how="left")
    )


def loss_reasons(table: pl.DataFrame, settings: LossSettings) -> pl.DataFrame:
    """``loss_signals`` (all that apply, comma-separated) and ``loss_reason`` (the admin's,
    else the first signal) of lapsed and lost customers; empty for the others."""
    peers = table.filter(pl.col("support_cost") > 0)["support_cost"].cast(pl.Float64).median()
    high_cost = float(peers) * settings.high_support_factor if isinstance(peers, float) else None
    conditions = {
        "last_order_refunded": pl.col("last_refund") >= pl.col("last_sale"),
        "open_incident": pl.col("open_incidents") > 0,
        "high_support_cost": (
            pl.col("support_cost").cast(pl.Float64) > high_cost
            if high_cost is not None
            else pl.lit(False)
        ),
        "complaints": pl.col("complaints"),
        "one_time_buyer": pl.col("orders") == 1,
        "discount_only_buyer": pl.col("discounted"),
    }
    signals = pl.concat_list(
        [pl.when(conditions[name].fill_null(False)).then(pl.lit(name)) for name in SIGNALS]
    ).list.drop_nulls()
    losing = pl.col("lifecycle_stage").is_in(LOST_STAGES)
    return table.with_columns(signals=signals).select(
        "customer_id",
        loss_reason=pl.when(losing).then(
            pl.coalesce(pl.col("admin_reason"), pl.col("signals").list.first())
        ),
        loss_signals=pl.when(losing & (pl.col("signals").list.len() > 0)).then(
            pl.col("signals").list.join(", ")
        ),
    )
