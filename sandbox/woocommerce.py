"""A WooCommerce REST API v3 stand-in serving :class:`sandbox.shop.ShopBusiness`.

Routes under ``/wp-json/wc/v3/``: ``customers`` (the ``customer`` role unless ``role``
says otherwise) and ``orders`` lists (``page``, ``per_page``
at most 100, ``X-WP-Total`` and ``X-WP-TotalPages`` headers; orders also ``modified_after``
with ``dates_are_gmt`` and ``orderby=modified``), ``orders/<id>/refunds``, ``refunds``
(with ``parent``) and ``customers/batch`` (at most 100 objects). Payloads follow the REST
API reference: money as decimal strings, ``*_gmt`` dates without a zone, guest orders with
``customer_id`` 0, refunds listed on the order with negative totals, the landing page in the
order-attribution meta.

Auth is the consumer key and secret, as HTTP Basic or as ``consumer_key`` /
``consumer_secret`` query parameters; with ``strip_authorization`` the stand-in behaves like
a host that drops the ``Authorization`` header. 429/5xx/cut-off switches come from
:class:`sandbox.http.Faults`.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sandbox.http import Faults, Request, Response, SandboxServer
from sandbox.shop import ShopBusiness, ShopCustomer, ShopOrder, ShopRefund

API = "/wp-json/wc/v3"
MAX_PER_PAGE = 100
MAX_BATCH = 100
LANDING_META = "_wc_order_attribution_session_entry"
T = TypeVar("T")


def _gmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _address(source: ShopCustomer | ShopOrder, email: str | None) -> dict[str, Any]:
    address = source.address
    company = source.company if isinstance(source, ShopCustomer) else None
    phone = source.phone if isinstance(source, ShopCustomer) else None
    return {
        "first_name": source.first_name,
        "last_name": source.last_name,
        "company": company or "",
        "address_1": address.line1,
        "address_2": address.line2 or "",
        "city": address.city,
        "state": address.region,
        "postcode": address.postcode,
        "country": address.country,
        "email": email or "",
        "phone": phone or "",
    }


@dataclass(slots=True)
class WooStandIn:
    shop: ShopBusiness
    consumer_key: str = "ck_sandbox"
    consumer_secret: str = "cs_sandbox"  # noqa: S105 (the stand-in's own test secret)
    strip_authorization: bool = False
    refunds_route: bool = True
    """Serve ``GET refunds`` (WooCommerce 9.x); False: like an older store, only per order."""
    requests: dict[str, int] = field(default_factory=dict)
    batch_calls: int = 0
    _index: tuple[Any, list[ShopOrder]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def server(self, faults: Faults | None = None) -> SandboxServer:
        server = SandboxServer(faults=faults, no_delay=True)
        server.route("GET", rf"{API}/customers")(self._guarded(self.customers))
        server.route("POST", rf"{API}/customers/batch")(self._guarded(self.batch))
        server.route("GET", rf"{API}/orders")(self._guarded(self.orders))
        server.route("GET", rf"{API}/orders/(?P<order>\d+)/refunds")(self._guarded(self.refunds))
        if self.refunds_route:
            server.route("GET", rf"{API}/refunds")(self._guarded(self.all_refunds))
        return server

    def _authorized(self, request: Request) -> bool:
        if request.arg("consumer_key") is not None:
            return (request.arg("consumer_key"), request.arg("consumer_secret")) == (
                self.consumer_key,
                self.consumer_secret,
            )
        header = None if self.strip_authorization else request.header("Authorization")
        if not header or not header.startswith("Basic "):
            return False
        expected = f"{self.consumer_key}:{self.consumer_secret}".encode()
        return base64.b64decode(header[6:]) == expected

    def _guarded(self, handler: Any) -> Any:
        def guarded(request: Request) -> Response:
            if not self._authorized(request):
                return Response.json(
                    {
                        "code": "woocommerce_rest_cannot_view",
                        "message": "Sorry, you cannot list resources.",
                        "data": {"status": 401},
                    },
                    401,
                )
            with self._lock:
                name = handler.__name__
                self.requests[name] = self.requests.get(name, 0) + 1
                response: Response = handler(request)
                return response

        return guarded

    @staticmethod
    def _paged(
        request: Request, items: Sequence[T], render: Callable[[T], dict[str, Any]]
    ) -> Response:
        """One page of ``items``, rendered (only the page: the shop may be large)."""
        per_page = int(request.arg("per_page") or 10)
        page = int(request.arg("page") or 1)
        if not 1 <= per_page <= MAX_PER_PAGE:
            return Response.json(
                {
                    "code": "rest_invalid_param",
                    "message": "Invalid parameter(s): per_page",
                    "data": {"status": 400},
                },
                400,
            )
        start = (page - 1) * per_page
        pages = max(1, math.ceil(len(items) / per_page))
        response = Response.json([render(item) for item in items[start : start + per_page]])
        response.headers["X-WP-Total"] = str(len(items))
        response.headers["X-WP-TotalPages"] = str(pages)
        return response

    # -- routes -------------------------------------------------------------------------------

    def customers(self, request: Request) -> Response:
        role = request.arg("role") or "customer"
        customers = sorted(
            (c for c in self.shop.customers.values() if role in ("all", c.role)),
            key=lambda customer: customer.id,
        )
        return self._paged(request, customers, customer_item)

    def _selected(self, since: datetime | None, by_modified: bool) -> list[ShopOrder]:
        """Orders modified after ``since``, by id (or by modification), kept until a change."""
        version = (len(self.shop.orders), self.shop.clock, since, by_modified)
        if self._index is None or self._index[0] != version:
            orders = [
                order
                for order in self.shop.orders.values()
                if since is None or order.updated_at > since
            ]
            orders.sort(key=lambda o: (o.updated_at, o.id) if by_modified else (o.id,))
            self._index = (version, orders)
        return self._index[1]

    def orders(self, request: Request) -> Response:
        after = request.arg("modified_after")
        since = None
        if after:
            since = datetime.fromisoformat(after)
            since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
        orders = self._selected(since, request.arg("orderby") == "modified")
        if request.arg("order") == "desc":
            orders = orders[::-1]
        currency = self.shop.currency
        return self._paged(request, orders, lambda order: order_item(order, currency))

    def refunds(self, request: Request) -> Response:
        order = self.shop.orders.get(int(request.params["order"]))
        if order is None:
            return Response.json(
                {"code": "woocommerce_rest_invalid_order_id", "message": "Invalid order ID."}, 404
            )
        return Response.json([refund_item(refund) for refund in order.refunds])

    def all_refunds(self, request: Request) -> Response:
        parents = sorted({int(part) for part in (request.arg("parent") or "").split(",") if part})
        # with ``parent`` only those orders are looked at, as the store's indexed query does
        # (sorting the whole shop for each page cost 15 ms at 100k orders)
        orders = (
            [self.shop.orders[number] for number in parents if number in self.shop.orders]
            if parents
            else sorted(self.shop.orders.values(), key=lambda order: order.id)
        )
        refunds = [(order.id, refund) for order in orders for refund in order.refunds]
        return self._paged(
            request, refunds, lambda pair: {"parent_id": pair[0]} | refund_item(pair[1])
        )

    def batch(self, request: Request) -> Response:
        body = request.json() or {}
        entries = body.get("update") or []
        if len(entries) > MAX_BATCH:
            return Response.json(
                {
                    "code": "rest_request_entity_too_large",
                    "message": f"Unable to accept more than {MAX_BATCH} items for this request.",
                    "data": {"status": 413},
                },
                413,
            )
        self.batch_calls += 1
        answers: list[dict[str, Any]] = []
        for entry in entries:
            customer = self.shop.customers.get(int(entry.get("id") or 0))
            if customer is None:
                answers.append(
                    {
                        "id": entry.get("id"),
                        "error": {
                            "code": "woocommerce_rest_invalid_id",
                            "message": "Invalid resource ID.",
                            "data": {"status": 400},
                        },
                    }
                )
                continue
            for meta in entry.get("meta_data") or []:
                customer.meta_data[str(meta["key"])] = str(meta["value"])
            customer.updated_at = self.shop.tick()
            answers.append(customer_item(customer))
        return Response.json({"update": answers})


def refund_item(refund: ShopRefund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "date_created_gmt": _gmt(refund.created_at),
        "amount": str(refund.amount),
        "reason": "",
    }


def customer_item(customer: ShopCustomer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "date_created_gmt": _gmt(customer.created_at),
        "date_modified_gmt": _gmt(customer.updated_at),
        "email": customer.email or "",
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "role": customer.role,
        "username": (customer.email or f"user{customer.id}").split("@")[0],
        "billing": _address(customer, customer.email),
        "shipping": {},
        "is_paying_customer": True,
        "meta_data": [
            {"id": index + 1, "key": key, "value": value}
            for index, (key, value) in enumerate(sorted(customer.meta_data.items()))
        ],
    }


def order_item(order: ShopOrder, currency: str) -> dict[str, Any]:
    meta: list[dict[str, Any]] = [
        {"id": index + 1, "key": key, "value": value}
        for index, (key, value) in enumerate(order.attributes)
    ]
    if order.landing_page:
        meta.append({"id": len(meta) + 1, "key": LANDING_META, "value": order.landing_page})
    refunded = sum((refund.amount for refund in order.refunds), start=order.total * 0)
    return {
        "id": order.id,
        "number": str(order.number),
        "status": "refunded" if order.refunds and refunded >= order.total else "completed",
        "currency": currency,
        "date_created_gmt": _gmt(order.created_at),
        "date_modified_gmt": _gmt(order.updated_at),
        "discount_total": str(order.discount),
        "total": str(order.total),
        "customer_id": order.customer_id or 0,
        "customer_note": order.note or "",
        "created_via": "pos" if order.source_name == "pos" else "checkout",
        "billing": _address(order, order.email),
        "coupon_lines": [
            {"id": index + 1, "code": code.lower(), "discount": str(order.discount)}
            for index, code in enumerate(order.discount_codes)
        ],
        "refunds": [
            {"id": refund.id, "reason": "", "total": f"-{refund.amount}"}
            for refund in order.refunds
        ],
        "meta_data": meta,
    }
