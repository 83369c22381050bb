"""One sale booked in two systems is counted once.

A shop order is often entered again in QuickBooks as a sales receipt or an invoice. Two sales
of different systems are the same sale when they have the same home-currency amount, are
dated within the configured window of each other, and either one names the other's order
number (its id or reference appearing in the other's reference or memo) or both belong to
the same ledger customer. The booking of ``revenue_authority`` counts (else the earlier one);
the other is recorded in ``transaction_match`` and left out of the metrics.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, delete, insert, select

from config.models import ReconcileConfig, parse_duration
from sync.ledger import CustomerLink, SourceCustomerRow, SourceTransactionRow, TransactionMatch

_TRANSACTION = SourceTransactionRow.__table__  # type: ignore[attr-defined]
_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_MATCH = TransactionMatch.__table__  # type: ignore[attr-defined]

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
ORDER_NUMBER = "same order number"
SAME_CUSTOMER = "same customer, amount and date"


@dataclass(frozen=True, slots=True)
class Sale:
    id: int
    system: str
    external_id: str
    occurred_at: datetime
    home_amount: Decimal
    reference: str | None
    memo: str | None
    ledger_customer_id: int | None

    def numbers(self) -> set[str]:
        """The order numbers this booking is known by (lower case, ``#`` dropped)."""
        own = {self.external_id, *(_TOKEN.findall(self.reference or ""))}
        return {value.lstrip("#").lower() for value in own if value}

    def mentions(self) -> set[str]:
        text = f"{self.reference or ''} {self.memo or ''}"
        return {token.lower() for token in _TOKEN.findall(text)}


def same_sale(a: Sale, b: Sale, window: timedelta) -> str | None:
    """The rule by which ``a`` and ``b`` are one sale, or None."""
    if a.system == b.system or a.home_amount != b.home_amount:
        return None
    if abs(a.occurred_at - b.occurred_at) > window:
        return None
    if a.numbers() & b.mentions() or b.numbers() & a.mentions():
        return ORDER_NUMBER
    if a.ledger_customer_id is not None and a.ledger_customer_id == b.ledger_customer_id:
        return SAME_CUSTOMER
    return None


def _sales(connection: Connection) -> list[Sale]:
    rows = connection.execute(
        select(
            _TRANSACTION.c.id,
            _TRANSACTION.c.system,
            _TRANSACTION.c.external_id,
            _TRANSACTION.c.occurred_at,
            _TRANSACTION.c.home_amount,
            _TRANSACTION.c.reference,
            _TRANSACTION.c.memo,
            _LINK.c.ledger_customer_id,
        )
        .select_from(_TRANSACTION)
        .outerjoin(
            _SOURCE,
            (_SOURCE.c.system == _TRANSACTION.c.system)
            & (_SOURCE.c.external_id == _TRANSACTION.c.customer_external_id),
        )
        .outerjoin(_LINK, _LINK.c.source_customer_id == _SOURCE.c.id)
        .where(_TRANSACTION.c.deleted.is_(False), _TRANSACTION.c.transaction_kind == "sale")
        .order_by(_TRANSACTION.c.home_amount, _TRANSACTION.c.occurred_at, _TRANSACTION.c.id)
    )
    return [Sale(*row) for row in rows]


def pair_sales(
    sales: Sequence[Sale], window: timedelta, authority: str | None
) -> dict[int, tuple[int, str]]:
    """Duplicate sale id to (counted sale id, rule); ``sales`` sorted by amount and time."""
    duplicates: dict[int, tuple[int, str]] = {}
    start = 0
    for index, sale in enumerate(sales):
        while start < index and (
            sales[start].home_amount != sale.home_amount
            or sale.occurred_at - sales[start].occurred_at > window
        ):
            start += 1
        for earlier in sales[start:index]:
            if earlier.id in duplicates or sale.id in duplicates:
                continue
            rule = same_sale(earlier, sale, window)
            if rule is None:
                continue
            counted, dropped = earlier, sale
            if authority is not None and sale.system == authority:
                counted, dropped = sale, earlier
            duplicates[dropped.id] = (counted.id, rule)
    return duplicates


def match_transactions(connection: Connection, config: ReconcileConfig, now: datetime) -> int:
    """Rewrite ``transaction_match`` from the live sales; returns how many are duplicates."""
    window = parse_duration(config.transaction_window)
    duplicates = pair_sales(_sales(connection), window, config.revenue_authority)
    stored = {
        transaction_id: (counted_id, rule)
        for transaction_id, counted_id, rule in connection.execute(
            select(_MATCH.c.transaction_id, _MATCH.c.counted_id, _MATCH.c.rule)
        )
    }
    if stored != duplicates:
        connection.execute(delete(_MATCH))
        if duplicates:
            connection.execute(
                insert(_MATCH),
                [
                    {"transaction_id": t, "counted_id": c, "rule": r, "matched_at": now}
                    for t, (c, r) in duplicates.items()
                ],
            )
    return len(duplicates)
