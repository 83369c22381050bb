"""Read the ledger into the frames the metrics engine works on (``clm_metrics.inputs``).

Source rows are attached to their ledger customer through ``customer_link``; a row whose
customer is not linked (not reconciled yet) is left out. Rows are fetched in chunks and
turned into polars frames chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
from sqlalchemy import Connection, Select, and_, select
from sqlalchemy.orm import aliased

from clm_metrics import LedgerFrames
from clm_metrics.inputs import (
    CUSTOMER_SCHEMA,
    INTERACTION_SCHEMA,
    REFERRAL_SCHEMA,
    SPEND_SCHEMA,
    TRANSACTION_SCHEMA,
    frame,
)
from sync.ledger import (
    CustomerLink,
    LedgerCustomer,
    SourceCustomerRow,
    SourceInteractionRow,
    SourceReferralRow,
    SourceSpendRow,
    SourceTransactionRow,
    TransactionMatch,
)

_CUSTOMER = LedgerCustomer.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_TRANSACTION = SourceTransactionRow.__table__  # type: ignore[attr-defined]
_INTERACTION = SourceInteractionRow.__table__  # type: ignore[attr-defined]
_REFERRAL = SourceReferralRow.__table__  # type: ignore[attr-defined]
_SPEND = SourceSpendRow.__table__  # type: ignore[attr-defined]
_MATCHED = TransactionMatch.__table__  # type: ignore[attr-defined]

STREAM_ROWS = 50_000
MAX_LISTED_CUSTOMERS = 5_000


def read_frame(
    connection: Connection, query: Select[Any], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """The rows of ``query`` as a frame of ``schema`` (its columns in the query's order)."""
    rows = connection.execute(query.execution_options(yield_per=STREAM_ROWS))
    chunks = [frame(map(tuple, chunk), schema) for chunk in rows.partitions()]
    return pl.concat(chunks) if chunks else frame([], schema)


def _owned(table: Any, customer_column: Any) -> Any:
    """Join condition: a source row's customer reference to that customer's source row."""
    return (_SOURCE.c.system == table.c.system) & (_SOURCE.c.external_id == customer_column)


def _customers(connection: Connection, customer_ids: Sequence[int] | None) -> pl.DataFrame:
    """One row per ledger customer; channel, notes and labels of their live source records
    (the earliest record's channel; notes joined; labels of all)."""
    query = (
        select(
            _CUSTOMER.c.id,
            _SOURCE.c.acquisition_channel,
            _SOURCE.c.notes,
            _SOURCE.c.labels,
            _SOURCE.c.first_seen_at,
        )
        .select_from(_CUSTOMER)
        .outerjoin(_LINK, _LINK.c.ledger_customer_id == _CUSTOMER.c.id)
        .outerjoin(
            _SOURCE, and_(_SOURCE.c.id == _LINK.c.source_customer_id, _SOURCE.c.deleted.is_(False))
        )
    )
    if customer_ids is not None:
        query = query.where(_CUSTOMER.c.id.in_(customer_ids))
    schema = {**CUSTOMER_SCHEMA, "first_seen_at": pl.Datetime("us", "UTC")}
    records = read_frame(connection, query, schema).with_columns(pl.col("labels").fill_null([]))
    return (
        records.sort("customer_id", "first_seen_at", nulls_last=True)
        .group_by("customer_id", maintain_order=True)
        .agg(
            acquisition_channel=pl.col("acquisition_channel").drop_nulls().first(),
            notes=pl.col("notes").drop_nulls().str.join("\n"),
            labels=pl.col("labels").explode().drop_nulls(),
        )
        .with_columns(pl.col("notes").replace("", None))
        .select(list(CUSTOMER_SCHEMA))
        .cast(CUSTOMER_SCHEMA)  # type: ignore[arg-type]
    )


def _with_customer(query: Select[Any], table: Any, customer_ids: Sequence[int] | None) -> Any:
    query = (
        query.select_from(table)
        .join(_SOURCE, _owned(table, table.c.customer_external_id))
        .join(_LINK, _LINK.c.source_customer_id == _SOURCE.c.id)
        .where(table.c.deleted.is_(False))
    )
    if customer_ids is not None:
        query = query.where(_LINK.c.ledger_customer_id.in_(customer_ids))
    return query


def read_frames(connection: Connection, customer_ids: Sequence[int] | None = None) -> LedgerFrames:
    """The ledger as the metrics engine reads it: every ledger customer (or only those of
    ``customer_ids``) with their rows; referrals and spend always in full."""
    if customer_ids is not None and len(customer_ids) > MAX_LISTED_CUSTOMERS:
        # A long id list in SQL is slower than reading everything and filtering here.
        full = read_frames(connection)
        keep = pl.col("customer_id").is_in(pl.Series(customer_ids, dtype=pl.Int64()).implode())
        return LedgerFrames(
            full.customers.filter(keep),
            full.transactions.filter(keep),
            full.interactions.filter(keep),
            full.referrals,
            full.spend,
        )
    transactions = _with_customer(
        select(
            _LINK.c.ledger_customer_id,
            _TRANSACTION.c.occurred_at,
            _TRANSACTION.c.transaction_kind,
            _TRANSACTION.c.home_amount,
            _TRANSACTION.c.discount,
        ),
        _TRANSACTION,
        customer_ids,
    ).where(
        # a sale booked in two systems counts once: its other booking is left out
        # (NOT EXISTS: PostgreSQL turns a large NOT IN subquery into a nested loop)
        ~select(_MATCHED.c.transaction_id)
        .where(_MATCHED.c.transaction_id == _TRANSACTION.c.id)
        .exists()
    )
    interactions = _with_customer(
        select(
            _LINK.c.ledger_customer_id,
            _INTERACTION.c.occurred_at,
            _INTERACTION.c.interaction_kind,
            _INTERACTION.c.support,
            _INTERACTION.c.conversation_id,
            _INTERACTION.c.cost,
            _INTERACTION.c.labels,
            _INTERACTION.c.subject,
            _INTERACTION.c.preview,
        ),
        _INTERACTION,
        customer_ids,
    )
    interaction_schema = {
        **{k: v for k, v in INTERACTION_SCHEMA.items() if k != "text"},
        "subject": pl.String(),
        "preview": pl.String(),
    }
    referrer, referred = aliased(_SOURCE), aliased(_SOURCE)
    referrer_link, referred_link = aliased(_LINK), aliased(_LINK)
    referrals = (
        select(
            referrer_link.c.ledger_customer_id,
            referred_link.c.ledger_customer_id,
            _REFERRAL.c.occurred_at,
        )
        .select_from(_REFERRAL)
        .join(
            referrer,
            (referrer.c.system == _REFERRAL.c.system)
            & (referrer.c.external_id == _REFERRAL.c.referrer_external_id),
        )
        .join(referrer_link, referrer_link.c.source_customer_id == referrer.c.id)
        .join(
            referred,
            (referred.c.system == _REFERRAL.c.system)
            & (referred.c.external_id == _REFERRAL.c.referred_external_id),
        )
        .join(referred_link, referred_link.c.source_customer_id == referred.c.id)
        .where(_REFERRAL.c.deleted.is_(False))
    )
    spend = select(_SPEND.c.spent_on, _SPEND.c.channel, _SPEND.c.home_amount).where(
        _SPEND.c.deleted.is_(False)
    )
    return LedgerFrames(
        customers=_customers(connection, customer_ids),
        transactions=read_frame(connection, transactions, TRANSACTION_SCHEMA),
        interactions=read_frame(connection, interactions, interaction_schema)
        .with_columns(
            text=pl.concat_str("subject", "preview", separator="\n", ignore_nulls=True),
            labels=pl.col("labels").fill_null([]),
        )
        .select(list(INTERACTION_SCHEMA)),
        referrals=read_frame(connection, referrals, REFERRAL_SCHEMA),
        spend=read_frame(connection, spend, SPEND_SCHEMA),
    )
