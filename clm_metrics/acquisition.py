"""Acquisition channel and CAC (docs/metrics.md, "Acquisition and referrals")."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from clm_metrics.inputs import MONEY
from config.models import AcquisitionSettings

PERIODS = {"month": "1mo", "quarter": "3mo", "year": "1y"}


def cac(
    table: pl.DataFrame, spend: pl.DataFrame, as_of: datetime, settings: AcquisitionSettings
) -> pl.DataFrame:
    """``cac`` of every buyer of ``table`` (which has ``acquisition_channel``).

    A buyer is acquired in the period of their first purchase. A channel's spend in a period
    is divided by the buyers that channel acquired then; spend that finds no such buyer (a
    channel that acquired nobody that period, or spend without a channel) is blended: divided
    by every buyer acquired in that period. A buyer's CAC is their channel's share plus the
    blended share.
    """
    every = PERIODS[settings.period]
    acquired = table.filter(pl.col("orders") >= 1).select(
        "customer_id",
        "acquisition_channel",
        period=pl.col("first_purchase").dt.truncate(every),
    )
    spent = (
        spend.filter(pl.col("spent_on") <= as_of.astimezone(UTC).date())
        .group_by("channel", period=pl.col("spent_on").dt.truncate(every))
        .agg(amount=pl.col("home_amount").sum())
    )
    by_channel = (
        acquired.filter(pl.col("acquisition_channel").is_not_null())
        .group_by(pl.col("acquisition_channel").alias("channel"), "period")
        .agg(buyers=pl.len())
    )
    matched = spent.join(by_channel, on=["channel", "period"], how="left")
    channel_share = matched.filter(pl.col("buyers").is_not_null()).select(
        pl.col("channel").alias("acquisition_channel"),
        "period",
        channel_cac=pl.col("amount") / pl.col("buyers").cast(MONEY),
    )
    everyone = acquired.group_by("period").agg(all_buyers=pl.len())
    blended = (
        matched.filter(pl.col("buyers").is_null())
        .group_by("period")
        .agg(unattributed=pl.col("amount").sum())
        .join(everyone, on="period")
        .select("period", blended_cac=pl.col("unattributed") / pl.col("all_buyers").cast(MONEY))
    )
    zero = pl.lit(0).cast(MONEY)
    return (
        acquired.join(channel_share, on=["acquisition_channel", "period"], how="left")
        .join(blended, on="period", how="left")
        .select(
            "customer_id",
            cac=pl.col("channel_cac").fill_null(zero) + pl.col("blended_cac").fill_null(zero),
        )
    )
