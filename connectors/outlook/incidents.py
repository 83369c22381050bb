"""Support incidents from the messages of one conversation, by the YAML rule.

An incident opens at a customer message while none is open. It closes at once when a
message carries the rule's "resolved" category, or when our reply is the last word and the
customer stays quiet for ``quiet_days``: a customer message after that silence opens the next
incident in the same conversation. The rule is pure (the moment "now" is a parameter), so the
Graph and EWS back-ends and the tests share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from config.models import SupportRule


@dataclass(frozen=True, slots=True)
class MailEvent:
    """One message of a conversation, reduced to what the rule needs."""

    message_id: str
    at: datetime
    inbound: bool
    customer: str | None
    """The customer's address (sender of an inbound message, recipient of an outbound one)."""
    subject: str | None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Incident:
    opened_by: str
    """Id of the customer message that opened it (stable: the incident's key)."""
    customer: str | None
    subject: str | None
    opened_at: datetime
    replies: int
    closed_at: datetime | None

    def cost(self, rule: SupportRule) -> Decimal:
        return rule.cost + rule.cost_per_reply * self.replies


@dataclass(slots=True)
class _Open:
    opener: MailEvent
    replies: int = 0
    last_customer_at: datetime | None = None
    last_reply_at: datetime | None = None

    def close(self, at: datetime | None) -> Incident:
        return Incident(
            self.opener.message_id,
            self.opener.customer,
            self.opener.subject,
            self.opener.at,
            self.replies,
            at,
        )


def split_incidents(
    events: Iterable[MailEvent], rule: SupportRule, now: datetime
) -> list[Incident]:
    """The incidents of one support conversation, oldest first (the last may be open)."""
    quiet = timedelta(days=rule.quiet_days)
    resolved = (rule.resolved_category or "").lower()
    incidents: list[Incident] = []
    current: _Open | None = None
    for event in sorted(events, key=lambda e: (e.at, e.message_id)):
        if current is not None and event.inbound:
            closed_at = _closed_at(current, event.at, quiet)
            if closed_at is not None:
                incidents.append(current.close(closed_at))
                current = None
        if current is None:
            if not event.inbound:
                continue  # we wrote first: an announcement, not a customer's request
            current = _Open(event, last_customer_at=event.at)
        elif event.inbound:
            current.last_customer_at = event.at
        else:
            current.replies += 1
            current.last_reply_at = event.at
        if resolved and resolved in (c.lower() for c in event.categories):
            incidents.append(current.close(event.at))
            current = None
    if current is not None:
        incidents.append(current.close(_closed_at(current, now, quiet)))
    return incidents


def _closed_at(current: _Open, moment: datetime, quiet: timedelta) -> datetime | None:
    """When the incident closed by ``moment``: our reply was the last word, then ``quiet``."""
    reply, asked = current.last_reply_at, current.last_customer_at
    if reply is None or (asked is not None and reply < asked) or moment - reply < quiet:
        return None
    return reply + quiet
