"""From normalized record to ledger row (sync/rows.py): the shared checks and the content hash."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from connectors.records import (
    LineItem,
    Record,
    SourceCustomer,
    SourceInteraction,
    SourceReferral,
    SourceSpend,
    SourceTransaction,
    TransactionKind,
)
from sync.rows import (
    MAX_AMOUNT,
    InvalidRecord,
    RowContext,
    checked_external_id,
    content_hash,
    record_values,
)

CONTEXT = RowContext(home_currency="USD", phone_region="US")
WHEN = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

CUSTOMER = SourceCustomer(
    "C1",
    name="Ann Lee",
    first_name="Ann",
    last_name="Lee",
    company="Lee & Co",
    email="Ann.Lee@Example.com",
    phone="(415) 555-0101",
    address_line1="1 Main St",
    address_line2="Suite 2",
    city="Springfield",
    postcode="12345",
    region="CA",
    country="US",
    created_at=WHEN,
)
SALE = SourceTransaction("T1", "C1", WHEN, Decimal("19.99"), "USD")
FOREIGN = SourceTransaction(
    "T2", "C1", WHEN, Decimal("10"), "EUR", TransactionKind.REFUND, Decimal("10.85")
)
CONTACT = SourceInteraction("I1", "C1", WHEN, "support", "Where is my parcel?", Decimal("4.5"))
REFERRAL = SourceReferral("R1", "C1", "C2", WHEN)
SPEND = SourceSpend("S1", date(2024, 5, 1), "search ads", Decimal("120"), "GBP", Decimal("150.3"))
RECORDS: list[Record] = [CUSTOMER, SALE, FOREIGN, CONTACT, REFERRAL, SPEND]
# blake2b-128 over "key\x1fvalue\x1e" for the sorted keys of SALE's row, computed by hand.
PINNED_SALE_HASH = "bf9d7faa413af473080d198d2f3d9956"


def refused(record: Record) -> str:
    with pytest.raises(InvalidRecord) as raised:
        record_values(record, CONTEXT)
    return str(raised.value)


def test_valid_records_become_their_rows() -> None:
    assert record_values(CUSTOMER, CONTEXT) == {
        "name": "Ann Lee",
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "Lee & Co",
        "email": "Ann.Lee@Example.com",
        "email_normalized": "ann.lee@example.com",
        "phone": "(415) 555-0101",
        "phone_e164": "+14155550101",
        "address_line1": "1 Main St",
        "address_line2": "Suite 2",
        "city": "Springfield",
        "postcode": "12345",
        "region": "CA",
        "country": "US",
        "created_at": WHEN,
        "parent_external_id": None,
        "notes": None,
        "labels": (),
        "acquisition_channel": None,
        "guest": False,
    }
    assert record_values(SALE, CONTEXT) == {
        "customer_external_id": "C1",
        "occurred_at": WHEN,
        "amount": Decimal("19.99"),
        "currency": "USD",
        "transaction_kind": "sale",
        "home_amount": Decimal("19.99"),
        "document_kind": None,
        "reference": None,
        "memo": None,
        "discount": None,
        "refund_of": None,
        "channel": None,
        "lines": None,
    }
    assert record_values(FOREIGN, CONTEXT)["home_amount"] == Decimal("10.85")
    assert record_values(FOREIGN, CONTEXT)["transaction_kind"] == "refund"
    assert record_values(REFERRAL, CONTEXT) == {
        "referrer_external_id": "C1",
        "referred_external_id": "C2",
        "occurred_at": WHEN,
        "method": None,
        "first_order_external_id": None,
    }
    assert record_values(SPEND, CONTEXT)["home_amount"] == Decimal("150.3")
    assert record_values(CONTACT, CONTEXT)["cost"] == Decimal("4.5")


# -- ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("external_id", "reason"),
    [
        ("", "has no id"),
        ("   ", "has no id"),
        ("x" * 256, "256 characters; at most 255"),
        ("C\x001", "NUL character"),
    ],
)
def test_bad_ids_are_refused(external_id: str, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        checked_external_id(SourceCustomer(external_id))


def test_ids_are_stripped_and_may_use_the_whole_length() -> None:
    assert checked_external_id(SourceCustomer("  C1\t")) == "C1"
    assert checked_external_id(SourceCustomer("x" * 255)) == "x" * 255
    assert checked_external_id(SourceCustomer(" " + "é" * 255 + " ")) == "é" * 255


def test_a_foreign_id_that_is_too_long_is_refused() -> None:
    assert "'customer_id'" in refused(replace(SALE, customer_external_id="x" * 256))
    assert "'referrer_id'" in refused(replace(REFERRAL, referrer_external_id="x" * 256))


# -- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (replace(SALE, occurred_at=datetime(2024, 5, 1)), "date"),
        (replace(CUSTOMER, created_at=datetime(2024, 5, 1)), "created_at"),
        (replace(CONTACT, occurred_at=datetime(2024, 5, 1)), "date"),
        (replace(REFERRAL, occurred_at=datetime(2024, 5, 1)), "date"),
    ],
)
def test_naive_datetimes_are_refused(record: Record, field: str) -> None:
    assert refused(record) == f"field {field!r} has no time zone"


BERLIN = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1900, 1, 1, 0, 30, tzinfo=BERLIN),  # 1899-12-31 23:30 UTC
        datetime(2200, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, tzinfo=UTC),
    ],
)
def test_moments_outside_1900_to_2199_are_refused(moment: datetime) -> None:
    assert "outside 1900-2199" in refused(replace(SALE, occurred_at=moment))
    assert "outside 1900-2199" in refused(replace(CUSTOMER, created_at=moment))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1900, 1, 1, tzinfo=UTC),
        datetime(2199, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2200, 1, 1, 0, 30, tzinfo=BERLIN),  # 2199-12-31 23:30 UTC
    ],
)
def test_moments_at_the_edges_are_kept_and_converted_to_utc(moment: datetime) -> None:
    stored = record_values(replace(SALE, occurred_at=moment), CONTEXT)["occurred_at"]
    assert stored == moment
    assert stored.tzinfo is UTC


@pytest.mark.parametrize("day", [date(1899, 12, 31), date(2200, 1, 1), date(1, 1, 1)])
def test_spend_days_outside_1900_to_2199_are_refused(day: date) -> None:
    assert refused(replace(SPEND, spent_on=day)) == f"date {day.isoformat()} is outside 1900-2199"


def test_spend_days_at_the_edges_are_kept() -> None:
    for day in (date(1900, 1, 1), date(2199, 12, 31)):
        assert record_values(replace(SPEND, spent_on=day), CONTEXT)["spent_on"] == day


# -- money ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (Decimal("-0.01"), "is negative (-0.01); book money back as a refund"),
        (Decimal("NaN"), "is not a number"),
        (Decimal("sNaN"), "is not a number"),
        (Decimal("Infinity"), "is not a number"),
        (Decimal("-Infinity"), "is not a number"),
        (MAX_AMOUNT, "beyond any plausible amount"),
        (Decimal("1e30"), "beyond any plausible amount"),
    ],
)
def test_impossible_amounts_are_refused(amount: Decimal, reason: str) -> None:
    assert reason in refused(replace(SALE, amount=amount))
    assert reason in refused(replace(SPEND, amount=amount))
    assert reason in refused(replace(CONTACT, cost=amount))
    assert reason in refused(replace(FOREIGN, home_amount=amount))


def test_amounts_from_zero_to_just_below_the_limit_are_kept() -> None:
    for amount in (Decimal(0), Decimal("-0"), MAX_AMOUNT - Decimal("0.0001")):
        assert record_values(replace(SALE, amount=amount), CONTEXT)["amount"] == amount
    assert record_values(replace(CONTACT, cost=None), CONTEXT)["cost"] is None


@pytest.mark.parametrize("currency", ["US", "USDX", "U$D", "123", "", "ÄBC", "usd1"])
def test_currencies_that_are_not_three_letter_codes_are_refused(currency: str) -> None:
    reason = f"currency {currency!r} is not a three-letter ISO 4217 code"
    assert refused(replace(SALE, currency=currency)) == reason
    assert refused(replace(SPEND, currency=currency)) == reason


def test_currency_codes_are_upper_cased_and_stripped() -> None:
    values = record_values(replace(SALE, currency=" usd "), CONTEXT)
    assert values["currency"] == "USD"
    assert values["home_amount"] == SALE.amount, "a home-currency amount is its own home amount"


def test_a_foreign_amount_needs_its_home_amount() -> None:
    reason = refused(replace(FOREIGN, home_amount=None))
    assert "amount in EUR without its USD value" in reason
    assert "home_amount" in reason
    assert "amount in GBP without its USD value" in refused(replace(SPEND, home_amount=None))
    euro_home = RowContext(home_currency="EUR", phone_region="DE")
    assert record_values(replace(FOREIGN, home_amount=None), euro_home)["home_amount"] == 10


# -- referrals and text ---------------------------------------------------------------------


@pytest.mark.parametrize(("referrer", "referred"), [("C1", "C1"), (" C1", "C1 ")])
def test_a_customer_cannot_refer_themselves(referrer: str, referred: str) -> None:
    record = replace(REFERRAL, referrer_external_id=referrer, referred_external_id=referred)
    assert refused(record) == "customer 'C1' cannot refer themselves"


def test_a_referral_needs_both_sides() -> None:
    assert refused(replace(REFERRAL, referred_external_id="  ")) == "field 'referred_id' is empty"


@pytest.mark.parametrize(
    ("record", "field", "limit"),
    [
        (replace(CUSTOMER, name="x" * 1_001), "name", 1_000),
        (replace(CUSTOMER, email="x" * 1_001), "email", 1_000),
        (replace(CUSTOMER, address_line2="x" * 1_001), "address_line2", 1_000),
        (replace(CONTACT, subject="x" * 10_001), "subject", 10_000),
        (replace(CONTACT, interaction_kind="x" * 41), "kind", 40),
        (replace(SPEND, channel="x" * 81), "channel", 80),
    ],
)
def test_text_over_its_limit_is_refused(record: Record, field: str, limit: int) -> None:
    length = limit + 1
    assert refused(record) == (
        f"field {field!r} is {length:,} characters long; at most {limit:,} are accepted"
    )


def test_text_up_to_its_limit_is_kept_and_blank_text_is_none() -> None:
    assert record_values(replace(CUSTOMER, name="x" * 1_000), CONTEXT)["name"] == "x" * 1_000
    subject = "x" * 10_000
    assert record_values(replace(CONTACT, subject=subject), CONTEXT)["subject"] == subject
    values = record_values(replace(CUSTOMER, name="  Ann  ", company=" \t ", email=""), CONTEXT)
    assert (values["name"], values["company"], values["email"]) == ("Ann", None, None)
    assert values["email_normalized"] is None


@pytest.mark.parametrize(
    "record",
    [
        replace(CUSTOMER, name="Ann\x00Lee"),
        replace(CONTACT, subject="hello\x00"),
        replace(SPEND, channel="ads\x00"),
    ],
)
def test_nul_characters_in_text_are_refused(record: Record) -> None:
    assert "contains a NUL character" in refused(record)


def test_required_text_may_not_be_blank() -> None:
    assert refused(replace(CONTACT, interaction_kind=" ")) == "field 'kind' is empty"
    assert refused(replace(SPEND, channel="")) == "field 'channel' is empty"


# -- content hash ---------------------------------------------------------------------------


def test_content_hash_is_stable_and_independent_of_key_order() -> None:
    values = record_values(SALE, CONTEXT)
    digest = content_hash(values)
    assert digest == content_hash(dict(reversed(values.items())))
    assert digest == content_hash(record_values(replace(SALE), CONTEXT))
    assert len(digest) == 32 and int(digest, 16) >= 0
    # Pinned: a different digest for the same values would make every stored row look
    # changed on the first run after an upgrade.
    assert digest == content_hash(
        {
            "amount": Decimal("19.99"),
            "currency": "USD",
            "customer_external_id": "C1",
            "home_amount": Decimal("19.99"),
            "occurred_at": WHEN,
            "transaction_kind": "sale",
        }
    )
    assert digest == PINNED_SALE_HASH


def changed(value: Any) -> Any:
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, Decimal):
        return value + Decimal("0.01")
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, date):
        return value + timedelta(days=1)
    if value is None:
        return "x"
    if isinstance(value, bool):
        return not value
    if isinstance(value, tuple):
        return (*value, "x")
    raise AssertionError(f"no change defined for {value!r}")


@pytest.mark.parametrize("record", RECORDS, ids=lambda record: type(record).__name__)
def test_content_hash_changes_with_every_column(record: Record) -> None:
    values = record_values(record, CONTEXT)
    digest = content_hash(values)
    for key, value in values.items():
        assert content_hash(values | {key: changed(value)}) != digest, key
        unknown = value is None or value is False or value == ()
        if not unknown:  # None, False and () all mean "unknown" and hash alike
            assert content_hash(values | {key: None}) != digest, key


def test_content_hash_tells_columns_apart() -> None:
    assert content_hash({"city": "Paris", "region": None}) != content_hash(
        {"city": None, "region": "Paris"}
    )
    assert content_hash({"name": "a", "company": "b"}) != content_hash(
        {"name": "b", "company": "a"}
    )


def test_line_items_are_stored_as_json_and_a_negative_line_is_refused() -> None:
    lines = (
        LineItem(2, Decimal("20.00"), Decimal("18.00"), "Mug", "MUG-1"),
        LineItem(1, Decimal("5.00")),
    )

    stored = record_values(replace(SALE, lines=lines), CONTEXT)["lines"]

    assert json.loads(stored) == [
        {
            "quantity": 2,
            "total": "20.00",
            "discounted_total": "18.00",
            "title": "Mug",
            "sku": "MUG-1",
        },
        {"quantity": 1, "total": "5.00", "discounted_total": None, "title": None, "sku": None},
    ]
    with pytest.raises(InvalidRecord, match="line total"):
        record_values(replace(SALE, lines=(LineItem(1, Decimal("-1")),)), CONTEXT)
