"""Shopify streams: customers, guests, orders (with refunds) and referrals.

All four are incremental on ``updated_at`` (customers also check for deletions now and then,
see :class:`ShopifyCustomers`): a pass asks for ``updated_at:>='SINCE'`` sorted
by ``UPDATED_AT`` and follows ``pageInfo.endCursor``; when it ends, the latest ``updatedAt``
seen becomes the next ``SINCE`` (``>=``: the boundary is read again and found unchanged by
the content hash). An order edited or refunded during a pass moves to the end of the sort and
is read again in the same pass.

Guests (orders without a customer) and referrals live on orders, so those streams read the
order feed too, each with its own cursor. The first pass of an order stream can be a bulk
operation: Shopify writes the whole history to a JSONL file, which is read in pages without
spending query cost (:mod:`connectors.shopify.bulk`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import Cursor, Page
from connectors.errors import SourceError
from connectors.records import (
    AddressFields,
    LineItem,
    Record,
    RecordKind,
    Rejected,
    SourceCustomer,
    SourceReferral,
    SourceTransaction,
    TransactionKind,
)
from connectors.referrals import OrderEvidence, ReferralReader
from connectors.shopify.bulk import BulkReader
from connectors.shopify.client import PageSizer, QueryTooCostly, ShopifyClient

ADDRESS = "address1 address2 city zip province countryCodeV2 company"
CUSTOMER_FIELDS = (
    "id firstName lastName displayName defaultEmailAddress { emailAddress } "
    f"defaultPhoneNumber {{ phoneNumber }} defaultAddress {{ {ADDRESS} }} createdAt updatedAt "
    "tags note"
)
MONEY = "shopMoney { amount currencyCode }"
ORDER_FIELDS = (
    "id name createdAt updatedAt email sourceName customer { id } "
    f"totalPriceSet {{ {MONEY} }} totalDiscountsSet {{ {MONEY} }} discountCodes "
    "customAttributes { key value } note customerJourneySummary { firstVisit { landingPage } } "
    f"billingAddress {{ firstName lastName phone {ADDRESS} }} "
    f"refunds {{ id createdAt totalRefundedSet {{ {MONEY} }} }}"
)
LINE_FIELDS = (
    f"id title sku quantity originalTotalSet {{ {MONEY} }} "
    f"discountedTotalSet(withCodeDiscounts: true) {{ {MONEY} }}"
)
"""A line item: its totals before and after the discounts allocated to it, code discounts
included (``withCodeDiscounts``; without it Shopify leaves them out)."""
LINES_PER_ORDER = 5
"""Line items asked for with each order of a page. A nested connection costs its ``first``
times its node (5 points a line) whether or not the order has that many lines, so this is
small; an order with more lines gets the rest from :class:`LineFiller`."""
LINES_PAGE = 50
ORDER_FIELDS_WITH_LINES = (
    f"{ORDER_FIELDS} lineItems(first: {LINES_PER_ORDER}) {{ nodes {{ {LINE_FIELDS} }} "
    "pageInfo { hasNextPage endCursor } }"
)
BULK_ORDER_FIELDS = f"{ORDER_FIELDS} lineItems {{ edges {{ node {{ {LINE_FIELDS} }} }} }}"
"""The bulk export's order: every line item, each a line of its own below the order."""
ORDER_LINES_QUERY = (
    "query OrderLines($id: ID!, $first: Int!, $after: String) { order(id: $id) { "
    f"lineItems(first: $first, after: $after) {{ nodes {{ {LINE_FIELDS} }} "
    "pageInfo { hasNextPage endCursor } } } }"
)
GUEST_FIELDS = (
    f"id updatedAt email customer {{ id }} billingAddress {{ firstName lastName phone {ADDRESS} }}"
)
REFERRAL_FIELDS = (
    "id createdAt updatedAt email customer { id } discountCodes customAttributes { key value } "
    "note customerJourneySummary { firstVisit { landingPage } }"
)
PAGE_INFO = "pageInfo { hasNextPage endCursor }"
CUSTOMERS_QUERY = (
    "query Customers($first: Int!, $after: String, $query: String) { "
    "customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) { "
    f"nodes {{ {CUSTOMER_FIELDS} }} {PAGE_INFO} }} }}"
)
CUSTOMER_IDS_QUERY = (
    "query CustomerIds($first: Int!, $after: String, $query: String) { "
    "customers(first: $first, after: $after, query: $query, sortKey: ID) { "
    f"nodes {{ id }} {PAGE_INFO} }} }}"
)
"""Every customer's id alone: a node costs 1 point instead of 4 (three objects)."""


