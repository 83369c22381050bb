"""WooCommerce streams: customers, and orders giving transactions, guests and referrals.

* ``customers`` is a full-refresh stream: the endpoint has no modified filter, so every pass
  reads all pages (``X-WP-TotalPages``) and the ledger's content hash keeps unchanged
  customers from being written; ``customers_every`` in the YAML makes passes rarer.
* ``orders`` is one stream over the order feed that yields three kinds of record per page
  (a :class:`connectors.base.MultiKindStream`): the sales and refunds (ledger stream
  ``orders``), guest customers (``guests``) and, with referral rules, referrals
  (``referrals``). Each order page is read once per cycle, and ingest commits the three kinds
  with the one cursor, so none of them can run ahead of the others.
* The orders are incremental on ``date_modified_gmt``: a pass pages through
  ``modified_after`` SINCE (with ``dates_are_gmt``) in id order, which core WooCommerce
  supports (it cannot sort by modification). An order modified during the pass stays in the
  set (or joins it, shifting later pages: a record is read twice, never skipped), and the
  next pass starts no later than this one began, so it reads such an order again.
* Orders list their refunds without dates; the dated refunds of a page's orders are read
  with one ``refunds?parent=...`` request (or per order where that route is missing).
  Orders that never took money (pending, failed, cancelled, draft) are tombstones, so an
  order that gets cancelled stops counting.
* Guest orders (``customer_id`` 0) make guest customers keyed by billing e-mail.
* An order that cannot be mapped is quarantined once (under ``orders``) and gives none of
  the three kinds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

from config.models import parse_duration
from connectors.base import Cursor, Page
from connectors.http import HttpError
from connectors.records import (
    AddressFields,
    Record,
    RecordKind,
    Rejected,
    SourceCustomer,
    SourceReferral,
    SourceTransaction,
    TransactionKind,
)
from connectors.referrals import OrderEvidence, ReferralReader
from connectors.woocommerce.client import WooClient

PAID_STATUSES = frozenset({"completed", "processing", "on-hold", "refunded"})
LANDING_META = "_wc_order_attribution_session_entry"
"""Order meta where WooCommerce's order attribution (8.5+) keeps the landing page."""
GUEST_PREFIX = "guest:"
CLOCK_SKEW = timedelta(minutes=5)
"""How far the shop's clock may run behind ours; passes overlap by this much."""

Item = dict[str, Any]


