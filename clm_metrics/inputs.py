"""The frames the metrics engine reads: one column layout per kind of ledger row.

The engine works on polars frames, never on Python objects per row. The builders below turn
plain row tuples (as a database cursor or a test gives them) into frames of exactly these
schemas, so every function downstream can rely on column names and types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import polars as pl

MONEY = pl.Decimal(38, 10)
"""Exact money: sums of home-currency amounts never go through binary floats."""
MOMENT = pl.Datetime("us", "UTC")

CUSTOMER_SCHEMA: dict[str, pl.DataType] = {"customer_id": pl.Int64()}
TRANSACTION_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "occurred_at": MOMENT,
    "kind": pl.String(),
    "home_amount": MONEY,
}

TransactionTuple = tuple[int, datetime, str, Decimal]
"""(ledger customer id, occurred at (aware), "sale" or "refund", home-currency amount >= 0)."""


def customers_frame(customer_ids: Iterable[int]) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": list(customer_ids)}, schema=CUSTOMER_SCHEMA)


def transactions_frame(rows: Iterable[TransactionTuple]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=TRANSACTION_SCHEMA, orient="row")


@dataclass(frozen=True, slots=True)
class LedgerFrames:
    """Everything the metrics are computed from, keyed by ledger customer id.

    ``customers`` lists every customer that gets figures (prospects included);
    ``transactions`` holds sales and refunds with positive amounts, ``kind`` giving the sign.
    """

    customers: pl.DataFrame
    transactions: pl.DataFrame
