"""The frames the metrics engine reads: one column layout per kind of ledger row.

The engine works on polars frames, never on Python objects per row. The builders below turn
plain row tuples (as a database cursor or a test gives them) into frames of exactly these
schemas, so every function downstream can rely on column names and types.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl

MONEY = pl.Decimal(38, 10)
"""Exact money: sums of home-currency amounts never go through binary floats."""
MOMENT = pl.Datetime("us", "UTC")

CUSTOMER_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "acquisition_channel": pl.String(),
    "notes": pl.String(),
    "labels": pl.List(pl.String()),
}
TRANSACTION_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "occurred_at": MOMENT,
    "kind": pl.String(),
    "home_amount": MONEY,
    "discount": MONEY,
}
INTERACTION_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "occurred_at": MOMENT,
    "kind": pl.String(),
    "support": pl.Boolean(),
    "conversation_id": pl.String(),
    "cost": MONEY,
    "labels": pl.List(pl.String()),
    "text": pl.String(),
}
REFERRAL_SCHEMA: dict[str, pl.DataType] = {
    "referrer_id": pl.Int64(),
    "referred_id": pl.Int64(),
    "occurred_at": MOMENT,
}
SPEND_SCHEMA: dict[str, pl.DataType] = {
    "spent_on": pl.Date(),
    "channel": pl.String(),
    "home_amount": MONEY,
}

TransactionTuple = tuple[int, datetime, str, Decimal]
"""(ledger customer id, occurred at (aware), "sale" or "refund", home-currency amount >= 0);
a fifth item, the discount granted (home currency), is optional."""


def frame(rows: Iterable[Sequence[Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Rows of the leading columns of ``schema`` (in order); missing trailing columns are
    null."""
    listed = list(rows)
    width = len(listed[0]) if listed else len(schema)
    given = dict(list(schema.items())[:width])
    built = pl.DataFrame(listed, schema=given, orient="row")
    return built.with_columns(
        pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items() if name not in given
    )


def customers_frame(customer_ids: Iterable[int]) -> pl.DataFrame:
    """Customers known only by id (no channel, notes or labels)."""
    return frame(((customer_id,) for customer_id in customer_ids), CUSTOMER_SCHEMA)


def transactions_frame(rows: Iterable[Sequence[Any]]) -> pl.DataFrame:
    return frame(rows, TRANSACTION_SCHEMA)


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


@dataclass(frozen=True, slots=True)
class LedgerFrames:
    """Everything the metrics are computed from, keyed by ledger customer id.

    ``customers`` lists every customer that gets figures (prospects included);
    ``transactions`` holds sales and refunds with positive amounts, ``kind`` giving the sign;
    ``interactions`` the messages and calls (``text`` is subject and preview), ``referrals``
    who referred whom, ``spend`` the marketing spend per channel and day.
    """

    customers: pl.DataFrame
    transactions: pl.DataFrame
    interactions: pl.DataFrame = field(default_factory=lambda: empty(INTERACTION_SCHEMA))
    referrals: pl.DataFrame = field(default_factory=lambda: empty(REFERRAL_SCHEMA))
    spend: pl.DataFrame = field(default_factory=lambda: empty(SPEND_SCHEMA))
