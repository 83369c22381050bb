"""QuickBooks streams: one per entity, read by query pages first and by CDC afterwards.

Cursor phases (a stream's cursor is a small JSON object)::

    {}                                            nothing read yet: page through a query
    {"phase": "query", "position": 991,           paging; ``since`` filters on
     "since": "...", "next_since": "...",         MetaData.LastUpdatedTime (absent: all);
     "pass": "..."}                               ``pass`` names a complete pass (below)
    {"phase": "cdc", "since": "..."}              caught up: the next pass asks CDC

``next_since`` is the server's time of the pass's first answer (less :data:`OVERLAP`), where
the following pass starts. Query pages are ordered by ``Id`` and overlap a little
(:func:`page_overlap`), so a record deleted while paging cannot shift one past us unseen.

A query cannot show deletions, so whenever CDC cannot answer for the whole window the stream
reads the entity completely instead: a *complete pass* of query pages over every live record,
marked ``full_pass`` under one ``pass_id``, after which ingest flags deleted every row the pass
did not yield. That happens when CDC would have to look back further than 30 days (an old
cursor, or a CDC call QuickBooks refuses), and when a CDC answer is full: one holds at most
1000 objects and does not say in which order it cut, so its objects are stored (deletions too)
but the cursor does not move past the window until the complete pass has been read. The cost
is one read of the entity (a page per 1000 objects) in the rare cycle that needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import Cursor, Page
from connectors.http import HttpError
from connectors.notes_block import user_text
from connectors.quickbooks.client import Answer, QuickBooksClient, parse_time
from connectors.records import (
    Record,
    RecordKind,
    Rejected,
    SourceCustomer,
    SourceSpend,
    SourceTransaction,
    TransactionKind,
)

CDC_LOOKBACK = timedelta(days=30)
CDC_SAFE_LOOKBACK = CDC_LOOKBACK - timedelta(days=1)
"""Older cursors go to the query straight away (a day's margin for clock differences)."""
CDC_CAP = 1000
"""Objects one CDC answer holds at most, across the entities asked for."""
OVERLAP = timedelta(minutes=2)
"""The next pass starts this long before the server's time of this one (late commits)."""
_CENT = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

JsonObject = dict[str, Any]


class BadObject(ValueError):
    """An object that cannot be mapped; the message is the quarantine reason."""


def page_overlap(page_size: int) -> int:
    """Objects each query page repeats from the previous one (10 for full pages)."""
    return min(10, page_size // 5)


@dataclass(slots=True)
class MappingContext:
    """What mapping needs beyond the object: home currency, channels, the customer tree."""

    home_currency: str
    marketing_accounts: Mapping[str, str]
    parents: Callable[[], Mapping[str, str]] | None = None
    """Sub-customer id to parent id, when sub-customers roll up (loaded on first use)."""
    _parents: Mapping[str, str] | None = field(default=None, init=False)

    @property
    def channels(self) -> list[str]:
        return sorted(set(self.marketing_accounts.values()))

    def owner(self, customer_id: str | None) -> str | None:
        """The customer a sale counts for: itself, or its top-level parent when rolling up.

        Read when the document is read: a document booked before its customer got a parent
        moves to the parent when the document next changes.
        """
        if customer_id is None or self.parents is None:
            return customer_id
        if self._parents is None:
            self._parents = self.parents()
        seen = {customer_id}
        while customer_id in self._parents:
            customer_id = self._parents[customer_id]
            if customer_id in seen:
                break
            seen.add(customer_id)
        return customer_id

    def channel(self, account: Mapping[str, Any]) -> str | None:
        for key in (account.get("value"), account.get("name")):
            if key is not None and str(key) in self.marketing_accounts:
                return self.marketing_accounts[str(key)]
        name = str(account.get("name") or "")
        short = name.rsplit(":", 1)[-1]
        return self.marketing_accounts.get(short)


# -- mapping ----------------------------------------------------------------------------------


def _deleted(obj: Mapping[str, Any]) -> bool:
    return obj.get("status") == "Deleted"


def _ref(obj: Mapping[str, Any], name: str) -> str | None:
    value = (obj.get(name) or {}).get("value")
    return None if value is None else str(value)


def _money(obj: Mapping[str, Any], name: str) -> Decimal:
    value = obj.get(name)
    if value is None:
        raise BadObject(f"{name} is missing")
    try:
        # JSON numbers arrive as floats; their shortest text is the decimal QuickBooks sent.
        amount = Decimal(str(value))
    except InvalidOperation:
        raise BadObject(f"{name} {value!r} is not a number") from None
    if not amount.is_finite():
        raise BadObject(f"{name} {value!r} is not a finite number")
    return amount


def _day(obj: Mapping[str, Any]) -> date:
    value = obj.get("TxnDate")
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise BadObject(f"TxnDate {value!r} is not a date like 2025-03-05") from None


def _home(obj: Mapping[str, Any], amount: Decimal, currency: str, ctx: MappingContext) -> Decimal:
    """The home-currency amount: ``HomeTotalAmt`` if given, else amount times ``ExchangeRate``."""
    if currency == ctx.home_currency:
        return amount
    if obj.get("HomeTotalAmt") is not None:
        return _money(obj, "HomeTotalAmt")
    if obj.get("ExchangeRate") is None:
        raise BadObject(f"a {currency} document without ExchangeRate (home is {ctx.home_currency})")
    return (amount * _money(obj, "ExchangeRate")).quantize(_CENT)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def map_customer(obj: JsonObject, ctx: MappingContext) -> list[Record]:
    """A customer; inactive means deleted (QuickBooks deletes and merges by deactivating)."""
    customer_id = str(obj["Id"])
    if _deleted(obj) or obj.get("Active") is False:
        return [SourceCustomer(customer_id, deleted=True)]
    parent = _ref(obj, "ParentRef")
    if parent is not None and ctx.parents is not None:
        # Rolled up: its sales count for the top-level customer, and it is no customer of its
        # own (a tombstone, in case it was one before it got its parent).
        return [SourceCustomer(customer_id, deleted=True)]
    address = obj.get("BillAddr") or {}
    created = (obj.get("MetaData") or {}).get("CreateTime")
    return [
        SourceCustomer(
            external_id=customer_id,
            name=_text(obj.get("DisplayName")),
            first_name=_text(obj.get("GivenName")),
            last_name=_text(obj.get("FamilyName")),
            company=_text(obj.get("CompanyName")),
            email=_text((obj.get("PrimaryEmailAddr") or {}).get("Address")),
            phone=_text((obj.get("PrimaryPhone") or obj.get("Mobile") or {}).get("FreeFormNumber")),
            address_line1=_text(address.get("Line1")),
            address_line2=_text(address.get("Line2")),
            city=_text(address.get("City")),
            postcode=_text(address.get("PostalCode")),
            region=_text(address.get("CountrySubDivisionCode")),
            country=_text(address.get("Country")),
            created_at=None if created is None else parse_time(str(created)),
            parent_external_id=parent,
            notes=user_text(obj.get("Notes")) or None,
        )
    ]


def _transaction_tombstone(external_id: str, ctx: MappingContext) -> SourceTransaction:
    return SourceTransaction(external_id, None, _EPOCH, Decimal(0), ctx.home_currency, deleted=True)


def transaction_mapper(
    kind: TransactionKind, document: str
) -> Callable[[JsonObject, MappingContext], list[Record]]:
    def map_transaction(obj: JsonObject, ctx: MappingContext) -> list[Record]:
        external_id = str(obj["Id"])
        if _deleted(obj):
            return [_transaction_tombstone(external_id, ctx)]
        amount = _money(obj, "TotalAmt")
        currency = _ref(obj, "CurrencyRef") or ctx.home_currency
        day = _day(obj)
        return [
            SourceTransaction(
                external_id=external_id,
                customer_external_id=ctx.owner(_ref(obj, "CustomerRef")),
                occurred_at=datetime(day.year, day.month, day.day, tzinfo=UTC),
                amount=amount,
                currency=currency,
                transaction_kind=kind,
                home_amount=_home(obj, amount, currency, ctx),
                document_kind=document,
                reference=_text(obj.get("DocNumber")),
                memo=_text(obj.get("PrivateNote")),
            )
        ]

    return map_transaction


def map_spend(obj: JsonObject, ctx: MappingContext) -> list[Record]:
    """Lines booked to marketing accounts, one record per channel and document.

    Channels the document does not (or no longer) book to are yielded as tombstones, so a
    line moved to another account or removed leaves no stale spend behind. A credit-card
    credit (``Purchase`` with ``Credit: true``, money back from a vendor) is not spend; the
    ledger has no negative spend, so it is left out rather than counted the wrong way.
    """
    document_id = str(obj["Id"])
    totals: dict[str, Decimal] = {}
    if not _deleted(obj) and obj.get("Credit") is not True:
        for line in obj.get("Line") or []:
            detail = line.get("AccountBasedExpenseLineDetail")
            if line.get("DetailType") != "AccountBasedExpenseLineDetail" or not detail:
                continue
            channel = ctx.channel(detail.get("AccountRef") or {})
            if channel is not None:
                totals[channel] = totals.get(channel, Decimal(0)) + _money(line, "Amount")
    currency = _ref(obj, "CurrencyRef") or ctx.home_currency
    day = _day(obj) if totals else _EPOCH.date()
    records: list[Record] = []
    for channel in ctx.channels:
        external_id = f"{document_id}:{channel}"
        if channel not in totals:
            records.append(
                SourceSpend(external_id, day, channel, Decimal(0), currency, deleted=True)
            )
            continue
        amount = totals[channel]
        home = amount if currency == ctx.home_currency else None
        if home is None:
            if obj.get("ExchangeRate") is None:
                raise BadObject(f"a {currency} expense without ExchangeRate")
            home = (amount * _money(obj, "ExchangeRate")).quantize(_CENT)
        records.append(SourceSpend(external_id, day, channel, amount, currency, home))
    return records


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """One QuickBooks entity read as one stream."""

    entity: str
    stream: str
    record_kind: RecordKind
    mapper: Callable[[JsonObject, MappingContext], list[Record]]
    where: str = ""
    """A filter every query of this entity carries (Customer: include inactive ones)."""


CUSTOMERS = EntitySpec(
    "Customer", "customers", RecordKind.CUSTOMER, map_customer, "Active IN (true, false)"
)
SALES = (
    EntitySpec(
        "Invoice",
        "invoices",
        RecordKind.TRANSACTION,
        transaction_mapper(TransactionKind.SALE, "Invoice"),
    ),
    EntitySpec(
        "SalesReceipt",
        "sales_receipts",
        RecordKind.TRANSACTION,
        transaction_mapper(TransactionKind.SALE, "SalesReceipt"),
    ),
    EntitySpec(
        "CreditMemo",
        "credit_memos",
        RecordKind.TRANSACTION,
        transaction_mapper(TransactionKind.REFUND, "CreditMemo"),
    ),
    EntitySpec(
        "RefundReceipt",
        "refund_receipts",
        RecordKind.TRANSACTION,
        transaction_mapper(TransactionKind.REFUND, "RefundReceipt"),
    ),
)
SPEND = (
    EntitySpec("Purchase", "purchases", RecordKind.SPEND, map_spend),
    EntitySpec("Bill", "bills", RecordKind.SPEND, map_spend),
)


# -- paging -----------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class EntityStream:
    """An incremental stream over one entity (see the module docstring for the cursor)."""

    full_refresh = False

    def __init__(
        self,
        spec: EntitySpec,
        client: QuickBooksClient,
        ctx: MappingContext,
        page_size: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.spec = spec
        self.client = client
        self.ctx = ctx
        self.page_size = page_size
        self.clock = clock
        self.name = spec.stream
        self.record_kind = spec.record_kind

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        if cursor.get("phase") == "query":
            yield from self._query_pages(
                _optional_time(cursor.get("since")),
                int(cursor.get("position", 1)),
                _optional_time(cursor.get("next_since")),
                str(cursor.get("pass") or ""),
            )
        elif cursor.get("phase") == "cdc":
            since = parse_time(str(cursor["since"]))
            if self.clock() - since > CDC_SAFE_LOOKBACK:
                yield from self._complete_pass()
            else:
                yield from self._cdc_pages(since)
        else:
            yield from self._query_pages(None, 1, None)

    def _complete_pass(self) -> Iterator[Page]:
        """Every live object, so that ingest can flag what is gone (see the module docstring).

        Named by the moment it was started, which a resumed pass keeps in its cursor.
        """
        yield from self._query_pages(None, 1, None, _stamp(self.clock()))

    def _statement(self, since: datetime | None, position: int) -> str:
        filters = [f for f in (self.spec.where,) if f]
        if since is not None:
            filters.append(f"MetaData.LastUpdatedTime >= '{_stamp(since)}'")
        where = f" WHERE {' AND '.join(filters)}" if filters else ""
        return (  # the QuickBooks query language; every part is ours
            f"SELECT * FROM {self.spec.entity}{where} ORDERBY Id "  # noqa: S608
            f"STARTPOSITION {position} MAXRESULTS {self.page_size}"
        )

    def _query_pages(
        self,
        since: datetime | None,
        position: int,
        next_since: datetime | None,
        pass_id: str = "",
    ) -> Iterator[Page]:
        """Query pages from ``position``; with a ``pass_id``, a complete pass (``since`` None)."""
        overlap = page_overlap(self.page_size)
        while True:
            statement = self._statement(since, position)
            answer = self.client.query(self.spec.entity, statement)
            if next_since is None:
                next_since = answer.time - OVERLAP
            records, rejected = self._map(answer, f"query {statement!r}")
            if len(answer.objects) < self.page_size:
                cursor: dict[str, Any] = {"phase": "cdc", "since": _stamp(next_since)}
                yield Page(
                    records,
                    cursor,
                    rejected,
                    pass_complete=True,
                    pass_id=pass_id,
                    full_pass=bool(pass_id),
                )
                return
            position += len(answer.objects) - overlap
            cursor = _query_cursor(since, position, next_since, pass_id)
            yield Page(records, cursor, rejected, pass_id=pass_id, full_pass=bool(pass_id))

    def _cdc_pages(self, since: datetime) -> Iterator[Page]:
        try:
            answer = self.client.cdc(self.spec.entity, since)
        except HttpError:
            # Refused (the cursor is beyond the look-back window by the server's clock).
            yield from self._complete_pass()
            return
        records, rejected = self._map(answer, f"CDC since {_stamp(since)}")
        if len(answer.objects) >= CDC_CAP:
            # Possibly cut off: keep what came, then read everything; the cursor stays before
            # this window until the complete pass has been read.
            next_since = answer.time - OVERLAP
            pass_id = _stamp(answer.time)
            cursor = _query_cursor(None, 1, next_since, pass_id)
            yield Page(records, cursor, rejected)
            yield from self._query_pages(None, 1, next_since, pass_id)
            return
        cursor = {"phase": "cdc", "since": _stamp(answer.time - OVERLAP)}
        yield Page(records, cursor, rejected, pass_complete=True)

    def _map(self, answer: Answer, where: str) -> tuple[list[Record], list[Rejected]]:
        records: list[Record] = []
        rejected: list[Rejected] = []
        seen: set[str] = set()
        for obj in answer.objects:
            object_id = str(obj.get("Id", ""))
            if object_id in seen:
                continue  # ingest refuses an id twice in one page; the first is as good
            seen.add(object_id)
            try:
                records.extend(self.spec.mapper(obj, self.ctx))
            except (BadObject, KeyError, TypeError, AttributeError) as error:
                reason = f"{self.spec.entity} {object_id or '(no Id)'}: {_reason(error)}"
                raw = json.dumps(obj, ensure_ascii=False)
                rejected.append(Rejected(reason, raw, object_id or None, where))
        return records, rejected


def _query_cursor(
    since: datetime | None, position: int, next_since: datetime, pass_id: str
) -> dict[str, Any]:
    cursor: dict[str, Any] = {
        "phase": "query",
        "position": position,
        "since": None if since is None else _stamp(since),
        "next_since": _stamp(next_since),
    }
    if pass_id:
        cursor["pass"] = pass_id
    return cursor


def _reason(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"{error.args[0]} is missing"
    return str(error)


def _optional_time(value: Any) -> datetime | None:
    return None if value in (None, "") else parse_time(str(value))


def load_parents(client: QuickBooksClient, page_size: int) -> dict[str, str]:
    """Every sub-customer's parent id, read with paged queries (for the roll-up)."""
    parents: dict[str, str] = {}
    position = 1
    while True:
        answer = client.query(
            "Customer",
            "SELECT * FROM Customer WHERE Active IN (true, false) AND Job = true ORDERBY Id "  # noqa: S608
            f"STARTPOSITION {position} MAXRESULTS {page_size}",
        )
        for customer in answer.objects:
            parent = _ref(customer, "ParentRef")
            if parent is not None:
                parents[str(customer["Id"])] = parent
        if len(answer.objects) < page_size:
            return parents
        position += len(answer.objects)


def entity_specs() -> Sequence[EntitySpec]:
    """Every stream, customers first (what refers to them comes after)."""
    return (CUSTOMERS, *SALES, *SPEND)
