"""Keeping each customer's basis between runs, and finding the customers to recompute.

A customer is *touched* — their basis is recomputed — when their fingerprint changed (a link
gained or lost, a source record, transaction or interaction added, changed, deleted or moved
away, one of their sales matched to another booking of it or no longer), when one of their
rows became known or crossed the start of a window because the as-of time moved, or when
they have no basis yet. Everything else keeps last run's basis, which equals what a full
recompute would give: the basis depends only on the customer's own rows, which of their
sales are matched, and the as-of time (``clm_metrics.basis``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import BigInteger, Connection, cast, delete, func, insert, or_, select

from clm_metrics.basis import BASIS_SCHEMA
from config.models import MetricsConfig
from sync.frames import read_frame
from sync.ledger import (
    CustomerBasis,
    CustomerLink,
    LedgerCustomer,
    SourceCustomerRow,
    SourceInteractionRow,
    SourceTransactionRow,
    TransactionMatch,
)

_BASIS = CustomerBasis.__table__  # type: ignore[attr-defined]
_CUSTOMER = LedgerCustomer.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_TRANSACTION = SourceTransactionRow.__table__  # type: ignore[attr-defined]
_INTERACTION = SourceInteractionRow.__table__  # type: ignore[attr-defined]
_MATCH = TransactionMatch.__table__  # type: ignore[attr-defined]

WRITE_ROWS = 5_000
_STAMP = pl.Datetime("us", "UTC")


def _per_customer(query: Any, table: Any) -> Any:
    """``query`` over the rows of ``table`` (transactions or interactions), grouped by the
    ledger customer each row belongs to."""
    return (
        query.join(
            _SOURCE,
            (_SOURCE.c.system == table.c.system)
            & (_SOURCE.c.external_id == table.c.customer_external_id),
        )
        .join(_LINK, _LINK.c.source_customer_id == _SOURCE.c.id)
        .group_by(_LINK.c.ledger_customer_id)
    )


def _rows_of(table: Any) -> Any:
    query = select(_LINK.c.ledger_customer_id, func.count(), func.max(table.c.updated_at))
    return _per_customer(query.select_from(table), table)


def _matched(connection: Connection) -> pl.DataFrame:
    """(customer_id, part): the customer's sales left out as another booking's duplicate
    (``transaction_match``), summed up as count, id sum, lowest and highest id. Reconcile
    rewrites every match's ``matched_at`` when any match changes, so the time is left out."""
    ids = _MATCH.c.transaction_id
    query = select(
        _LINK.c.ledger_customer_id,
        func.count(),
        cast(func.sum(ids), BigInteger),
        func.min(ids),
        func.max(ids),
    ).select_from(_MATCH.join(_TRANSACTION, _TRANSACTION.c.id == ids))
    names = ("customer_id", "count", "sum", "lowest", "highest")
    schema: dict[str, pl.DataType] = dict.fromkeys(names, pl.Int64())
    matched = read_frame(connection, _per_customer(query, _TRANSACTION), schema)
    return matched.select(
        "customer_id", part=pl.concat_str([pl.col(name) for name in names[1:]], separator="/")
    )


def fingerprints(connection: Connection) -> pl.DataFrame:
    """(customer_id, fingerprint) of every ledger customer, computed by the database."""
    stamp = {"customer_id": pl.Int64(), "count": pl.Int64(), "latest": _STAMP}
    customers = read_frame(connection, select(_CUSTOMER.c.id), {"customer_id": pl.Int64()})
    links = read_frame(
        connection,
        select(
            _LINK.c.ledger_customer_id,
            func.count(),
            func.max(func.coalesce(_SOURCE.c.updated_at, _LINK.c.linked_at)),
        )
        .join(_SOURCE, _SOURCE.c.id == _LINK.c.source_customer_id)
        .group_by(_LINK.c.ledger_customer_id),
        stamp,
    )
    linked_at = read_frame(
        connection,
        select(_LINK.c.ledger_customer_id, func.count(), func.max(_LINK.c.linked_at)).group_by(
            _LINK.c.ledger_customer_id
        ),
        stamp,
    )
    parts = [links, linked_at, read_frame(connection, _rows_of(_TRANSACTION), stamp)]
    parts.append(read_frame(connection, _rows_of(_INTERACTION), stamp))
    result = customers
    for index, part in enumerate(parts):
        result = result.join(
            part.select(
                "customer_id",
                pl.format("{}@{}", "count", pl.col("latest").cast(pl.String)).alias(f"p{index}"),
            ),
            on="customer_id",
            how="left",
        )
    result = result.join(
        _matched(connection).rename({"part": f"p{len(parts)}"}), on="customer_id", how="left"
    )
    columns = [pl.col(f"p{index}").fill_null("-") for index in range(len(parts) + 1)]
    return result.select("customer_id", fingerprint=pl.concat_str(columns, separator="|"))


def crossed(
    connection: Connection, before: datetime, after: datetime, settings: MetricsConfig
) -> set[int]:
    """Customers with a row that became known, or left a window, when the as-of time moved
    from ``before`` to ``after``."""
    windows = {timedelta(0), timedelta(days=settings.revenue_window_days)}
    windows.add(timedelta(days=settings.roc_window_days))
    found: set[int] = set()
    for table in (_TRANSACTION, _INTERACTION):
        bands = [
            (table.c.occurred_at > before - window) & (table.c.occurred_at <= after - window)
            for window in windows
        ]
        query = (
            select(_LINK.c.ledger_customer_id)
            .distinct()
            .select_from(table)
            .join(
                _SOURCE,
                (_SOURCE.c.system == table.c.system)
                & (_SOURCE.c.external_id == table.c.customer_external_id),
            )
            .join(_LINK, _LINK.c.source_customer_id == _SOURCE.c.id)
            .where(or_(*bands))
        )
        found.update(connection.execute(query).scalars())
    return found


def stored_basis(connection: Connection) -> pl.DataFrame:
    """Every stored basis row, with its fingerprint."""
    columns = [_BASIS.c.ledger_customer_id, _BASIS.c.fingerprint]
    columns += [_BASIS.c[name] for name in BASIS_SCHEMA if name != "customer_id"]
    schema = {"customer_id": pl.Int64(), "fingerprint": pl.String()}
    schema |= {name: dtype for name, dtype in BASIS_SCHEMA.items() if name != "customer_id"}
    return read_frame(connection, select(*columns).order_by(_BASIS.c.ledger_customer_id), schema)


def replace_basis(connection: Connection, basis: pl.DataFrame, ids: Sequence[int]) -> None:
    """Store ``basis`` (with ``fingerprint``) in place of the stored rows of ``ids``."""
    for start in range(0, len(ids), WRITE_ROWS):
        chunk = ids[start : start + WRITE_ROWS]
        connection.execute(delete(_BASIS).where(_BASIS.c.ledger_customer_id.in_(chunk)))
    rows = basis.rename({"customer_id": "ledger_customer_id"}).to_dicts()
    for start in range(0, len(rows), WRITE_ROWS):
        connection.execute(insert(_BASIS), rows[start : start + WRITE_ROWS])
