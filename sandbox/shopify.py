"""A Shopify GraphQL Admin API stand-in serving :class:`sandbox.shop.ShopBusiness`.

It answers the operations the connector sends (recognized by their root field, since the
stand-in parses no GraphQL): ``currentAppInstallation { accessScopes }``, the ``customers``
and ``orders`` connections (``first`` at most 250, ``after`` cursors, ``sortKey:
UPDATED_AT`` — a ``sortKey: ID`` pass is served in that order too —, a ``query`` filter on
``updated_at``), ``bulkOperationRunQuery`` with
``currentBulkOperation`` and a JSONL result file, ``metafieldsSet`` (at most 25),
``metafieldsDelete``, ``metafieldDefinitions`` and ``metafieldDefinitionCreate``. Nodes carry
every field the connector may select (whatever it selects; the cost counts what it
selected), in the API's shapes (``gid://shopify/...`` ids, money as
``{shopMoney: {amount, currencyCode}}``).

Rate limiting is Shopify's calculated query cost: a leaky bucket of ``maximum_available``
points refilled at ``restore_rate`` a second; a query whose requested cost exceeds what is
available is refused with a ``THROTTLED`` error (counted in :attr:`ShopifyStandIn.throttled`),
one over 1,000 points with ``MAX_COST_EXCEEDED``. Every answer carries
``extensions.cost``. Without the ``read_all_orders`` scope only the last 60 days of orders
are visible; without protected-customer-data access, customer fields are refused.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.http import Faults, Request, Response, SandboxServer
from sandbox.shop import ShopBusiness, ShopCustomer, ShopOrder

MAX_PAGE = 250
MAX_QUERY_COST = 1000
MAX_METAFIELDS_PER_CALL = 25
ALL_SCOPES = ("read_customers", "write_customers", "read_orders", "read_all_orders")
RECENT_ORDERS = timedelta(days=60)


def node_cost(document: str, variables: dict[str, Any] | None = None) -> int:
    """Points one node of the query's first connection costs.

    Shopify charges 1 per object, 0 per scalar, and a connection 2 plus ``first`` times its
    node, nested ones included; so a page costs 2 plus ``first`` times this
    (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits).
    """
    start = document.find("nodes {")
    if start < 0:
        return 1
    cost, _ = _selection_cost(document, start + len("nodes {"), variables or {})
    return 1 + cost


_NAME = re.compile(r"[A-Za-z_]\w*")
_FIRST = re.compile(r"first:\s*(\$?\w+)")


def _selection_cost(document: str, index: int, variables: dict[str, Any]) -> tuple[int, int]:
    """The cost of the selection set opening just before ``index``, and the index after it."""
    cost = 0
    while index < len(document):
        char = document[index]
        if char == "}":
            return cost, index + 1
        name = _NAME.match(document, index)
        if name is None:
            index += 1
            continue
        index = name.end()
        arguments = ""
        while index < len(document) and document[index] == " ":
            index += 1
        if index < len(document) and document[index] == "(":
            close = document.index(")", index)
            arguments, index = document[index : close + 1], close + 1
        while index < len(document) and document[index] == " ":
            index += 1
        if index < len(document) and document[index] == "{":
            inner_start = index + 1
            inner, index = _selection_cost(document, inner_start, variables)
            first = _FIRST.search(arguments)
            if first is None:
                cost += 1 + inner
                continue
            value = first.group(1)
            count = int(variables.get(value[1:], 0)) if value.startswith("$") else int(value)
            nodes = document.find("nodes {", inner_start, index)
            node = 0
            if nodes >= 0:
                node = _selection_cost(document, nodes + len("nodes {"), variables)[0]
            cost += 2 + count * (1 + node)
    return cost, index


MUTATION_COST = 10
_FILTER = re.compile(r"updated_at:>=?'?([0-9T:.+Z-]+)'?")
Key = tuple[datetime, int]
_ROOT = re.compile(r"\b(customers|orders)\s*\(")
_ORDER = re.compile(r"\border\s*\(\s*id:")
_LINES_FIRST = re.compile(r"lineItems\s*\(\s*first:\s*(\d+)")


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"shopMoney": {"amount": str(amount), "currencyCode": currency}}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _position(updated_at: datetime, number: int) -> str:
    raw = f"{updated_at.isoformat()}|{number}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _unposition(cursor: str) -> tuple[datetime, int]:
    stamp, number = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    return datetime.fromisoformat(stamp), int(number)


@dataclass(slots=True)
class _Bucket:
    maximum: float
    restore_rate: float
    clock: Callable[[], float]
    available: float = 0.0
    at: float = 0.0

    def __post_init__(self) -> None:
        self.available, self.at = self.maximum, self.clock()

    def refill(self) -> float:
        now = self.clock()
        self.available = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
        self.at = now
        return self.available

    def status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": round(self.refill(), 1),
            "restoreRate": self.restore_rate,
        }


@dataclass(slots=True)
class _BulkOperation:
    id: int
    lines: list[str]
    polls_left: int
    status: str = "RUNNING"


@dataclass(slots=True)
class ShopifyStandIn:
    """The shop's state and the GraphQL answers; :meth:`server` puts it on HTTP."""

    shop: ShopBusiness
    token: str = "shpat_sandbox"  # noqa: S105 (the stand-in's own test token)
    scopes: tuple[str, ...] = ALL_SCOPES
    protected_customer_data: bool = True
    maximum_available: float = 2000.0
    restore_rate: float = 100.0
    bulk_polls: int = 2
    """``currentBulkOperation`` answers RUNNING this many times before COMPLETED."""
    clock: Callable[[], float] = time.monotonic
    throttled: int = 0
    over_cost: int = 0
    points: int = 0
    """Query cost actually charged, in all."""
    queries: dict[str, int] = field(default_factory=dict)
    definitions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    definitions_created: int = 0
    metafield_calls: int = 0
    url: str = ""
    _bucket: _Bucket | None = None
    _index: tuple[Any, list[ShopCustomer | ShopOrder], list[Key]] | None = None
    _bulk: dict[int, _BulkOperation] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def server(self, faults: Faults | None = None) -> SandboxServer:
        server = SandboxServer(faults=faults, no_delay=True)
        self.url = server.url
        server.route("POST", r"/admin/api/(?P<version>\d{4}-\d{2})/graphql\.json")(self.graphql)
        server.route("GET", r"/bulk/(?P<operation>\d+)\.jsonl")(self.bulk_file)
        return server

    def delete_customer(self, customer_id: int) -> None:
        """``customerDelete``: like Shopify, it refuses a customer who has placed an order."""
        if any(order.customer_id == customer_id for order in self.shop.orders.values()):
            raise ValueError("Customer can't be deleted because they have associated orders")
        del self.shop.customers[customer_id]

    @property
    def bucket(self) -> _Bucket:
        if self._bucket is None:
            self._bucket = _Bucket(self.maximum_available, self.restore_rate, self.clock)
        return self._bucket

    # -- HTTP ---------------------------------------------------------------------------------

    def graphql(self, request: Request) -> Response:
        if request.header("X-Shopify-Access-Token") != self.token:
            return Response.json(
                {
                    "errors": "[API] Invalid API key or access token (unrecognized login or wrong "
                    "password)"
                },
                401,
            )
        body = request.json() or {}
        document = str(body.get("query", ""))
        variables = body.get("variables") or {}
        with self._lock:
            return self._answer(document, variables)

    def bulk_file(self, request: Request) -> Response:
        operation = self._bulk.get(int(request.params["operation"]))
        if operation is None or operation.status != "COMPLETED":
            return Response.text("not found", 404)
        text = "".join(line + "\n" for line in operation.lines)
        return Response(200, text.encode(), {"Content-Type": "application/jsonl"})

    # -- dispatch -----------------------------------------------------------------------------

    def _answer(self, document: str, variables: dict[str, Any]) -> Response:
        name, requested, data_of = self._operation(document, variables)
        self.queries[name] = self.queries.get(name, 0) + 1
        bucket = self.bucket
        if requested > MAX_QUERY_COST:
            self.over_cost += 1
            return self._errors(
                f"Query cost is {requested}, which exceeds the single query max cost limit "
                f"({MAX_QUERY_COST}).",
                "MAX_COST_EXCEEDED",
                requested,
            )
        if requested > bucket.refill():
            self.throttled += 1
            return self._errors("Throttled", "THROTTLED", requested)
        bucket.available -= requested
        try:
            data, actual = data_of()
        except _AccessDenied as denied:
            bucket.available += requested
            return self._errors(str(denied), "ACCESS_DENIED", requested)
        bucket.available += requested - actual
        self.points += actual
        cost = {"requestedQueryCost": requested, "actualQueryCost": actual}
        return Response.json(
            {"data": data, "extensions": {"cost": cost | {"throttleStatus": bucket.status()}}}
        )

    def _errors(self, message: str, code: str, requested: int) -> Response:
        cost = {
            "requestedQueryCost": requested,
            "actualQueryCost": None,
            "throttleStatus": self.bucket.status(),
        }
        return Response.json(
            {
                "errors": [{"message": message, "extensions": {"code": code}}],
                "extensions": {"cost": cost},
            }
        )

    def _operation(
        self, document: str, variables: dict[str, Any]
    ) -> tuple[str, int, Callable[[], tuple[dict[str, Any], int]]]:
        if "bulkOperationRunQuery" in document:
            return "bulkOperationRunQuery", MUTATION_COST, lambda: self._run_bulk(variables)
        if "currentBulkOperation" in document:
            return "currentBulkOperation", 1, self._current_bulk
        if "currentAppInstallation" in document:
            return "currentAppInstallation", 2, self._installation
        if "metafieldsSet" in document:
            return "metafieldsSet", MUTATION_COST, lambda: self._metafields_set(variables)
        if "metafieldsDelete" in document:
            return "metafieldsDelete", MUTATION_COST, lambda: self._metafields_delete(variables)
        if "metafieldDefinitionCreate" in document:
            return (
                "metafieldDefinitionCreate",
                MUTATION_COST,
                lambda: self._definition_create(variables),
            )
        if "metafieldDefinitions" in document:
            return "metafieldDefinitions", 3, self._definition_list
        if _ORDER.search(document):
            first = int(variables.get("first") or 0)
            requested = 3 + first * node_cost(document, variables)
            return "order", requested, lambda: self._order_lines(document, variables)
        root = _ROOT.search(document)
        if root is None:
            raise ValueError(f"the stand-in does not know this operation: {document[:200]!r}")
        connection = root.group(1)
        first = int(variables.get("first") or 0)
        if not 1 <= first <= MAX_PAGE:
            raise ValueError(f"first must be 1 to {MAX_PAGE}, not {first}")
        cost = node_cost(document, variables)
        requested = 2 + first * cost
        return connection, requested, lambda: self._connection(document, variables, cost)

    # -- queries ------------------------------------------------------------------------------

    def _installation(self) -> tuple[dict[str, Any], int]:
        scopes = [{"handle": scope} for scope in self.scopes]
        return {"currentAppInstallation": {"accessScopes": scopes}}, 2

    def _visible_orders(self) -> Iterable[ShopOrder]:
        if "read_orders" not in self.scopes:
            raise _AccessDenied(
                "Access denied for orders field. Required access: `read_orders` access scope."
            )
        orders: Iterable[ShopOrder] = self.shop.orders.values()
        if "read_all_orders" not in self.scopes:
            since = self.shop.clock - RECENT_ORDERS
            orders = [order for order in orders if order.created_at >= since]
        return orders

    def _visible_customers(self) -> Iterable[ShopCustomer]:
        if "read_customers" not in self.scopes:
            raise _AccessDenied(
                "Access denied for customers field. Required access: `read_customers` access scope."
            )
        if not self.protected_customer_data:
            raise _AccessDenied(
                "This app is not approved to access the Customer object. See "
                "https://shopify.dev/docs/apps/launch/protected-customer-data for more details."
            )
        return self.shop.customers.values()

    def _sorted(self, connection: str) -> tuple[list[ShopCustomer | ShopOrder], list[Key]]:
        """The visible items by (updated_at, id), kept until the shop changes."""
        version = (connection, len(self.shop.customers), len(self.shop.orders), self.shop.clock)
        if self._index is None or self._index[0] != version:
            items: list[ShopCustomer | ShopOrder] = list(
                self._visible_customers() if connection == "customers" else self._visible_orders()
            )
            items.sort(key=lambda item: (item.updated_at, item.id))
            self._index = (version, items, [(item.updated_at, item.id) for item in items])
        return self._index[1], self._index[2]

    def _order_lines(self, document: str, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """``order(id:) { lineItems(first:, after:) }``: the lines a page of orders left out."""
        prefix = "gid://shopify/Order/"
        number = str(variables.get("id", "")).removeprefix(prefix)
        order = self.shop.orders.get(int(number)) if number.isdigit() else None
        if order is None:
            return {"order": None}, 1
        lines = order_lines(order, self.shop.currency)
        after = variables.get("after")
        start = int(_unposition(after)[1]) + 1 if after else 0
        first = int(variables.get("first") or 0)
        page = _line_page(lines, start, first)
        return {"order": {"lineItems": page}}, 3 + len(page["nodes"]) * node_cost(
            document, variables
        )

    def _connection(
        self, document: str, variables: dict[str, Any], cost: int
    ) -> tuple[dict[str, Any], int]:
        root = _ROOT.search(document)
        assert root is not None
        connection = root.group(1)
        items, keys = self._sorted(connection)
        start = 0
        match = _FILTER.search(str(variables.get("query") or ""))
        if match:
            since = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
            start = bisect.bisect_left(keys, (since, -1))
        after = variables.get("after")
        if after:
            start = max(start, bisect.bisect_right(keys, _unposition(after)))
        first = int(variables["first"])
        page, more = items[start : start + first], len(items) > start + first
        nodes = [self._node(item) for item in page]
        lines_first = _LINES_FIRST.search(document)
        for node in nodes:
            lines = node.pop("lineItems", None)
            if lines is not None and lines_first is not None:
                node["lineItems"] = _line_page(lines, 0, int(lines_first.group(1)))
        end = _position(page[-1].updated_at, page[-1].id) if page else None
        data = {
            connection: {
                "nodes": nodes,
                "pageInfo": {"hasNextPage": more, "endCursor": end},
            }
        }
        return data, 2 + len(page) * cost

    def _node(self, item: ShopCustomer | ShopOrder) -> dict[str, Any]:
        if isinstance(item, ShopCustomer):
            return customer_node(item)
        return order_node(item, self.shop.currency)

    # -- bulk ---------------------------------------------------------------------------------

    def _run_bulk(self, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
        inner = str(variables.get("query") or "")
        running = [op for op in self._bulk.values() if op.status == "RUNNING"]
        if running:
            error = {
                "field": ["query"],
                "message": "A bulk query operation for this app and shop is already in progress",
            }
            return {"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [error]}}, 10
        root = _ROOT.search(inner)
        if root is None or root.group(1) != "orders":
            raise ValueError("the stand-in runs bulk queries over orders only")
        orders = list(self._visible_orders())
        match = _FILTER.search(inner)
        if match:
            since = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
            orders = [order for order in orders if order.updated_at >= since]
        orders.sort(key=lambda order: (order.updated_at, order.id))
        number = len(self._bulk) + 1
        lines: list[str] = []
        for order in orders:
            node = order_node(order, self.shop.currency)
            children = node.pop("lineItems")
            lines.append(json.dumps(node))
            if "lineItems" in inner:  # groupObjects: each child right below its parent
                lines.extend(json.dumps(line | {"__parentId": node["id"]}) for line in children)
        self._bulk[number] = _BulkOperation(number, lines, self.bulk_polls)
        operation = {"id": gid("BulkOperation", number), "status": "CREATED"}
        return {"bulkOperationRunQuery": {"bulkOperation": operation, "userErrors": []}}, 10

    def _current_bulk(self) -> tuple[dict[str, Any], int]:
        if not self._bulk:
            return {"currentBulkOperation": None}, 1
        operation = self._bulk[max(self._bulk)]
        if operation.status == "RUNNING":
            if operation.polls_left <= 0:
                operation.status = "COMPLETED"
            operation.polls_left -= 1
        done = operation.status == "COMPLETED"
        answer = {
            "id": gid("BulkOperation", operation.id),
            "status": operation.status,
            "errorCode": None,
            "objectCount": str(len(operation.lines)),
            "url": f"{self.url}/bulk/{operation.id}.jsonl" if done else None,
        }
        return {"currentBulkOperation": answer}, 1

    # -- metafields ---------------------------------------------------------------------------

    def _customer_of(self, owner: str) -> ShopCustomer | None:
        prefix = "gid://shopify/Customer/"
        if not owner.startswith(prefix) or not owner[len(prefix) :].isdigit():
            return None
        return self.shop.customers.get(int(owner[len(prefix) :]))

    def _metafields_set(self, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
        inputs = variables.get("metafields") or []
        if len(inputs) > MAX_METAFIELDS_PER_CALL:
            error = {
                "field": ["metafields"],
                "message": f"Exceeded the maximum metafields input limit of "
                f"{MAX_METAFIELDS_PER_CALL}.",
                "code": "LESS_THAN_OR_EQUAL_TO",
            }
            return {"metafieldsSet": {"metafields": [], "userErrors": [error]}}, 10
        self.metafield_calls += 1
        errors: list[dict[str, Any]] = []
        written: list[dict[str, Any]] = []
        valid: list[tuple[ShopCustomer, dict[str, Any]]] = []
        for index, item in enumerate(inputs):
            customer = self._customer_of(str(item.get("ownerId")))
            problem = None
            if customer is None:
                problem = ("INVALID_VALUE", "Owner does not exist.")
            elif not str(item.get("value", "")):
                problem = ("BLANK", "Value can't be blank.")
            else:
                problem = _type_problem(str(item.get("type")), str(item["value"]))
            if problem is not None:
                errors.append(
                    {
                        "field": ["metafields", str(index), "value"],
                        "message": problem[1],
                        "code": problem[0],
                    }
                )
            elif customer is not None:
                valid.append((customer, item))
        if errors:  # metafieldsSet is atomic: one bad input and nothing is written
            return {"metafieldsSet": {"metafields": [], "userErrors": errors}}, 10
        for customer, item in valid:
            key = (str(item["namespace"]), str(item["key"]))
            customer.metafields[key] = (str(item["type"]), str(item["value"]))
            written.append({"namespace": key[0], "key": key[1], "value": str(item["value"])})
        return {"metafieldsSet": {"metafields": written, "userErrors": []}}, 10

    def _metafields_delete(self, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
        self.metafield_calls += 1
        deleted: list[dict[str, Any] | None] = []
        for item in variables.get("metafields") or []:
            customer = self._customer_of(str(item.get("ownerId")))
            key = (str(item.get("namespace")), str(item.get("key")))
            if customer is not None and customer.metafields.pop(key, None) is not None:
                deleted.append({"ownerId": item["ownerId"], "namespace": key[0], "key": key[1]})
            else:
                deleted.append(None)
        return {"metafieldsDelete": {"deletedMetafields": deleted, "userErrors": []}}, 10

    def _definition_list(self) -> tuple[dict[str, Any], int]:
        nodes = [
            {"namespace": namespace, "key": key, "type": {"name": definition["type"]}}
            for (namespace, key), definition in self.definitions.items()
        ]
        return {"metafieldDefinitions": {"nodes": nodes}}, 3

    def _definition_create(self, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
        definition = variables.get("definition") or {}
        key = (str(definition.get("namespace")), str(definition.get("key")))
        if definition.get("ownerType") != "CUSTOMER":
            raise ValueError("the stand-in keeps customer metafield definitions only")
        if key in self.definitions:
            error = {
                "field": ["definition", "key"],
                "message": "Key is in use for Customer metafields on the 'namespace' namespace.",
                "code": "TAKEN",
            }
            return {
                "metafieldDefinitionCreate": {"createdDefinition": None, "userErrors": [error]}
            }, 10
        self.definitions[key] = dict(definition)
        self.definitions_created += 1
        created = {
            "id": gid("MetafieldDefinition", len(self.definitions)),
            "name": definition.get("name"),
        }
        return {"metafieldDefinitionCreate": {"createdDefinition": created, "userErrors": []}}, 10


class _AccessDenied(Exception):
    pass


def _type_problem(kind: str, value: str) -> tuple[str, str] | None:
    try:
        if kind == "number_decimal":
            Decimal(value)
        elif kind == "number_integer":
            int(value)
        elif kind == "date":
            datetime.strptime(value, "%Y-%m-%d")
    except (ValueError, InvalidOperation):
        return "INVALID_VALUE", f"Value must be a valid {kind}."
    return None


def _address(address: Any, company: str | None) -> dict[str, Any]:
    return {
        "address1": address.line1,
        "address2": address.line2,
        "city": address.city,
        "zip": address.postcode,
        "province": address.region,
        "countryCodeV2": address.country,
        "company": company,
    }


def customer_node(customer: ShopCustomer) -> dict[str, Any]:
    return {
        "id": gid("Customer", customer.id),
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "displayName": f"{customer.first_name} {customer.last_name}",
        "defaultEmailAddress": (
            {"emailAddress": customer.email} if customer.email is not None else None
        ),
        "defaultPhoneNumber": (
            {"phoneNumber": customer.phone} if customer.phone is not None else None
        ),
        "defaultAddress": _address(customer.address, customer.company),
        "createdAt": _stamp(customer.created_at),
        "updatedAt": _stamp(customer.updated_at),
        "tags": [],
        "note": None,
    }


def _line_page(lines: list[dict[str, Any]], start: int, first: int) -> dict[str, Any]:
    page = lines[start : start + first]
    end = start + len(page) - 1
    return {
        "nodes": page,
        "pageInfo": {
            "hasNextPage": len(lines) > start + first,
            "endCursor": _position(datetime.min, end) if page else None,
        },
    }


def order_lines(order: ShopOrder, currency: str) -> list[dict[str, Any]]:
    """The order's line items: its amount before discounts split over one to three lines
    (seven for every 25th order, more than one page holds), the discount allocated to them
    in proportion. Lines before discounts add up to the total plus the discount.
    """
    count = 7 if order.id % 25 == 0 else 1 + order.id % 3
    gross = int((order.total + order.discount) * 100)
    discount = int(order.discount * 100)
    base, extra = divmod(gross, count)
    originals = [base + (1 if index < extra else 0) for index in range(count)]
    shares = [discount * amount // gross if gross else 0 for amount in originals]
    for index in range(discount - sum(shares)):
        shares[index % count] += 1
    lines = []
    for index, (original, share) in enumerate(zip(originals, shares, strict=True)):
        product = (order.id * 7 + index) % 50
        lines.append(
            {
                "id": gid("LineItem", order.id * 100 + index),
                "title": f"Product {product}",
                "sku": f"SKU-{product:04d}",
                "quantity": 1 + (order.id + index) % 3,
                "originalTotalSet": _money(Decimal(original) / 100, currency),
                "discountedTotalSet": _money(Decimal(original - share) / 100, currency),
            }
        )
    return lines


def order_node(order: ShopOrder, currency: str) -> dict[str, Any]:
    journey = {"firstVisit": {"landingPage": order.landing_page}} if order.landing_page else None
    return {
        "id": gid("Order", order.id),
        "name": order.name,
        "createdAt": _stamp(order.created_at),
        "updatedAt": _stamp(order.updated_at),
        "email": order.email,
        "sourceName": order.source_name,
        "customer": None
        if order.customer_id is None
        else {"id": gid("Customer", order.customer_id)},
        "totalPriceSet": _money(order.total, currency),
        "totalDiscountsSet": _money(order.discount, currency),
        "discountCodes": list(order.discount_codes),
        "customAttributes": [{"key": key, "value": value} for key, value in order.attributes],
        "note": order.note,
        "customerJourneySummary": journey,
        "billingAddress": {
            "firstName": order.first_name,
            "lastName": order.last_name,
            **_address(order.address, None),
        },
        "refunds": [
            {
                "id": gid("Refund", refund.id),
                "createdAt": _stamp(refund.created_at),
                "totalRefundedSet": _money(refund.amount, currency),
            }
            for refund in order.refunds
        ],
        "lineItems": order_lines(order, currency),
    }
