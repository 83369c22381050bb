"""Match features of a source customer: the cleaned columns the comparisons read.

Pure functions over plain values, no database: names split and folded to ASCII lower case
(``nameparser`` when only a full name is known), first names mapped to a canonical form so
nicknames meet, e-mail with its company domain (free-mail providers are no evidence of a
company), phone in E.164 plus its last seven digits, company names without
legal suffixes, address line reduced to its tokens with the street number apart.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from nameparser import HumanName

from sync.identity.nicknames import name_groups

FEATURE_COLUMNS = (
    "unique_id",
    "first_name",
    "last_name",
    "first_canonical",
    "first_groups",
    "email",
    "email_domain",
    "phone",
    "phone_last7",
    "company",
    "postcode",
    "street_number",
    "street",
    "city",
)

FREE_MAIL_DOMAINS = frozenset(
    {
        "aol.com",
        "gmail.com",
        "googlemail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "hotmail.com",
        "hotmail.co.uk",
        "icloud.com",
        "live.com",
        "mac.com",
        "me.com",
        "msn.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "web.de",
        "yahoo.com",
        "yahoo.co.uk",
        "ymail.com",
        "zoho.com",
        "mail.com",
    }
)
"""Providers anyone can sign up with: sharing one says nothing about sharing an employer."""

LEGAL_SUFFIXES = frozenset(
    {
        "ag",
        "bv",
        "co",
        "company",
        "corp",
        "corporation",
        "gmbh",
        "inc",
        "incorporated",
        "limited",
        "llc",
        "llp",
        "lp",
        "ltd",
        "nv",
        "plc",
        "pty",
        "sa",
        "sarl",
        "srl",
    }
)

_STREET_WORDS = {
    "avenue": "ave",
    "boulevard": "blvd",
    "circle": "cir",
    "court": "ct",
    "drive": "dr",
    "highway": "hwy",
    "lane": "ln",
    "parkway": "pkwy",
    "place": "pl",
    "road": "rd",
    "square": "sq",
    "street": "st",
    "terrace": "ter",
    "trail": "trl",
}
_NOT_WORD = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class CustomerInput:
    """What the features are made from: a source customer's stored, normalized fields."""

    unique_id: int
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    email: str | None = None
    phone: str | None = None
    address_line1: str | None = None
    postcode: str | None = None
    city: str | None = None


@lru_cache(maxsize=1 << 16)
def fold(text: str | None) -> str | None:
    """ASCII lower case with punctuation as spaces and single spaces; None when empty.

    Cached: names, cities and companies repeat across a ledger's records.
    """
    if not text:
        return None
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = _SPACES.sub(" ", _NOT_WORD.sub(" ", ascii_text.lower().replace("&", " "))).strip()
    return folded or None


def company_key(company: str | None) -> str | None:
    """The company name without legal suffixes or a leading "the": "Acme Ltd." -> "acme"."""
    folded = fold(company)
    if folded is None:
        return None
    words = [word for word in folded.split(" ") if word not in LEGAL_SUFFIXES]
    if words and words[0] == "the":
        words = words[1:]
    return " ".join(words) or folded


def person_names(item: CustomerInput) -> tuple[str | None, str | None]:
    """(first, last) folded; parsed from the full name when the parts are missing.

    A name that is just the company's name (a company record) gives no person names.
    """
    first, last = fold(item.first_name), fold(item.last_name)
    if first is None and last is None and item.name:
        if company_key(item.name) == company_key(item.company):
            return None, None
        parsed = HumanName(item.name)
        first, last = fold(parsed.first), fold(parsed.last)
    if first is not None:
        first = first.split(" ")[0]
    return first, last


def street_parts(line: str | None) -> tuple[str | None, str | None]:
    """(street number, street words with common abbreviations) of an address line."""
    folded = fold(line)
    if folded is None:
        return None, None
    words = [_STREET_WORDS.get(word, word) for word in folded.split(" ")]
    number = words[0] if words[0][:1].isdigit() else None
    street = " ".join(words[1:] if number else words) or None
    return number, street


def features(item: CustomerInput) -> dict[str, object]:
    first, last = person_names(item)
    groups = sorted(name_groups(first)) if first else None
    email = item.email.lower() if item.email else None
    domain = email.rsplit("@", 1)[1] if email and "@" in email else None
    if domain in FREE_MAIL_DOMAINS:
        domain = None
    digits = "".join(ch for ch in item.phone or "" if ch.isdigit())
    number, street = street_parts(item.address_line1)
    postcode = (item.postcode or "").replace(" ", "").upper() or None
    return {
        "unique_id": item.unique_id,
        "first_name": first,
        "last_name": last,
        "first_canonical": groups[0] if groups else None,
        "first_groups": groups,
        "email": email,
        "email_domain": domain,
        "phone": item.phone or None,
        "phone_last7": digits[-7:] if len(digits) >= 7 else None,
        "company": company_key(item.company),
        "postcode": postcode,
        "street_number": number,
        "street": street,
        "city": fold(item.city),
    }


def feature_rows(items: Iterable[CustomerInput]) -> list[dict[str, object]]:
    return [features(item) for item in items]
