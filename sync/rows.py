"""Turn a normalized record into the values of its ledger row, or say why it cannot be stored.

The checks here are the ones every source shares (lengths, signs, currencies, time zones,
characters PostgreSQL refuses); a connector checks what only it knows while mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from hashlib import blake2b
from typing import Any

from connectors.records import (
    Direction,
    LineItem,
    Record,
    SourceCustomer,
    SourceInteraction,
    SourceReferral,
    SourceSpend,
    SourceTransaction,
    TransactionKind,
)
from sync.normalize import normalize_email, normalize_phone

MAX_ID_LENGTH = 255
MAX_TEXT_LENGTH = 1_000
MAX_SUBJECT_LENGTH = 10_000
MAX_LABELS = 50
MAX_LABEL_LENGTH = 255
# NUMERIC(20,4) holds 16 integer digits; nothing a small business books comes near 10**12.
MAX_AMOUNT = Decimal(10) ** 12
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

Row = dict[str, Any]


class InvalidRecord(ValueError):
    """The record breaks a ledger rule; the message is the quarantine reason."""


@dataclass(frozen=True, slots=True)
class RowContext:
    home_currency: str
    phone_region: str


def _text(name: str, value: str | None, limit: int = MAX_TEXT_LENGTH) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise InvalidRecord(
            f"field {name!r} is {len(value):,} characters long; at most {limit:,} are accepted"
        )
    if "\x00" in value:
        raise InvalidRecord(f"field {name!r} contains a NUL character")
    return value


def _required_text(name: str, value: str | None, limit: int = MAX_TEXT_LENGTH) -> str:
    text = _text(name, value, limit)
    if text is None:
        raise InvalidRecord(f"field {name!r} is empty")
    return text


def _labels(name: str, values: tuple[str, ...]) -> tuple[str, ...]:
    labels = tuple(
        label
        for label in (_text(name, value, MAX_LABEL_LENGTH) for value in values)
        if label is not None
    )
    if len(labels) > MAX_LABELS:
        raise InvalidRecord(f"field {name!r} has {len(labels):,} entries; at most {MAX_LABELS}")
    return labels


def _moment(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidRecord(f"field {name!r} has no time zone")
    if not EARLIEST <= value < LATEST:
        raise InvalidRecord(f"field {name!r} is {value.isoformat()}, outside 1900-2199")
    return value.astimezone(UTC)


def _optional_moment(name: str, value: datetime | None) -> datetime | None:
    return None if value is None else _moment(name, value)


def _amount(name: str, value: Decimal) -> Decimal:
    if not value.is_finite():
        raise InvalidRecord(f"field {name!r} is not a number")
    if value < 0:
        raise InvalidRecord(
            f"field {name!r} is negative ({value}); book money back as a refund with a "
            "positive amount"
        )
    if value >= MAX_AMOUNT:
        raise InvalidRecord(f"field {name!r} is {value:.2E}, beyond any plausible amount")
    return value


@lru_cache(maxsize=1024)
def _currency(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise InvalidRecord(f"currency {value!r} is not a three-letter ISO 4217 code")
    return code


def _home_amount(amount: Decimal, currency: str, home: Decimal | None, ctx: RowContext) -> Decimal:
    if home is not None:
        return _amount("home_amount", home)
    if currency == ctx.home_currency:
        return amount
    raise InvalidRecord(
        f"amount in {currency} without its {ctx.home_currency} value; give the home-currency "
        "amount (CSV column home_amount) so revenue can be added up"
    )


def _customer(record: SourceCustomer, ctx: RowContext) -> Row:
    email = _text("email", record.email)
    phone = _text("phone", record.phone)
    return {
        "name": _text("name", record.name),
        "first_name": _text("first_name", record.first_name),
        "last_name": _text("last_name", record.last_name),
        "company": _text("company", record.company),
        "email": email,
        "email_normalized": normalize_email(email),
        "phone": phone,
        "phone_e164": normalize_phone(phone, ctx.phone_region),
        "address_line1": _text("address_line1", record.address_line1),
        "address_line2": _text("address_line2", record.address_line2),
        "city": _text("city", record.city),
        "postcode": _text("postcode", record.postcode),
        "region": _text("region", record.region),
        "country": _text("country", record.country),
        "created_at": _optional_moment("created_at", record.created_at),
        "parent_external_id": _text("parent_id", record.parent_external_id, MAX_ID_LENGTH),
        "notes": _text("notes", record.notes, MAX_SUBJECT_LENGTH),
        "labels": _labels("labels", record.labels),
        "acquisition_channel": _text("channel", record.acquisition_channel, 80),
        "guest": record.guest,
    }


# members and their plain strings alike (a StrEnum hashes as its value)
_KIND_VALUES: dict[str, str] = {kind: kind.value for kind in TransactionKind}


def _transaction(record: SourceTransaction, ctx: RowContext) -> Row:
    amount = _amount("amount", record.amount)
    currency = _currency(record.currency)
    return {
        "customer_external_id": _text("customer_id", record.customer_external_id, MAX_ID_LENGTH),
        "occurred_at": _moment("date", record.occurred_at),
        "amount": amount,
        "currency": currency,
        "transaction_kind": _KIND_VALUES.get(record.transaction_kind)
        or TransactionKind(record.transaction_kind).value,
        "home_amount": _home_amount(amount, currency, record.home_amount, ctx),
        "document_kind": _text("document_kind", record.document_kind, 40),
        "reference": _text("reference", record.reference, MAX_ID_LENGTH),
        "memo": _text("memo", record.memo, MAX_SUBJECT_LENGTH),
        "discount": None if record.discount is None else _amount("discount", record.discount),
        "refund_of": _text("refund_of", record.refund_of, MAX_ID_LENGTH),
        "channel": _text("channel", record.channel, 80),
        "lines": lines_json(record.lines),
    }


def lines_json(lines: tuple[LineItem, ...]) -> str | None:
    """Line items as the ledger stores them: a JSON list, amounts as decimal strings."""
    if not lines:
        return None
    return json.dumps(
        [
            {
                "quantity": line.quantity,
                "total": str(_amount("line total", line.total)),
                "discounted_total": None
                if line.discounted_total is None
                else str(_amount("line total", line.discounted_total)),
                "title": _text("line title", line.title, MAX_SUBJECT_LENGTH),
                "sku": _text("line sku", line.sku, MAX_ID_LENGTH),
            }
            for line in lines
        ],
        ensure_ascii=False,
        sort_keys=True,
    )


def _interaction(record: SourceInteraction, _ctx: RowContext) -> Row:
    return {
        "customer_external_id": _text("customer_id", record.customer_external_id, MAX_ID_LENGTH),
        "occurred_at": _moment("date", record.occurred_at),
        "interaction_kind": _required_text("kind", record.interaction_kind, 40),
        "subject": _text("subject", record.subject, MAX_SUBJECT_LENGTH),
        "cost": None if record.cost is None else _amount("cost", record.cost),
        "direction": None if record.direction is None else Direction(record.direction).value,
        "conversation_id": _text("conversation_id", record.conversation_id, MAX_ID_LENGTH),
        "support": record.support,
        "labels": _labels("labels", record.labels),
        "preview": _text("preview", record.preview, MAX_SUBJECT_LENGTH),
    }


def _referral(record: SourceReferral, _ctx: RowContext) -> Row:
    referrer = _required_text("referrer_id", record.referrer_external_id, MAX_ID_LENGTH)
    referred = _required_text("referred_id", record.referred_external_id, MAX_ID_LENGTH)
    if referrer == referred:
        raise InvalidRecord(f"customer {referrer!r} cannot refer themselves")
    return {
        "referrer_external_id": referrer,
        "referred_external_id": referred,
        "occurred_at": _optional_moment("date", record.occurred_at),
        "method": _text("method", record.method, 40),
        "first_order_external_id": _text(
            "first_order_id", record.first_order_external_id, MAX_ID_LENGTH
        ),
    }


def _spend(record: SourceSpend, ctx: RowContext) -> Row:
    amount = _amount("amount", record.amount)
    currency = _currency(record.currency)
    if not date(1900, 1, 1) <= record.spent_on < date(2200, 1, 1):
        raise InvalidRecord(f"date {record.spent_on.isoformat()} is outside 1900-2199")
    return {
        "spent_on": record.spent_on,
        "channel": _required_text("channel", record.channel, 80),
        "amount": amount,
        "currency": currency,
        "home_amount": _home_amount(amount, currency, record.home_amount, ctx),
    }


def record_values(record: Record, ctx: RowContext) -> Row:
    """The record's own columns (without the bookkeeping ones); raises InvalidRecord."""
    match record:
        case SourceCustomer():
            return _customer(record, ctx)
        case SourceTransaction():
            return _transaction(record, ctx)
        case SourceInteraction():
            return _interaction(record, ctx)
        case SourceReferral():
            return _referral(record, ctx)
        case SourceSpend():
            return _spend(record, ctx)


