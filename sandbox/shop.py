"""The synthetic business as a web shop: what the Shopify and WooCommerce stand-ins serve.

Every true person of :mod:`sandbox.synthetic` becomes a shop customer or, for a share of
those with an e-mail address, a guest who only ever checks out without an account. Each sale
is an order (in the home currency, a share of them discounted), each refund a refund of that
order. A referred person's first order carries the referral in one of four styles — the
referrer's discount code, an order attribute, a note, or a landing-page parameter — and
:attr:`ShopBusiness.referrals` is the truth per style.

A change made later (:meth:`ShopBusiness.edit_order`, :meth:`ShopBusiness.add_refund`) is
stamped with the real time, and always after every earlier change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sandbox.synthetic import Address, BusinessSpec, generate_persons

GUEST_SHARE = 0.15
"""Share of persons with an e-mail address who never open an account."""
DISCOUNT_SHARE = 0.2
REFERRAL_STYLES = ("code", "attribute", "note", "landing_page")
REFERRAL_ATTRIBUTE = "referred_by"
REFERRAL_PARAMETER = "ref"
REFERRAL_NOTE = "Referred by {code}"
"""The note a referred first order carries in the ``note`` style."""
POS_SHARE = 0.1
OTHER_ROLE_SHARE = 0.03
FIRST_ORDER_NUMBER = 1001
CUSTOMER_ID_BASE = 7_000_000
ORDER_ID_BASE = 5_000_000
REFUND_ID_BASE = 9_000_000
_CENT = Decimal("0.01")


def referral_code(customer_id: int) -> str:
    """The personal referral discount code of a shop customer."""
    return f"REF-{customer_id}"


def guest_key(email: str) -> str:
    """The external id of a guest: their e-mail address, normalized."""
    return "guest:" + email.strip().lower()


@dataclass(slots=True)
class ShopCustomer:
    id: int
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    company: str | None
    address: Address
    created_at: datetime
    updated_at: datetime
    role: str = "customer"
    """The WordPress role of a WooCommerce account: a few buyers are e.g. subscribers."""
    metafields: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    """(namespace, key) to (type, value): what Shopify's metafieldsSet wrote."""
    meta_data: dict[str, str] = field(default_factory=dict)
    """WooCommerce customer meta: key to value."""

    @property
    def code(self) -> str:
        return referral_code(self.id)


@dataclass(slots=True)
class ShopRefund:
    id: int
    created_at: datetime
    amount: Decimal


@dataclass(slots=True)
class ShopOrder:
    id: int
    number: int
    customer_id: int | None
    email: str | None
    first_name: str
    last_name: str
    address: Address
    created_at: datetime
    updated_at: datetime
    total: Decimal
    """What the customer paid, after discounts, in the shop currency."""
    discount: Decimal
    source_name: str
    discount_codes: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str]] = field(default_factory=list)
    note: str | None = None
    landing_page: str | None = None
    refunds: list[ShopRefund] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"#{self.number}"


@dataclass(frozen=True, slots=True)
class TrueReferral:
    referrer: str
    referred: str
    first_order: str


@dataclass(slots=True)
class ShopBusiness:
    """Customers and orders of the shop (by id), the currency and the referral truth."""

    currency: str
    customers: dict[int, ShopCustomer]
    orders: dict[int, ShopOrder]
    referrals: dict[str, set[TrueReferral]]
    clock: datetime
    _next_refund: int = REFUND_ID_BASE

    def tick(self) -> datetime:
        """Now (by the real clock), and at least a second after the shop's last change."""
        self.clock = max(
            self.clock + timedelta(seconds=1), datetime.now(UTC).replace(microsecond=0)
        )
        return self.clock

    def edit_order(self, order_id: int, total: Decimal) -> None:
        """An order edit (an item added or removed): a new total and a new ``updated_at``."""
        order = self.orders[order_id]
        order.total = total
        order.updated_at = self.tick()

    def add_refund(self, order_id: int, amount: Decimal) -> ShopRefund:
        order = self.orders[order_id]
        self._next_refund += 1
        refund = ShopRefund(self._next_refund, self.tick(), amount)
        order.refunds.append(refund)
        order.updated_at = refund.created_at
        return refund

    def guests(self) -> set[str]:
        return {
            guest_key(order.email)
            for order in self.orders.values()
            if order.customer_id is None and order.email
        }


