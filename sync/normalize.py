"""Normalized match keys for customers: e-mail and phone in one canonical form each."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# RFC 5322 dot-atom of ASCII atext: the local part of nearly every real address.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_LOCAL_PART = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_MAX_LOCAL_PART = 64
_MAX_ADDRESS = 254
# North American numbers as exports write them, area code not starting with 0 or 1: for these
# phonenumbers' answer is "+1" and the ten digits (tests/test_normalize.py compares), at a
# fraction of its cost. With "+1", any default region; without, only "US": its national
# prefix (1, allowed as "1-") and international dialling prefix (011) cannot start the ten
# digits, so phonenumbers reads none there.
_NANP_INTERNATIONAL = re.compile(r"\+1 ?([2-9]\d\d) ?(\d{3}) ?(\d{4})", re.ASCII)
_NANP_US_NATIONAL = re.compile(
    r"(?:1-)?([2-9]\d\d)([-.]?)(\d{3})\2(\d{4})|\(([2-9]\d\d)\) (\d{3})-(\d{4})", re.ASCII
)


def normalize_email(raw: str | None) -> str | None:
    """The address in canonical form (IDNA domain, lower case), or None when invalid.

    ``email_validator`` decides; since it costs tens of microseconds an address (a first
    import reads hundreds of thousands), an ASCII address with a plain local part only has its
    domain validated, once per domain. Both paths give the same answer
    (tests/test_normalize.py).
    """
    if not raw or "@" not in raw:
        return None
    address = raw.strip()
    local_part, _, domain = address.rpartition("@")
    if (
        address.isascii()
        and len(address) <= _MAX_ADDRESS
        and len(local_part) <= _MAX_LOCAL_PART
        and _PLAIN_LOCAL_PART.fullmatch(local_part)
    ):
        normalized_domain = _normalized_domain(domain)
        return None if normalized_domain is None else f"{local_part}@{normalized_domain}".lower()
    return validated_email(address)


def validated_email(address: str) -> str | None:
    """``email_validator``'s normalized form of ``address``, lower case; None when invalid."""
    try:
        return validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


@lru_cache(maxsize=4096)
def _normalized_domain(domain: str) -> str | None:
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalize_phone(raw: str | None, region: str) -> str | None:
    """The number in E.164 (``+15551234567``), or None when it is not a possible number.

    ``region`` is the country assumed for numbers written without a ``+`` country code.
    """
    if not raw:
        return None
    fast = _NANP_INTERNATIONAL.fullmatch(raw) or (
        _NANP_US_NATIONAL.fullmatch(raw) if region == "US" else None
    )
    if fast is not None:
        return "+1" + "".join(part for part in fast.groups() if part and part[0].isdigit())
    if not any(ch.isdigit() for ch in raw):
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
