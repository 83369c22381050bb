"""The fast path of normalize_email agrees with email_validator everywhere."""

from __future__ import annotations

import phonenumbers
import pytest

from sync.normalize import normalize_email, normalize_phone, validated_email

ADDRESSES = [
    "jane.doe@acme.com",
    "Jane.Doe@ACME.COM",
    "  jane@acme.com  ",
    "j+tag@gmail.com",
    "o'brien@example-shop.co.uk",
    "a@b.c",
    ".jane@acme.com",
    "jane.@acme.com",
    "ja..ne@acme.com",
    "jane@acme..com",
    "jane@-acme.com",
    "jane@acme-.com",
    "jane@acme",
    "jane@localhost",
    "jane@shop.test",
    "jane@shop.invalid",
    "jane@shop.local",
    "jane@123.456",
    "jane@[192.168.0.1]",
    '"jane doe"@acme.com',
    "jane doe@acme.com",
    "jane@acme.com.",
    "jane@@acme.com",
    "@acme.com",
    "jane@",
    "x" * 64 + "@acme.com",
    "x" * 65 + "@acme.com",
    "x@" + "a" * 63 + ".com",
    "x@" + "a" * 64 + ".com",
    "x@" + ".".join(["a" * 60] * 4) + ".com",
    "y" * 60 + "@" + ".".join(["b" * 50] * 4) + ".com",
    "jürgen@müller.de",
    "jane@müller.de",
    "JANE@MÜLLER.DE",
    "jane@xn--mller-kva.de",
    "jane@acme.c0m",
    "jane@acme.123",
    "jane@ac_me.com",
    "{jane}@acme.com",
    "jane\u200b@acme.com",
    "jane@acme.com\u200b",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_fast_path_agrees_with_email_validator(address: str) -> None:
    assert normalize_email(address) == validated_email(address.strip())


def test_normalized_addresses() -> None:
    assert normalize_email("Jane.Doe@ACME.COM") == "jane.doe@acme.com"
    assert normalize_email("jane@xn--mller-kva.de") == "jane@müller.de"
    assert normalize_email("jane@localhost") is None
    assert normalize_email("not an address") is None
    assert normalize_email(None) is None


def test_phone_in_e164() -> None:
    assert normalize_phone("(415) 555-2671", "US") == "+14155552671"
    assert normalize_phone("+44 20 7946 0958", "US") == "+442079460958"
    assert normalize_phone("no digits", "US") is None


def _phonenumbers_e164(raw: str, region: str) -> str | None:
    """What phonenumbers alone says, without the fast path."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


NANP_SHAPES = [
    "{a}-{e}-{n}",
    "{a}{e}{n}",
    "({a}) {e}-{n}",
    "{a}.{e}.{n}",
    "1-{a}-{e}-{n}",
    "1-{a}{e}{n}",
    "1-{a}.{e}.{n}",
    "+1 {a} {e} {n}",
    "+1{a}{e}{n}",
    "+1 {a}{e} {n}",
    "1{a}{e}{n}",
    "{a}-{e}.{n}",
    "({a}){e}-{n}",
    "+1-{a}-{e}-{n}",
    "011 {a} {e} {n}",
    "{a} {e} {n}",
]


@pytest.mark.parametrize("region", ["US", "CA", "GB", "DE"])
def test_north_american_fast_path_agrees_with_phonenumbers(region: str) -> None:
    area_codes = ["011", "100", "199", "200", "202", "415", "800", "911", "999", "055"]
    exchanges = ["000", "100", "555", "911"]
    numbers = ["0000", "2671", "9999"]
    for shape in NANP_SHAPES:
        for a in area_codes:
            for e in exchanges:
                for n in numbers:
                    raw = shape.format(a=a, e=e, n=n)
                    assert normalize_phone(raw, region) == _phonenumbers_e164(raw, region), raw
    # digits of other scripts (here Arabic-Indic) are not the fast path's
    arabic = "".join(
        chr(0x0660 + int(digit)) if digit.isdigit() else digit for digit in "415-555-2671"
    )
    assert normalize_phone(arabic, "US") == _phonenumbers_e164(arabic, "US")
