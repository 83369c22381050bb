"""Normalized records: what every connector stream yields and the ingest step stores.

Frozen, typed, no loose dicts: money is ``Decimal`` in the record's currency (plus the
home-currency amount where the source knows it), times are timezone-aware UTC. A record with
``deleted=True`` is a tombstone: the remote system says it is gone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime
from decimal import Decimal


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
    deleted: bool = False

    kind = RecordKind.CUSTOMER


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
    deleted: bool = False

    kind = RecordKind.INTERACTION


@dataclass(frozen=True, slots=True)
class SourceReferral:
    external_id: str
    referrer_external_id: str
    referred_external_id: str
    occurred_at: datetime | None = None
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
