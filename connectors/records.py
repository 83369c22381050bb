"""Normalized records: what every connector stream yields and the ingest step stores.

Frozen, typed, no loose dicts: money is ``Decimal`` in the record's currency (plus the
home-currency amount where the source knows it), times are timezone-aware UTC. A record with
``deleted=True`` is a tombstone: the remote system says it is gone.

Optional fields default to "unknown" (``None``, ``()``, ``False``); the ledger leaves them out
of a record's content hash, so a field added in a later version does not make every stored
record look changed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime
from decimal import Decimal
from typing import TypedDict


class RecordKind(enum.StrEnum):
    """The five kinds of source record; each has its own ledger table."""

    CUSTOMER = "customer"
    TRANSACTION = "transaction"
    INTERACTION = "interaction"
    REFERRAL = "referral"
    SPEND = "spend"


class TransactionKind(enum.StrEnum):
    SALE = "sale"
    REFUND = "refund"


class Direction(enum.StrEnum):
    """Who wrote a message: the customer (inbound) or the business (outbound)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True)
class SourceCustomer:
    external_id: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    email: str | None = None
    phone: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postcode: str | None = None
    region: str | None = None
    country: str | None = None
    created_at: datetime | None = None
    parent_external_id: str | None = None
    """The parent customer of a sub-customer or job (QuickBooks), if any."""
    notes: str | None = None
    """The user's own notes, without any block clm-sync wrote (loss reasons live here)."""
    labels: tuple[str, ...] = ()
    """Tags or categories the remote system attaches (Outlook categories, shop tags)."""
    acquisition_channel: str | None = None
    """The marketing channel that brought the customer, if the source knows it."""
    guest: bool = False
    """True if the remote system has no writable record for it (a shop's guest checkout, an
    e-mail correspondent without a contact): metrics are not pushed to it."""
    deleted: bool = False

    kind = RecordKind.CUSTOMER


class AddressFields(TypedDict):
    """The address part of a :class:`SourceCustomer`, as connectors build it from a payload."""

    address_line1: str | None
    address_line2: str | None
    city: str | None
    postcode: str | None
    region: str | None
    country: str | None
    company: str | None


@dataclass(frozen=True, slots=True)
class LineItem:
    """One line of an order, in its transaction's currency."""

    quantity: int
    total: Decimal
    """Before discounts: the unit price times the quantity."""
    discounted_total: Decimal | None = None
    """After the discounts allocated to this line, if the source says."""
    title: str | None = None
    sku: str | None = None


@dataclass(frozen=True, slots=True)
class SourceTransaction:
    """A sale or a refund. ``amount`` is positive either way; ``kind`` gives the sign."""

    external_id: str
    customer_external_id: str | None
    occurred_at: datetime
    amount: Decimal
    currency: str
    transaction_kind: TransactionKind = TransactionKind.SALE
    home_amount: Decimal | None = None
    document_kind: str | None = None
    """The remote document type: ``Invoice``, ``SalesReceipt``, ``order``, ``refund`` ..."""
    reference: str | None = None
    """The number people quote (invoice or order number); matches a sale across systems."""
    memo: str | None = None
    """Free text on the document, which may name the other system's number."""
    discount: Decimal | None = None
    """Discount granted on this sale, in ``currency`` (for the discount-only-buyer signal)."""
    refund_of: str | None = None
    """For a refund: the external id of the sale it gives money back for, if known."""
    channel: str | None = None
    """Where the sale came from (web, pos, a landing-page source), if known."""
    lines: tuple[LineItem, ...] = ()
    """The sale's line items, where the source gives them (a shop order)."""
    deleted: bool = False

    kind = RecordKind.TRANSACTION


@dataclass(frozen=True, slots=True)
class SourceInteraction:
    """A contact with the customer: an e-mail, a call, a support incident."""

    external_id: str
    customer_external_id: str | None
    occurred_at: datetime
    interaction_kind: str
    subject: str | None = None
    cost: Decimal | None = None
    direction: Direction | None = None
    conversation_id: str | None = None
    """Groups the messages of one conversation (a support incident spans one)."""
    support: bool = False
    """True if the source counts it as support (support mailbox, folder or category)."""
    labels: tuple[str, ...] = ()
    """Categories or tags on the message (``Resolved``, a loss reason ...)."""
    preview: str | None = None
    """A short body preview, only where the admin turned it on (complaint signals)."""
    deleted: bool = False

    kind = RecordKind.INTERACTION


@dataclass(frozen=True, slots=True)
class SourceReferral:
    external_id: str
    referrer_external_id: str
    referred_external_id: str
    occurred_at: datetime | None = None
    method: str | None = None
    """How the referral showed: ``code``, ``attribute``, ``landing_page``, ``export`` ..."""
    first_order_external_id: str | None = None
    """The referred customer's first order, if the source knows it."""
    deleted: bool = False

    kind = RecordKind.REFERRAL


@dataclass(frozen=True, slots=True)
class SourceSpend:
    """Marketing spend of one channel on one day (or the first day of a longer period)."""

    external_id: str
    spent_on: date
    channel: str
    amount: Decimal
    currency: str
    home_amount: Decimal | None = None
    deleted: bool = False

    kind = RecordKind.SPEND


Record = SourceCustomer | SourceTransaction | SourceInteraction | SourceReferral | SourceSpend


@dataclass(frozen=True, slots=True)
class Rejected:
    """A remote record the connector could not turn into a normalized one.

    ``raw`` is the payload as received (text; undecodable bytes escaped) and ``location``
    says where it came from (file and line, page URL), so an admin can find and fix it.
    """

    reason: str
    raw: str
    external_id: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class FieldUpdate:
    """One value for one field of one remote record, as the push engine hands it out."""

    external_id: str
    field: str
    value: str
    previous: str | None = dataclass_field(default=None, compare=False)