def orders_query(fields: str) -> str:
    """A page of orders with ``fields``: each order stream selects only what it maps, since
    every object field adds to the query's cost."""
    return (
        "query Orders($first: Int!, $after: String, $query: String) { "
        "orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) { "
        f"nodes {{ {fields} }} {PAGE_INFO} }} }}"
    )


def bulk_orders_query(fields: str) -> str:
    """The whole order history with ``fields``, for bulkOperationRunQuery (edges, no paging)."""
    return f"{{ orders(sortKey: UPDATED_AT) {{ edges {{ node {{ {fields} }} }} }} }}"


BULK_PAGE = 250
BULK_CHILDREN = {"LineItem": "lineItems"}
"""Child lines of the bulk order export, by type, and the connection they belong under."""
GUEST_PREFIX = "guest:"

Node = dict[str, Any]


def legacy_id(gid: str) -> str:
    """``gid://shopify/Order/123`` to ``123``."""
    tail = gid.rsplit("/", 1)[-1]
    if not tail.isdigit():
        raise ValueError(f"{gid!r} is not a Shopify global id")
    return tail


def guest_id(email: str) -> str:
    return GUEST_PREFIX + email.strip().lower()


def _moment(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def _money(money_set: Any) -> tuple[Decimal, str]:
    shop_money = money_set["shopMoney"]
    return Decimal(str(shop_money["amount"])), str(shop_money["currencyCode"])


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _address(address: Mapping[str, Any] | None) -> AddressFields:
    address = address or {}
    return AddressFields(
        address_line1=_text(address.get("address1")),
        address_line2=_text(address.get("address2")),
        city=_text(address.get("city")),
        postcode=_text(address.get("zip")),
        region=_text(address.get("province")),
        country=_text(address.get("countryCodeV2")),
        company=_text(address.get("company")),
    )


def customer_record(node: Node) -> SourceCustomer:
    email = (node.get("defaultEmailAddress") or {}).get("emailAddress")
    phone = (node.get("defaultPhoneNumber") or {}).get("phoneNumber")
    return SourceCustomer(
        external_id=legacy_id(node["id"]),
        name=_text(node.get("displayName")),
        first_name=_text(node.get("firstName")),
        last_name=_text(node.get("lastName")),
        email=_text(email),
        phone=_text(phone),
        created_at=_moment(node["createdAt"]),
        notes=_text(node.get("note")),
        labels=tuple(str(tag) for tag in node.get("tags") or ()),
        **_address(node.get("defaultAddress")),
    )


def order_customer(node: Node) -> str | None:
    """The order's customer id, a guest's key, or None (no account and no e-mail)."""
    customer = node.get("customer")
    if customer:
        return legacy_id(customer["id"])
    email = _text(node.get("email"))
    return guest_id(email) if email else None


def order_records(node: Node) -> list[SourceTransaction]:
    """The sale and its refunds."""
    order_id = legacy_id(node["id"])
    amount, currency = _money(node["totalPriceSet"])
    discount, _ = _money(node["totalDiscountsSet"]) if node.get("totalDiscountsSet") else (None, "")
    customer = order_customer(node)
    reference = _text(node.get("name"))
    lines = tuple(_line_item(item) for item in (node.get("lineItems") or {}).get("nodes") or ())
    records = [
        SourceTransaction(
            external_id=order_id,
            customer_external_id=customer,
            occurred_at=_moment(node["createdAt"]),
            amount=amount,
            currency=currency,
            document_kind="order",
            reference=reference,
            memo=_text(node.get("note")),
            discount=discount if discount else None,
            channel=_text(node.get("sourceName")),
            lines=lines,
        )
    ]
    for refund in node.get("refunds") or ():
        refunded, refund_currency = _money(refund["totalRefundedSet"])
        records.append(
            SourceTransaction(
                external_id=f"refund-{legacy_id(refund['id'])}",
                customer_external_id=customer,
                occurred_at=_moment(refund["createdAt"]),
                amount=refunded,
                currency=refund_currency,
                transaction_kind=TransactionKind.REFUND,
                document_kind="refund",
                reference=reference,
                refund_of=order_id,
            )
        )
    return records


def _line_item(item: Node) -> LineItem:
    discounted = item.get("discountedTotalSet")
    return LineItem(
        quantity=int(item["quantity"]),
        total=_money(item["originalTotalSet"])[0],
        discounted_total=_money(discounted)[0] if discounted else None,
        title=_text(item.get("title")),
        sku=_text(item.get("sku")),
    )


def guest_record(node: Node) -> SourceCustomer | None:
    """The guest who placed an order without an account, from its billing details."""
    if node.get("customer") or not _text(node.get("email")):
        return None
    billing = node.get("billingAddress") or {}
    first, last = _text(billing.get("firstName")), _text(billing.get("lastName"))
    name = " ".join(part for part in (first, last) if part) or None
    return SourceCustomer(
        external_id=guest_id(str(node["email"])),
        name=name,
        first_name=first,
        last_name=last,
        email=str(node["email"]).strip(),
        phone=_text(billing.get("phone")),
        guest=True,
        **_address(billing),
    )


def order_evidence(node: Node) -> OrderEvidence:
    journey = node.get("customerJourneySummary") or {}
    landing = (journey.get("firstVisit") or {}).get("landingPage")
    return OrderEvidence(
        order_id=legacy_id(node["id"]),
        created_at=_moment(node["createdAt"]),
        customer_id=order_customer(node),
        discount_codes=[str(code) for code in node.get("discountCodes") or ()],
        attributes={
            str(item["key"]): str(item["value"])
            for item in node.get("customAttributes") or ()
            if item.get("value") is not None
        },
        note=_text(node.get("note")),
        landing_page=_text(landing),
    )


def _updated(node: Node) -> str | None:
    value = node.get("updatedAt")
    return str(value) if value else None


def _later(first: str | None, second: str | None) -> str | None:
    if first is None or second is None:
        return first or second
    return max(first, second, key=_moment)


class Feed:
    """Pages of one connection (``customers`` or ``orders``), incremental on updated_at.

    Cursor: ``since`` (the pass's filter), ``after`` (Shopify's cursor within the pass) and
    ``high`` (the latest ``updatedAt`` seen in the pass); between passes only ``since``. An
    order feed with ``bulk`` starts from an empty cursor with a bulk operation instead.
    """

    def __init__(
        self,
        client: ShopifyClient,
        root: str,
        document: str,
        sizer: PageSizer,
        bulk: tuple[BulkReader, str] | None = None,
        fill: Callable[[list[Node]], None] | None = None,
    ) -> None:
        self.client = client
        self.root = root
        self.document = document
        self.sizer = sizer
        self.bulk = bulk
        """The reader and the bulk query of the first pass, if it is a bulk operation."""
        self.fill = fill
        """Completes a page's nodes where a nested connection had more than one page."""

    def pages(self, cursor: Cursor) -> Iterator[tuple[list[Node], dict[str, Any], bool]]:
        if self.bulk is not None and (not cursor or "bulk_url" in cursor):
            yield from self._bulk_pages(cursor)
            return
        since = cursor.get("since")
        after = cursor.get("after")
        high = cursor.get("high") or since
        while True:
            first = self.sizer.first
            variables = {
                "first": first,
                "after": after,
                "query": f"updated_at:>='{since}'" if since else None,
            }
            try:
                answer = self.client.query(self.document, variables, self.sizer.estimate())
            except QueryTooCostly as too_costly:
                if first == 1:
                    message = f"{too_costly}: even one {self.root} node is too costly"
                    raise SourceError(message) from None
                self.sizer.learn(first, too_costly.requested)
                continue
            self.sizer.learn(first, answer.requested_cost)
            nodes, more, end = self._connection(answer.data)
            if self.fill is not None:
                self.fill(nodes)
            for node in nodes:
                high = _later(high, _updated(node))
            if more:
                if not end or end == after:
                    raise SourceError(
                        f"{self.client.source.name}: Shopify returned the same {self.root} "
                        "page cursor twice; stopping instead of paging forever"
                    )
                after = end
                yield nodes, {"since": since, "after": after, "high": high}, False
            else:
                yield nodes, {"since": high}, True
                return

    def _connection(self, data: Mapping[str, Any]) -> tuple[list[Node], bool, str | None]:
        connection = data.get(self.root)
        try:
            nodes = [node for node in connection["nodes"] if isinstance(node, dict)]  # type: ignore[index]
            info = connection["pageInfo"]  # type: ignore[index]
            return nodes, bool(info["hasNextPage"]), info.get("endCursor")
        except (KeyError, TypeError) as error:
            raise SourceError(
                f"{self.client.source.name}: Shopify's {self.root} answer has no "
                f"nodes/pageInfo ({error!r})"
            ) from None

    def _bulk_pages(self, cursor: Cursor) -> Iterator[tuple[list[Node], dict[str, Any], bool]]:
        assert self.bulk is not None
        reader, query = self.bulk
        if "bulk_url" in cursor:
            url, count = str(cursor["bulk_url"]), int(cursor["bulk_count"])
        else:
            url, count = reader.run(query)
        high = cursor.get("high")
        batch: list[Node] = []
        start = int(cursor.get("line") or 0)
        for node, line in reader.nodes(url, count, start, BULK_CHILDREN):
            high = _later(high, _updated(node))
            batch.append(node)
            if len(batch) == BULK_PAGE:
                position = {"bulk_url": url, "bulk_count": count, "line": line, "high": high}
                yield batch, position, False
                batch = []
        yield batch, {"since": high}, True


class LineFiller:
    """Reads the line items a page of orders left out: those past :data:`LINES_PER_ORDER`."""

    def __init__(self, client: ShopifyClient) -> None:
        self.client = client
        self.sizer = PageSizer(LINES_PAGE)

    def __call__(self, nodes: list[Node]) -> None:
        for node in nodes:
            lines = node.get("lineItems")
            if isinstance(lines, dict):
                self._rest(node, lines)

    def _rest(self, node: Node, lines: dict[str, Any]) -> None:
        info = lines.get("pageInfo") or {}
        while info.get("hasNextPage"):
            after = info.get("endCursor")
            first = self.sizer.first
            answer = self.client.query(
                ORDER_LINES_QUERY,
                {"id": node["id"], "first": first, "after": after},
                self.sizer.estimate(),
            )
            # The order object adds 1 point to a connection's 2; learning it as part of the
            # node cost keeps the estimate exact (first * 1/first).
            self.sizer.learn(first, answer.requested_cost)
            order = answer.data.get("order")
            if not isinstance(order, dict):
                return  # gone since the page was read; the next pass sees what became of it
            more = order.get("lineItems") or {}
            lines.setdefault("nodes", []).extend(more.get("nodes") or ())
            info = more.get("pageInfo") or {}
            if info.get("hasNextPage") and info.get("endCursor") in (None, after):
                raise SourceError(
                    f"{self.client.source.name}: Shopify returned the same line item cursor "
                    f"twice for {node['id']}; stopping instead of paging forever"
                )
        lines["pageInfo"] = info


Mapper = Callable[[list[Node]], tuple[list[Record], list[Rejected]]]


def _map_each(
    nodes: Sequence[Node], one: Callable[[Node], Sequence[Record]], what: str
) -> tuple[list[Record], list[Rejected]]:
    records: list[Record] = []
    rejected: list[Rejected] = []
    for node in nodes:
        try:
            records.extend(one(node))
        except (KeyError, TypeError, ValueError, InvalidOperation) as error:
            rejected.append(
                Rejected(
                    f"Shopify {what} is missing or has a bad field: {error!r}",
                    json.dumps(node, ensure_ascii=False)[:10_000],
                    str(node.get("id")) if node.get("id") else None,
                    f"Shopify {what}",
                )
            )
    return records, rejected


def _guests(nodes: Sequence[Node]) -> tuple[list[Record], list[Rejected]]:
    """One record per guest in the page: the one from their latest order."""
    by_id: dict[str, Record] = {}
    records, rejected = _map_each(
        nodes, lambda node: [g] if (g := guest_record(node)) else [], "order"
    )
    for record in records:
        by_id[record.external_id] = record
    return list(by_id.values()), rejected


class ShopifyStream:
    """One stream over a :class:`Feed`, mapping each page's nodes to records."""

    full_refresh = False

    def __init__(
        self,
        name: str,
        kind: RecordKind,
        feed: Feed,
        mapper: Mapper,
        before: Callable[[], None],
    ) -> None:
        self.name = name
        self.record_kind = kind
        self.feed = feed
        self.mapper = mapper
        self.before = before

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        self.before()
        for nodes, next_cursor, done in self.feed.pages(cursor):
            records, rejected = self.mapper(nodes)
            yield Page(records, next_cursor, rejected, pass_complete=done)


class ShopifyCustomers(ShopifyStream):
    """Customers, incremental on updated_at, plus a pass over every id to find deletions.

    Shopify keeps no trace of a deleted customer: ``deletionEvents`` covers products and
    collections only, and the ``customers/delete`` webhook may be lost. So the first pass,
    which reads every customer, is a complete pass (``Page.full_pass``), and every ``every``
    after it, or at once when that webhook came (``requested``), an incremental pass is
    followed by a pass over all customer ids (``Page.seen``); ingest then flags deleted the
    customers neither pass saw.

    Cursor: the feed's (``since``, ``after``, ``high``), ``checked_at`` (when the last complete
    pass started) and, during a complete pass, ``pass_id`` (its start); during an id pass,
    ``ids`` holds that pass's own feed cursor.
    """

    def __init__(
        self,
        feed: Feed,
        ids: Feed,
        every: timedelta,
        before: Callable[[], None],
        requested: threading.Event | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__("customers", RecordKind.CUSTOMER, feed, customers_mapper, before)
        self.ids = ids
        self.every = every
        self.requested = requested or threading.Event()
        """Set when a ``customers/delete`` webhook came: check at the end of this pass."""
        self.clock = clock

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        self.before()
        checked = cursor.get("checked_at")
        if "ids" in cursor:
            yield from self._id_pass(cursor)
            return
        complete = not cursor.get("since")
        pass_id = str(cursor.get("pass_id") or self.clock().isoformat()) if complete else ""
        feed_cursor = {key: cursor[key] for key in ("since", "after", "high") if key in cursor}
        for nodes, following, done in self.feed.pages(feed_cursor):
            records, rejected = self.mapper(nodes)
            after: dict[str, Any] = dict(following)
            if complete:
                after |= {"checked_at": pass_id} if done else {"pass_id": pass_id}
            elif checked:
                after["checked_at"] = checked
            due = not checked or self.clock() - _moment(checked) >= self.every
            if done and not complete and (due or self.requested.is_set()):
                self.requested.clear()
                after |= {"ids": {}, "pass_id": self.clock().isoformat()}
            yield Page(
                records,
                after,
                rejected,
                pass_complete=done,
                pass_id=pass_id,
                full_pass=complete,
            )
            if "ids" in after:
                yield from self._id_pass(after)

    def _id_pass(self, cursor: Cursor) -> Iterator[Page]:
        pass_id = str(cursor["pass_id"])
        since = {"since": cursor.get("since")}
        for nodes, following, done in self.ids.pages(cursor["ids"]):
            seen = [legacy_id(str(node["id"])) for node in nodes if _is_gid(node.get("id"))]
            after = since | (
                {"checked_at": pass_id} if done else {"ids": following, "pass_id": pass_id}
            )
            yield Page((), after, pass_complete=done, pass_id=pass_id, full_pass=True, seen=seen)


def _is_gid(value: Any) -> bool:
    return isinstance(value, str) and value.rsplit("/", 1)[-1].isdigit()


def customers_mapper(nodes: list[Node]) -> tuple[list[Record], list[Rejected]]:
    return _map_each(nodes, lambda node: [customer_record(node)], "customer")


def orders_mapper(nodes: list[Node]) -> tuple[list[Record], list[Rejected]]:
    return _map_each(nodes, order_records, "order")


def guests_mapper(nodes: list[Node]) -> tuple[list[Record], list[Rejected]]:
    return _guests(nodes)


def _earlier(one: SourceReferral, other: SourceReferral) -> bool:
    return (
        one.occurred_at is not None
        and other.occurred_at is not None
        and one.occurred_at < other.occurred_at
    )


def referrals_mapper(reader: ReferralReader) -> Mapper:
    def mapper(nodes: list[Node]) -> tuple[list[Record], list[Rejected]]:
        found: dict[str, SourceReferral] = {}
        records, rejected = _map_each(
            nodes, lambda node: [r] if (r := reader.referral(order_evidence(node))) else [], "order"
        )
        for record in records:
            assert isinstance(record, SourceReferral)
            known = found.get(record.external_id)
            if known is None or _earlier(record, known):
                found[record.external_id] = record
        return list(found.values()), rejected

    return mapper
