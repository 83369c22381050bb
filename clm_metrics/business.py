"""Business-level figures from the per-customer table (docs/metrics.md, "Business")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from clm_metrics.history import IS_SALE
from clm_metrics.segments import BUYER
from config.models import MetricsConfig

STAGES = ("prospect", "new", "active", "at_risk", "lapsed", "lost")


@dataclass(frozen=True, slots=True)
class BusinessFigures:
    """Single figures (``summary``) and small tables."""

    summary: dict[str, float | int | None]
    tables: dict[str, pl.DataFrame]

    def as_dict(self) -> dict[str, Any]:
        def cell(value: Any) -> Any:
            return value.isoformat() if isinstance(value, date) else value

        return {
            "summary": self.summary,
            "tables": {
                name: [{k: cell(v) for k, v in row.items()} for row in table.to_dicts()]
                for name, table in self.tables.items()
            },
        }


def _mean(series: pl.Series) -> float | None:
    value = series.cast(pl.Float64).mean()
    return None if value is None else round(float(value), 4)  # type: ignore[arg-type]


def _counted(names: list[str], column: str, counts: pl.DataFrame) -> pl.DataFrame:
    """``counts`` (``column``, ``customers``) on a fixed list of names, zero where absent."""
    return (
        pl.DataFrame({column: names})
        .join(counts, on=column, how="left")
        .with_columns(pl.col("customers").fill_null(0).cast(pl.Int64))
    )


def cohort_retention(known_sales: pl.DataFrame) -> pl.DataFrame:
    """Per acquisition month and months since: the share of the month's new buyers who
    bought in that later month."""
    months = known_sales.select(
        "customer_id",
        month=pl.col("occurred_at").dt.year() * 12 + pl.col("occurred_at").dt.month() - 1,
    ).unique()
    first = months.group_by("customer_id").agg(cohort=pl.col("month").min())
    sizes = first.group_by("cohort").agg(size=pl.len())
    return (
        months.join(first, on="customer_id")
        .group_by("cohort", months_since=pl.col("month") - pl.col("cohort"))
        .agg(customers=pl.len())
        .join(sizes, on="cohort")
        .select(
            cohort=pl.date(pl.col("cohort") // 12, pl.col("cohort") % 12 + 1, 1),
            months_since=pl.col("months_since").cast(pl.Int64),
            customers=pl.col("customers").cast(pl.Int64),
            retention=(pl.col("customers") / pl.col("size")).round(4),
        )
        .sort("cohort", "months_since")
    )


def _frequency_labels(edges: list[int]) -> list[str]:
    labels = []
    for low, high in zip(edges, [*edges[1:], None], strict=True):
        if high is None:
            labels.append(f"{low}+")
        else:
            labels.append(str(low) if high == low + 1 else f"{low}-{high - 1}")
    return labels


def business_figures(
    table: pl.DataFrame, known_transactions: pl.DataFrame, settings: MetricsConfig
) -> BusinessFigures:
    """Every business figure from the engine's customer table (``MetricsResult.table``) and
    the transactions known at its as-of time."""
    buyers = table.filter(BUYER)
    stages = table.group_by(pl.col("lifecycle_stage").alias("stage")).agg(customers=pl.len())
    lost_on = pl.col("last_purchase") + pl.duration(
        days=(pl.col("usual_gap_days") * settings.lifecycle.lost_after).ceil().cast(pl.Int64)
    )
    acquired = buyers.group_by(month=pl.col("first_purchase").dt.truncate("1mo")).agg(
        acquired=pl.len()
    )
    lost = (
        table.filter(pl.col("lifecycle_stage") == "lost")
        .group_by(month=lost_on.dt.truncate("1mo"))
        .agg(lost=pl.len())
    )
    monthly = (
        acquired.join(lost, on="month", how="full", coalesce=True)
        .with_columns(pl.col("acquired", "lost").fill_null(0).cast(pl.Int64))
        .sort("month")
    )
    edges = sorted(settings.business.frequency_buckets)
    labels = _frequency_labels(edges)
    bucket: pl.Expr = pl.lit(None, dtype=pl.String)
    for low, label in zip(edges, labels, strict=True):
        bucket = pl.when(pl.col("orders") >= low).then(pl.lit(label)).otherwise(bucket)
    frequency = buyers.group_by(bucket.alias("orders")).agg(customers=pl.len())
    cac_by_channel = (
        buyers.filter(pl.col("cac").is_not_null())
        .group_by(pl.col("acquisition_channel").fill_null("(none)").alias("channel"))
        .agg(customers=pl.len(), cac=pl.col("cac").cast(pl.Float64).mean().round(2))
        .sort("channel")
    )
    evangelists = (
        table.filter(pl.col("evangelist"))
        .sort(["referred_revenue", "customer_id"], descending=[True, False])
        .head(settings.business.top_evangelists)
        .select(
            "customer_id",
            "referrals_made",
            referred_revenue=pl.col("referred_revenue").cast(pl.Float64).round(2),
        )
    )
    reasons = (
        table.filter(pl.col("loss_reason").is_not_null())
        .group_by(pl.col("loss_reason").alias("reason"))
        .agg(
            customers=pl.len(),
            lost_revenue=pl.col("net_revenue").cast(pl.Float64).sum().round(2),
        )
        .sort(["customers", "reason"], descending=[True, False])
    )
    totals = table.select(
        cost=pl.col("cac").cast(pl.Float64).fill_null(0.0).sum()
        + pl.col("support_cost_window").cast(pl.Float64).sum(),
        gain=pl.col("revenue_roc_window").cast(pl.Float64).sum(),
    ).row(0, named=True)
    cost, gain = float(totals["cost"]), float(totals["gain"])
    summary: dict[str, float | int | None] = {
        "customers": table.height,
        "buyers": buyers.height,
        "average_revenue_per_customer": _mean(buyers["net_revenue"]),
        "average_lifespan_days": _mean(buyers["lifespan_days"]),
        "repeat_purchase_rate": _mean(buyers["orders"] >= 2),
        "support_cost_per_customer": _mean(table["support_cost"]),
        "average_cac": _mean(buyers["cac"].drop_nulls()),
        "return_on_customers": round((gain - cost) / cost, 4) if cost > 0 else None,
    }
    return BusinessFigures(
        summary,
        {
            "customers_by_stage": _counted(list(STAGES), "stage", stages),
            "acquired_and_lost": monthly,
            "repeat_purchasers_by_orders": _counted(labels, "orders", frequency),
            "cac_by_channel": cac_by_channel,
            "cohort_retention": cohort_retention(known_transactions.filter(IS_SALE)),
            "top_evangelists": evangelists,
            "loss_reasons": reasons,
        },
    )