def checked_external_id(record: Record) -> str:
    external_id = record.external_id.strip() if record.external_id else ""
    if not external_id:
        raise InvalidRecord("the record has no id")
    if len(external_id) > MAX_ID_LENGTH:
        raise InvalidRecord(f"the id is {len(external_id):,} characters; at most 255 are accepted")
    if "\x00" in external_id:
        raise InvalidRecord("the id contains a NUL character")
    return external_id


def content_hash(values: Row) -> str:
    """A digest of the record's own columns, stable across runs and Python versions.

    Columns holding "unknown" (None, False, an empty tuple) are left out, so adding an
    optional column in a later version does not change the hash of any stored record. The
    text hashed is ``key\x1fvalue\x1e`` per column in key order, dates and times in ISO
    format, everything else as ``str()`` gives it; tests/test_rows.py pins the digest.
    Every record is hashed on every run, so the loop avoids work that a plain
    ``sorted(values.items())`` with an ``isinstance`` per value costs.
    """
    parts: list[str] = []
    append = parts.append
    for key in _key_order(tuple(values)):
        value = values[key]
        if value is None or value is False:
            continue
        kind = value.__class__
        if kind is str or kind is Decimal:  # Decimal's != () would consult numbers' ABCs
            append(f"{key}\x1f{value}\x1e")
        elif kind is datetime:
            append(f"{key}\x1f{value.isoformat()}\x1e")
        elif kind is tuple:
            if value:
                append(f"{key}\x1f{value}\x1e")
        elif isinstance(value, date):  # datetime too
            append(f"{key}\x1f{value.isoformat()}\x1e")
        elif value != ():
            append(f"{key}\x1f{value}\x1e")
    return blake2b("".join(parts).encode(), digest_size=16).hexdigest()


@lru_cache(maxsize=256)
def _key_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The keys sorted; a page's rows share one set of keys, so this is a cache hit."""
    return tuple(sorted(keys))
