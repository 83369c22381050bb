"""Normalized match keys for customers: e-mail and phone in one canonical form each."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email


def normalize_email(raw: str | None) -> str | None:
    """The address in canonical form (IDNA domain, lower case), or None when invalid."""
    if not raw or "@" not in raw:
        return None
    try:
        address = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return address.normalized.lower()


def normalize_phone(raw: str | None, region: str) -> str | None:
    """The number in E.164 (``+15551234567``), or None when it is not a possible number.

    ``region`` is the country assumed for numbers written without a ``+`` country code.
    """
    if not raw or not any(ch.isdigit() for ch in raw):
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
