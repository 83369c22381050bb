"""Referrals as web shops show them, read with the rules from a source's YAML.

A shop has no referral object; the referral is evidence on the referred customer's order:

* ``code`` — a discount code that belongs to a customer: the YAML's ``codes`` table, or
  ``code_pattern`` whose first group is the referrer's customer id;
* ``attribute`` — an order attribute (Shopify custom attribute, WooCommerce order meta)
  holding a referral code or the referrer's customer id;
* ``note`` — the order note, matched by ``note_pattern``;
* ``landing_page`` — a parameter of the landing-page URL.

Each referred customer has one referral (its external id is the referred customer's id), so
a second order with evidence does not count the same friend twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from config.models import ReferralRules
from connectors.records import SourceReferral


@dataclass(frozen=True, slots=True)
class OrderEvidence:
    """The fields of one order that may show a referral."""

    order_id: str
    created_at: datetime
    customer_id: str | None
    """The referred customer's external id (a guest's ``guest:`` key); None if unknown."""
    discount_codes: Sequence[str] = ()
    attributes: Mapping[str, str] | None = None
    note: str | None = None
    landing_page: str | None = None


class ReferralReader:
    """Applies one source's :class:`ReferralRules` to orders."""

    def __init__(self, rules: ReferralRules) -> None:
        self.rules = rules
        self.codes = {code.strip().upper(): owner for code, owner in rules.codes.items()}
        self.code_pattern = re.compile(rules.code_pattern, re.I) if rules.code_pattern else None
        self.note_pattern = re.compile(rules.note_pattern, re.I) if rules.note_pattern else None

    def owner_of_code(self, code: str) -> str | None:
        """The customer id a referral code belongs to, if it is one."""
        code = code.strip()
        owner = self.codes.get(code.upper())
        if owner is not None:
            return owner
        if self.code_pattern is not None:
            match = self.code_pattern.fullmatch(code)
            if match:
                return match.group(1)
        return None

    def owner_of_value(self, value: str) -> str | None:
        """A code's owner, or the value itself when it is a customer id (digits)."""
        value = value.strip()
        owner = self.owner_of_code(value)
        if owner is None and value.isdigit():
            return value
        return owner

    def _found(self, order: OrderEvidence) -> tuple[str, str] | None:
        """(referrer id, method) from the first rule that finds one."""
        for code in order.discount_codes:
            owner = self.owner_of_code(code)
            if owner:
                return owner, "code"
        rules = self.rules
        if rules.order_attribute and order.attributes:
            value = order.attributes.get(rules.order_attribute)
            owner = self.owner_of_value(value) if value else None
            if owner:
                return owner, "attribute"
        if self.note_pattern is not None and order.note:
            match = self.note_pattern.search(order.note)
            owner = self.owner_of_value(match.group(1)) if match else None
            if owner:
                return owner, "note"
        if rules.landing_parameter and order.landing_page:
            values = parse_qs(urlsplit(order.landing_page).query).get(rules.landing_parameter)
            owner = self.owner_of_value(values[0]) if values else None
            if owner:
                return owner, "landing_page"
        return None

    def referral(self, order: OrderEvidence) -> SourceReferral | None:
        """The referral this order shows, or None (no evidence, unknown or own code)."""
        if order.customer_id is None:
            return None
        found = self._found(order)
        if found is None or found[0] == order.customer_id:
            return None
        referrer, method = found
        return SourceReferral(
            external_id=order.customer_id,
            referrer_external_id=referrer,
            referred_external_id=order.customer_id,
            occurred_at=order.created_at,
            method=method,
            first_order_external_id=order.order_id,
        )