def build_shop(spec: BusinessSpec, storefront: tuple[int, int] = (0, 1)) -> ShopBusiness:
    """The shop of ``spec``'s persons (deterministic for a spec).

    ``storefront`` ``(k, n)`` keeps the persons whose index is ``k`` modulo ``n``: a business
    with two shops serves half its persons from each.
    """
    rng = random.Random(f"{spec.seed}:shop:{storefront[0]}")
    customers: dict[int, ShopCustomer] = {}
    orders: dict[int, ShopOrder] = {}
    referrals: dict[str, set[TrueReferral]] = {style: set() for style in REFERRAL_STYLES}
    customer_of_person: dict[int, int] = {}
    order_id, number, last_moment = ORDER_ID_BASE, FIRST_ORDER_NUMBER, spec.origin
    next_refund = REFUND_ID_BASE
    for person in generate_persons(spec):
        if person.index % storefront[1] != storefront[0]:
            continue
        guest = person.email is not None and rng.random() < GUEST_SHARE
        customer_id: int | None = None
        if not guest:
            customer_id = CUSTOMER_ID_BASE + person.index
            customer_of_person[person.index] = customer_id
            customers[customer_id] = ShopCustomer(
                id=customer_id,
                first_name=person.first_name,
                last_name=person.last_name,
                email=person.email,
                phone=None if person.phone is None else f"+1{person.phone}",
                company=person.company,
                address=person.address,
                created_at=person.acquired_at,
                updated_at=person.acquired_at,
                role="subscriber" if rng.random() < OTHER_ROLE_SHARE else "customer",
            )
        referrer = (
            customer_of_person.get(person.referred_by) if person.referred_by is not None else None
        )
        for position, sale in enumerate(person.sales):
            order_id += 1
            number += 1
            discounted = rng.random() < DISCOUNT_SHARE
            order = ShopOrder(
                id=order_id,
                number=number,
                customer_id=customer_id,
                email=person.email,
                first_name=person.first_name,
                last_name=person.last_name,
                address=person.address,
                created_at=sale.at,
                updated_at=sale.at,
                total=sale.home_amount,
                discount=(sale.home_amount / 9).quantize(_CENT) if discounted else Decimal(0),
                source_name="pos" if rng.random() < POS_SHARE else "web",
            )
            if discounted:
                order.discount_codes.append(rng.choice(("WELCOME10", "SPRING10", "VIP10")))
            if position == 0 and referrer is not None:
                style = rng.choice(REFERRAL_STYLES)
                _mark_referral(order, style, referrer)
                referred = str(customer_id) if customer_id else guest_key(person.email or "")
                referrals[style].add(TrueReferral(str(referrer), referred, str(order_id)))
            if sale.refund is not None:
                next_refund += 1
                order.refunds.append(
                    ShopRefund(next_refund, sale.refund.at, sale.refund.home_amount)
                )
                order.updated_at = sale.refund.at
            if customer_id is not None:
                customers[customer_id].updated_at = max(
                    customers[customer_id].updated_at, order.created_at
                )
            orders[order_id] = order
            last_moment = max(last_moment, order.updated_at)
    shop = ShopBusiness(spec.home_currency, customers, orders, referrals, last_moment)
    shop._next_refund = next_refund
    return shop


def _mark_referral(order: ShopOrder, style: str, referrer: int) -> None:
    """The referral on the first order: the referrer's code, or their id as an attribute."""
    code = referral_code(referrer)
    if style == "code":
        order.discount_codes = [code]
        order.discount = max(order.discount, (order.total / 9).quantize(_CENT))
    elif style == "attribute":
        order.attributes.append((REFERRAL_ATTRIBUTE, str(referrer)))
    elif style == "note":
        order.note = REFERRAL_NOTE.format(code=code)
    else:
        order.landing_page = f"https://shop.example/?utm_source=friend&{REFERRAL_PARAMETER}={code}"
