"""The metrics step: feed each ledger customer's rows to ``clm_metrics`` and store the result.

Transactions are streamed in ledger-customer order, so memory holds one customer's rows at a
time plus the stored figures for comparison; a customer's row in ``customer_metrics`` is
written only when a figure changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from clm_metrics import Purchase, customer_figures
from clm_metrics.basic import MetricValue
from sync.ledger import (
    CustomerLink,
    CustomerMetrics,
    LedgerCustomer,
    SourceCustomerRow,
    SourceTransactionRow,
    TransactionMatch,
)

_CUSTOMER = LedgerCustomer.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_TRANSACTION = SourceTransactionRow.__table__  # type: ignore[attr-defined]
_METRICS = CustomerMetrics.__table__  # type: ignore[attr-defined]
_DUPLICATE = TransactionMatch.__table__  # type: ignore[attr-defined]

STREAM_ROWS = 5_000


@dataclass(slots=True)
class FiguresResult:
    customers: int = 0
    changed: int = 0


def to_json_value(value: MetricValue) -> Any:
    """Metric values as JSON: dates as ISO text, money as exact decimal text."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def encode_values(values: dict[str, MetricValue]) -> str:
    return json.dumps({name: to_json_value(v) for name, v in values.items()}, sort_keys=True)


def _purchases(connection: Connection) -> Iterator[tuple[int, Purchase]]:
    """Every live sale and refund with the ledger customer it belongs to, by customer.

    A sale booked twice (``transaction_match``) counts once: its duplicate is left out.
    """
    rows = connection.execution_options(yield_per=STREAM_ROWS).execute(
        select(
            _LINK.c.ledger_customer_id,
            _TRANSACTION.c.occurred_at,
            _TRANSACTION.c.transaction_kind,
            _TRANSACTION.c.home_amount,
        )
        .select_from(_TRANSACTION)
        .join(
            _SOURCE,
            (_SOURCE.c.system == _TRANSACTION.c.system)
            & (_SOURCE.c.external_id == _TRANSACTION.c.customer_external_id),
        )
        .join(_LINK, _LINK.c.source_customer_id == _SOURCE.c.id)
        .where(
            _TRANSACTION.c.deleted.is_(False),
            _TRANSACTION.c.id.not_in(select(_DUPLICATE.c.transaction_id)),
        )
        .order_by(_LINK.c.ledger_customer_id)
    )
    for ledger_id, occurred_at, kind, home_amount in rows:
        yield ledger_id, Purchase(occurred_at, kind, home_amount)


class _MetricWrites:
    """Buffers changed figures and writes them in batches, bounding memory."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.inserts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.count = 0

    def add(self, ledger_id: int, as_of: datetime, encoded: str, *, insert: bool) -> None:
        if insert:
            self.inserts.append(
                {"ledger_customer_id": ledger_id, "as_of": as_of, "values_json": encoded}
            )
        else:
            self.updates.append({"key": ledger_id, "as_of": as_of, "values_json": encoded})
        self.count += 1
        if len(self.inserts) + len(self.updates) >= STREAM_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.inserts:
            self.connection.execute(insert(_METRICS), self.inserts)
        if self.updates:
            self.connection.execute(
                update(_METRICS)
                .where(_METRICS.c.ledger_customer_id == bindparam("key"))
                .values(as_of=bindparam("as_of"), values_json=bindparam("values_json")),
                self.updates,
            )
        self.inserts, self.updates = [], []


def compute_figures(engine: Engine, as_of: datetime) -> FiguresResult:
    """Recompute every ledger customer's figures as of ``as_of``; store those that changed.

    Rows are streamed on one connection and changes written on another (a server-side
    cursor cannot share its connection with writes on PostgreSQL); the writes commit together.
    """
    result = FiguresResult()
    with engine.connect() as reader, engine.begin() as writer:
        stored: dict[int, str] = {
            ledger_id: values_json
            for ledger_id, values_json in reader.execute(
                select(_METRICS.c.ledger_customer_id, _METRICS.c.values_json)
            ).tuples()
        }
        customer_ids = list(
            reader.execute(select(_CUSTOMER.c.id).order_by(_CUSTOMER.c.id)).scalars()
        )
        writes = _MetricWrites(writer)
        purchases = groupby(_purchases(reader), key=lambda item: item[0])
        pending = next(purchases, None)
        for ledger_id in customer_ids:
            own: list[Purchase] = []
            while pending is not None and pending[0] <= ledger_id:
                if pending[0] == ledger_id:
                    own = [purchase for _, purchase in pending[1]]
                pending = next(purchases, None)
            encoded = encode_values(customer_figures(own, as_of).values())
            previous = stored.get(ledger_id)
            if previous != encoded:
                writes.add(ledger_id, as_of, encoded, insert=previous is None)
        writes.flush()
        result.customers = len(customer_ids)
        result.changed = writes.count
    return result