def _moment(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value not in (None, "") else None


def guest_id(email: str) -> str:
    return GUEST_PREFIX + email.strip().lower()


def _address(address: Mapping[str, Any] | None) -> AddressFields:
    address = address or {}
    return AddressFields(
        address_line1=_text(address.get("address_1")),
        address_line2=_text(address.get("address_2")),
        city=_text(address.get("city")),
        postcode=_text(address.get("postcode")),
        region=_text(address.get("state")),
        country=_text(address.get("country")),
        company=_text(address.get("company")),
    )


def customer_record(item: Item) -> SourceCustomer:
    billing = item.get("billing") or {}
    first, last = _text(item.get("first_name")), _text(item.get("last_name"))
    return SourceCustomer(
        external_id=str(int(item["id"])),
        name=" ".join(part for part in (first, last) if part) or None,
        first_name=first,
        last_name=last,
        email=_text(item.get("email")) or _text(billing.get("email")),
        phone=_text(billing.get("phone")),
        created_at=_moment(item["date_created_gmt"]),
        **_address(billing),
    )


def order_customer(item: Item) -> str | None:
    customer = int(item.get("customer_id") or 0)
    if customer:
        return str(customer)
    email = _text((item.get("billing") or {}).get("email"))
    return guest_id(email) if email else None


def _meta(item: Item) -> dict[str, str]:
    return {
        str(entry["key"]): str(entry["value"])
        for entry in item.get("meta_data") or ()
        if isinstance(entry, dict) and "key" in entry and isinstance(entry.get("value"), str)
    }


def order_records(item: Item, refunds: Sequence[Item]) -> list[SourceTransaction]:
    order_id = str(int(item["id"]))
    if str(item.get("status")) not in PAID_STATUSES:
        tombstone = SourceTransaction(
            order_id, None, _moment(item["date_created_gmt"]), Decimal(0), "USD", deleted=True
        )
        return [tombstone]
    currency = str(item["currency"])
    customer = order_customer(item)
    reference = _text(item.get("number"))
    discount = Decimal(str(item.get("discount_total") or "0"))
    records = [
        SourceTransaction(
            external_id=order_id,
            customer_external_id=customer,
            occurred_at=_moment(item["date_created_gmt"]),
            amount=Decimal(str(item["total"])),
            currency=currency,
            document_kind="order",
            reference=reference,
            memo=_text(item.get("customer_note")),
            discount=discount or None,
            channel=_text(item.get("created_via")),
        )
    ]
    for refund in refunds:
        records.append(
            SourceTransaction(
                external_id=f"refund-{int(refund['id'])}",
                customer_external_id=customer,
                occurred_at=_moment(refund["date_created_gmt"]),
                amount=abs(Decimal(str(refund["amount"]))),
                currency=currency,
                transaction_kind=TransactionKind.REFUND,
                document_kind="refund",
                reference=reference,
                memo=_text(refund.get("reason")),
                refund_of=order_id,
            )
        )
    return records


def guest_record(item: Item) -> SourceCustomer | None:
    billing = item.get("billing") or {}
    email = _text(billing.get("email"))
    if int(item.get("customer_id") or 0) or not email:
        return None
    first, last = _text(billing.get("first_name")), _text(billing.get("last_name"))
    return SourceCustomer(
        external_id=guest_id(email),
        name=" ".join(part for part in (first, last) if part) or None,
        first_name=first,
        last_name=last,
        email=email,
        phone=_text(billing.get("phone")),
        guest=True,
        **_address(billing),
    )


def order_evidence(item: Item) -> OrderEvidence:
    meta = _meta(item)
    return OrderEvidence(
        order_id=str(int(item["id"])),
        created_at=_moment(item["date_created_gmt"]),
        customer_id=order_customer(item),
        discount_codes=[
            str(line["code"]) for line in item.get("coupon_lines") or () if line.get("code")
        ],
        attributes=meta,
        note=_text(item.get("customer_note")),
        landing_page=meta.get(LANDING_META),
    )


class OrderFeed:
    """Pages of orders modified since the cursor (see the module docstring).

    Cursor within a pass: ``since`` (the pass's ``modified_after``, GMT), ``page``, ``high``
    (the latest ``date_modified_gmt`` read) and ``started`` (when the pass began, by our
    clock); between passes only ``since``.
    """

    def __init__(
        self,
        client: WooClient,
        page_size: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.page_size = page_size
        self.clock = clock

    def pages(self, cursor: Cursor) -> Iterator[tuple[list[Item], dict[str, Any], bool]]:
        since = cursor.get("since")
        page = int(cursor.get("page") or 1)
        high = _moment(cursor["high"]) if cursor.get("high") else None
        started = _moment(cursor["started"]) if cursor.get("started") else self.clock()
        while True:
            params: dict[str, Any] = {
                "per_page": self.page_size,
                "page": page,
                "orderby": "id",
                "order": "asc",
                "dates_are_gmt": "true",
            }
            if since:
                params["modified_after"] = since
            listing = self.client.list("orders", params)
            for item in listing.items:
                modified = item.get("date_modified_gmt") or item.get("date_created_gmt")
                if modified:
                    high = max(high, _moment(modified)) if high else _moment(modified)
            if len(listing.items) < self.page_size or (
                listing.total_pages is not None and page >= listing.total_pages
            ):
                yield listing.items, {"since": self._next_since(high, started, since)}, True
                return
            page += 1
            state = {"since": since, "page": page, "started": started.isoformat()}
            yield listing.items, state | {"high": None if high is None else high.isoformat()}, False

    @staticmethod
    def _next_since(high: datetime | None, started: datetime, since: str | None) -> str | None:
        """The next pass's filter: no later than the start of this one, less clock skew.

        An order modified while this pass ran may sit on a page already read; it is newer
        than the pass's start, so the next pass reads it. ``modified_after`` is exclusive,
        hence one second less.
        """
        if high is None:
            return since
        return _stamp(min(high, started - CLOCK_SKEW) - timedelta(seconds=1))


def _rejected(item: Item, error: Exception, what: str) -> Rejected:
    return Rejected(
        f"WooCommerce {what} is missing or has a bad field: {error!r}",
        json.dumps(item, ensure_ascii=False)[:10_000],
        str(item.get("id")) if item.get("id") is not None else None,
        f"WooCommerce {what}",
    )


def map_each(
    items: Sequence[Item], one: Callable[[Item], Sequence[Record]], what: str
) -> tuple[list[Record], list[Rejected]]:
    records: list[Record] = []
    rejected: list[Rejected] = []
    for item in items:
        try:
            records.extend(one(item))
        except (KeyError, TypeError, ValueError, InvalidOperation) as error:
            rejected.append(_rejected(item, error, what))
    return records, rejected


class RefundReader:
    """The dated refunds of a page of orders.

    ``GET refunds?parent=ID,ID,...`` (WooCommerce 9.x) reads those of a whole page in one or
    a few requests; a store without that route (404) is asked order by order
    (``orders/<id>/refunds``) from then on.
    """

    def __init__(self, client: WooClient, page_size: int = 100) -> None:
        self.client = client
        self.page_size = page_size
        self.by_parent_route = True

    def of(self, items: Sequence[Item]) -> dict[int, list[Item]]:
        wanted = [
            int(item["id"])
            for item in items
            if item.get("refunds") and str(item.get("status")) in PAID_STATUSES
        ]
        if not wanted:
            return {}
        if self.by_parent_route:
            try:
                return self._by_parent(wanted)
            except HttpError as error:
                if error.status != HTTPStatus.NOT_FOUND:
                    raise
                self.by_parent_route = False
        return {
            order: self.client.list(f"orders/{order}/refunds", {"per_page": 100}).items
            for order in wanted
        }

    def _by_parent(self, orders: Sequence[int]) -> dict[int, list[Item]]:
        found: dict[int, list[Item]] = {order: [] for order in orders}
        page = 1
        while True:
            listing = self.client.list(
                "refunds",
                {
                    "parent": ",".join(map(str, orders)),
                    "per_page": self.page_size,
                    "page": page,
                },
            )
            for refund in listing.items:
                found.setdefault(int(refund["parent_id"]), []).append(refund)
            if len(listing.items) < self.page_size or (
                listing.total_pages is not None and page >= listing.total_pages
            ):
                return found
            page += 1


def _earlier(new: SourceReferral, old: SourceReferral) -> bool:
    never = datetime.max.replace(tzinfo=UTC)
    return (new.occurred_at or never) < (old.occurred_at or never)


class WooOrders:
    """The order feed, read once a cycle, as transactions, guests and referrals (see above).

    A guest who ordered twice on a page is given once (the later order's details); a
    referred customer's referral is the one of the earliest order on the page.
    """

    name = "orders"
    record_kind = RecordKind.TRANSACTION
    full_refresh = False

    def __init__(
        self, feed: OrderFeed, refunds: RefundReader, referrals: ReferralReader | None
    ) -> None:
        self.feed = feed
        self.refunds = refunds
        self.referrals = referrals
        kinds = {RecordKind.CUSTOMER: "guests", RecordKind.TRANSACTION: "orders"}
        if referrals is not None:
            kinds[RecordKind.REFERRAL] = "referrals"
        self.ledger_streams: Mapping[RecordKind, str] = kinds

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        for items, next_cursor, done in self.feed.pages(cursor):
            records, rejected = self.records(items)
            yield Page(records, next_cursor, rejected, pass_complete=done)

    def records(self, items: Sequence[Item]) -> tuple[list[Record], list[Rejected]]:
        """Every kind of record a page of orders gives, and the orders that cannot be mapped."""
        refunds = self.refunds.of(items)
        transactions: list[Record] = []
        guests: dict[str, SourceCustomer] = {}
        referrals: dict[str, SourceReferral] = {}
        rejected: list[Rejected] = []
        for item in items:
            try:
                sales = order_records(item, refunds.get(int(item["id"]), []))
                guest = guest_record(item)
                referral = self.referrals.referral(order_evidence(item)) if self.referrals else None
            except (KeyError, TypeError, ValueError, InvalidOperation) as error:
                rejected.append(_rejected(item, error, "order"))
                continue
            transactions.extend(sales)
            if guest is not None:
                guests[guest.external_id] = guest
            if referral is not None:
                known = referrals.get(referral.external_id)
                if known is None or _earlier(referral, known):
                    referrals[referral.external_id] = referral
        return [*transactions, *guests.values(), *referrals.values()], rejected


class WooCustomers:
    """All customers, page by page, as a full-refresh pass; rarer with ``customers_every``.

    Cursor: ``page`` and ``pass_id`` within a pass; ``completed_at`` after one.
    """

    name = "customers"
    record_kind = RecordKind.CUSTOMER
    full_refresh = True

    def __init__(
        self,
        client: WooClient,
        page_size: int,
        every: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.page_size = page_size
        self.every = parse_duration(every) if every else None
        self.clock = clock

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        now = self.clock()
        completed = cursor.get("completed_at")
        fresh = completed and self.every is not None and now - _moment(completed) < self.every
        if "page" not in cursor and fresh:
            return
        page = int(cursor.get("page") or 1)
        pass_id = str(cursor.get("pass_id") or now.isoformat())
        while True:
            listing = self.client.list(
                "customers",
                # role=all: the endpoint lists only the "customer" role by default, but a
                # subscriber or a shop manager who buys has orders under their id too.
                {
                    "per_page": self.page_size,
                    "page": page,
                    "orderby": "id",
                    "order": "asc",
                    "role": "all",
                },
            )
            records, rejected = map_each(
                listing.items, lambda item: [customer_record(item)], "customer"
            )
            done = len(listing.items) < self.page_size or (
                listing.total_pages is not None and page >= listing.total_pages
            )
            if done:
                finished = {"completed_at": self.clock().isoformat()}
                yield Page(records, finished, rejected, pass_complete=True, pass_id=pass_id)
                return
            page += 1
            yield Page(records, {"page": page, "pass_id": pass_id}, rejected, pass_id=pass_id)
