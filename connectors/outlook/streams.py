"""Outlook streams, the same for Graph and EWS: contacts, correspondents, conversations.

* **contacts** — one stream per configured (mailbox, contact folder), read incrementally
  (Graph delta queries, EWS SyncFolderItems). A folder's first read, and a re-read after the
  server dropped the sync state (Graph: 410 ``syncStateNotFound``; EWS:
  ``ErrorInvalidSyncStateData``), is a *complete pass*: its pages say so (``Page.full_pass``)
  and ingest flags every contact that pass did not see as deleted, so a deletion made while
  the state was lost is not missed; contacts seen again are unchanged, never doubled.
* **correspondents** — the customers' e-mail addresses from the conversation folders, as
  *guest* customers (``email:ADDRESS``): the people messages are linked to; reconcile joins
  them to contacts and other systems by e-mail. Our own domains are never customers.
* **messages** — one stream per conversation folder: every message with an external party as
  an interaction (sender, recipients, date, subject, conversation id, categories; the body
  preview only if the YAML asks). Complete passes as for contacts.
* **incidents** — one stream per conversation mailbox: the **support incidents** of the
  support conversations touched, per the YAML rule (:mod:`connectors.outlook.incidents`),
  evaluated from each whole conversation. Its cursor keeps its own sync states and the ids of
  conversations still to evaluate or still open, so an open incident is looked at again
  every cycle until it closes.

Items travel in Graph's JSON shape (``contact``, ``message``); the EWS back-end converts
exchangelib's items to it, so the mapping to records exists once. A back-end is a
:class:`MailBackend`: it reads folders page by page and fetches whole conversations.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from config.models import OutlookSource
from connectors.base import Cursor, Page, Stream
from connectors.errors import SourceError
from connectors.notes_block import user_text
from connectors.outlook.incidents import Incident, MailEvent, split_incidents
from connectors.records import (
    Direction,
    RecordKind,
    SourceCustomer,
    SourceInteraction,
)

log = logging.getLogger(__name__)

GUEST_PREFIX = "email:"
INCIDENT_KIND = "support_incident"
MESSAGE_KIND = "email"
CONVERSATION_CHUNK = 20
"""Support conversations evaluated per page of incidents (one Graph $batch)."""
_STREAM_NAME_LIMIT = 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stream_name(kind: str, *parts: str) -> str:
    """A readable stream name, or a stable short one when the readable one is too long."""
    name = f"{kind}:{'/'.join(parts)}"
    if len(name) <= _STREAM_NAME_LIMIT:
        return name
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:16]
    return f"{kind}:{digest}"


def guest_id(address: str) -> str:
    return GUEST_PREFIX + address.strip().lower()


def _moment(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _addresses(recipients: Any) -> list[str]:
    found = []
    for recipient in recipients if isinstance(recipients, list) else []:
        email = (recipient or {}).get("emailAddress") or {}
        address = str(email.get("address") or "").strip().lower()
        if address:
            found.append(address)
    return found


class Parties:
    """Who is on which side of a message: our own domains, or a customer."""

    def __init__(self, own_domains: Sequence[str]) -> None:
        self.own = tuple(own_domains)

    def internal(self, address: str) -> bool:
        domain = address.rpartition("@")[2].lower()
        return any(domain == own or domain.endswith("." + own) for own in self.own)

    def of(self, message: Mapping[str, Any]) -> tuple[bool, str | None, list[str]]:
        """(inbound, the customer, every external address) of a message."""
        sender = (_addresses([message.get("from")]) or [""])[0]
        recipients = _addresses(message.get("toRecipients")) + _addresses(
            message.get("ccRecipients")
        )
        external = [a for a in [sender, *recipients] if a and not self.internal(a)]
        if sender and not self.internal(sender):
            return True, sender, external
        return False, (external[0] if external else None), external


def split_contact_id(external_id: str) -> tuple[str, str]:
    """(mailbox, the server's contact id) of a contact's external id ``mailbox:id``."""
    mailbox, _, contact_id = external_id.partition(":")
    return mailbox, contact_id


def contact_record(mailbox: str, body: Mapping[str, Any], managed: set[str]) -> SourceCustomer:
    """A Graph contact as a source customer; our own categories are left out of its labels."""
    external_id = f"{mailbox}:{body['id']}"
    if "@removed" in body:
        return SourceCustomer(external_id, deleted=True)
    emails = [
        str(e.get("address")).strip()
        for e in body.get("emailAddresses") or []
        if isinstance(e, dict) and e.get("address")
    ]
    phones = [
        *(body.get("businessPhones") or []),
        *([body["mobilePhone"]] if body.get("mobilePhone") else []),
        *(body.get("homePhones") or []),
    ]
    address = next(
        (
            a
            for a in (body.get("businessAddress"), body.get("homeAddress"))
            if isinstance(a, dict) and any(a.values())
        ),
        {},
    )
    street = str(address.get("street") or "").split("\n", 1)
    return SourceCustomer(
        external_id,
        name=body.get("displayName") or None,
        first_name=body.get("givenName") or None,
        last_name=body.get("surname") or None,
        company=body.get("companyName") or None,
        email=emails[0] if emails else None,
        phone=str(phones[0]) if phones else None,
        address_line1=street[0] or None,
        address_line2=street[1] if len(street) > 1 else None,
        city=address.get("city") or None,
        postcode=address.get("postalCode") or None,
        region=address.get("state") or None,
        country=address.get("countryOrRegion") or None,
        created_at=_moment(body.get("createdDateTime")),
        notes=user_text(body.get("personalNotes")) or None,
        labels=tuple(c for c in body.get("categories") or [] if c not in managed),
    )


@dataclass(frozen=True, slots=True)
class SupportTest:
    """Whether a message makes its conversation a support one (mailbox, folder, category)."""

    mailbox: bool
    folder_ids: frozenset[str]
    category: str | None

    def __call__(self, message: Mapping[str, Any]) -> bool:
        if self.mailbox or message.get("parentFolderId") in self.folder_ids:
            return True
        wanted = (self.category or "").lower()
        return bool(wanted) and wanted in (str(c).lower() for c in message.get("categories") or [])


@dataclass(frozen=True, slots=True)
class DeltaPage:
    """One page of a folder's delta, the folder's cursor state after it, and the pass."""

    items: list[dict[str, Any]]
    state: dict[str, Any]
    full: bool
    """Part of a complete pass over the folder (its first read, or a re-read after a 410)."""
    complete: bool
    """The last page of a complete pass."""
    pass_id: str


MailView = Literal["messages", "addresses", "threads"]
"""What a read of messages needs: everything kept of a message, the parties only, or only
the conversation id, folder and categories (to find the support conversations)."""


class MailBackend(Protocol):
    """How one back-end reads mailboxes; items come in Graph's JSON shape."""

    def contact_pages(self, mailbox: str, folder: str, state: Cursor) -> Iterator[DeltaPage]:
        """The changes of a contact folder (by display name) from ``state`` on."""
        ...

    def message_pages(
        self, mailbox: str, folder: str, state: Cursor, *, view: MailView
    ) -> Iterator[DeltaPage]:
        """The changes of a mail folder (well-known or display name) from ``state`` on, with
        the fields ``view`` needs (never the body)."""
        ...

    def mail_folder_ids(self, mailbox: str, names: Sequence[str]) -> dict[str, str]:
        """Mail folder name as configured -> the id messages carry in ``parentFolderId``."""
        ...

    def conversations(
        self, mailbox: str, folders: Sequence[str], ids: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The messages of each conversation; one that could not be read is left out (and
        tried again next cycle)."""
        ...


class ContactFolderStream:
    """Contacts of one folder of one mailbox (see the module docstring)."""

    record_kind = RecordKind.CUSTOMER
    full_refresh = False

    def __init__(self, backend: MailBackend, mailbox: str, folder: str, managed: set[str]) -> None:
        self.backend = backend
        self.mailbox = mailbox
        self.folder = folder
        self.managed = managed
        self.name = stream_name("contacts", mailbox, folder)

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        for page in self.backend.contact_pages(self.mailbox, self.folder, cursor):
            records = [contact_record(self.mailbox, item, self.managed) for item in page.items]
            yield Page(
                records,
                page.state,
                pass_complete=page.complete,
                pass_id=page.pass_id,
                full_pass=page.full,
            )


def message_record(
    mailbox: str,
    message: Mapping[str, Any],
    parties: Parties,
    support: SupportTest,
    preview: bool,
) -> SourceInteraction | None:
    """A message with a customer as an interaction; None for internal mail."""
    external_id = f"{mailbox}:{message['id']}"
    if "@removed" in message:
        return SourceInteraction(external_id, None, _EPOCH, MESSAGE_KIND, deleted=True)
    inbound, customer, _ = parties.of(message)
    if customer is None:
        return None
    at = _moment(message.get("receivedDateTime")) or _moment(message.get("sentDateTime"))
    return SourceInteraction(
        external_id,
        guest_id(customer),
        at or _EPOCH,
        MESSAGE_KIND,
        subject=message.get("subject") or None,
        direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        conversation_id=message.get("conversationId") or None,
        support=support(message),
        labels=tuple(str(c) for c in message.get("categories") or []),
        preview=(message.get("bodyPreview") or None) if preview else None,
    )


def support_test(backend: MailBackend, source: OutlookSource, mailbox: str) -> SupportTest:
    """The YAML's support rule for the messages of one mailbox."""
    rule = source.support
    in_mailbox = mailbox.lower() in {m.lower() for m in rule.mailboxes}
    folder_ids: set[str] = set()
    for name in rule.folders:  # a support folder need not exist in every mailbox
        try:
            folder_ids.update(backend.mail_folder_ids(mailbox, [name]).values())
        except SourceError:
            continue
    return SupportTest(in_mailbox, frozenset(folder_ids), rule.category)


class MessageFolderStream:
    """The messages with a customer in one mail folder of one mailbox.

    Like a contact folder, a first read and a re-read after an expired sync state are
    complete passes, so a message deleted while the state was lost is flagged deleted too.
    """

    record_kind = RecordKind.INTERACTION
    full_refresh = False

    def __init__(
        self, backend: MailBackend, source: OutlookSource, mailbox: str, folder: str
    ) -> None:
        self.backend = backend
        self.source = source
        self.mailbox = mailbox
        self.folder = folder
        self.name = stream_name("messages", mailbox, folder)
        self.parties = Parties(source.own_domains)

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        support = support_test(self.backend, self.source, self.mailbox)
        preview = self.source.body_preview
        reader = self.backend.message_pages(self.mailbox, self.folder, cursor, view="messages")
        for page in reader:
            records = [
                record
                for item in page.items
                if (record := message_record(self.mailbox, item, self.parties, support, preview))
            ]
            yield Page(
                records,
                page.state,
                pass_complete=page.complete,
                pass_id=page.pass_id,
                full_pass=page.full,
            )


class IncidentStream:
    """The support incidents of one mailbox, per the YAML rule.

    Reads the conversation folders' changes (ids, folders and categories only) to learn which
    support conversations were touched, then evaluates each of them, and every one still
    open, from all its messages. Its cursor keeps its own sync states, the conversations not
    evaluated yet and those still open.
    """

    record_kind = RecordKind.INTERACTION
    full_refresh = False

    def __init__(
        self,
        backend: MailBackend,
        source: OutlookSource,
        mailbox: str,
        folders: Sequence[str],
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.backend = backend
        self.source = source
        self.mailbox = mailbox
        self.folders = list(folders)
        self.name = stream_name("incidents", mailbox)
        self.parties = Parties(source.own_domains)
        self._now = now or (lambda: datetime.now(UTC))

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        support = support_test(self.backend, self.source, self.mailbox)
        states: dict[str, Any] = dict(cursor.get("folders") or {})
        pending: list[str] = list(cursor.get("pending") or [])
        still_open: list[str] = list(cursor.get("open") or [])
        for name in self.folders:
            state = states.get(name, {})
            for page in self.backend.message_pages(self.mailbox, name, state, view="threads"):
                pending += [
                    str(item["conversationId"])
                    for item in page.items
                    if "@removed" not in item and item.get("conversationId") and support(item)
                ]
                pending = list(dict.fromkeys(pending))
                states[name] = page.state
                yield Page([], _cursor(states, pending, still_open))
        yield from self._incidents(states, pending, still_open)

    def _incidents(
        self, states: dict[str, Any], pending: list[str], still_open: list[str]
    ) -> Iterator[Page]:
        """Evaluate the touched and the open support conversations, a batch at a time."""
        todo = list(dict.fromkeys([*pending, *still_open]))
        now = self._now()
        for start in range(0, len(todo), CONVERSATION_CHUNK):
            chunk = todo[start : start + CONVERSATION_CHUNK]
            found = self.backend.conversations(self.mailbox, self.folders, chunk)
            records: list[SourceInteraction] = []
            done: set[str] = set()
            for conversation in chunk:
                if conversation not in found:
                    log.warning(
                        "%s: conversation %s not readable now; tried again next cycle",
                        self.mailbox,
                        conversation,
                    )
                    continue
                done.add(conversation)
                incidents = split_incidents(
                    self._events(found[conversation]), self.source.support, now
                )
                records.extend(self._incident_record(conversation, i) for i in incidents)
                if incidents and incidents[-1].closed_at is None:
                    still_open.append(conversation)
                elif conversation in still_open:
                    still_open.remove(conversation)
            pending = [c for c in pending if c not in done]
            still_open = list(dict.fromkeys(still_open))
            yield Page(
                [r for r in records if r.customer_external_id],
                _cursor(states, pending, still_open),
            )

    def _events(self, messages: Sequence[Mapping[str, Any]]) -> list[MailEvent]:
        events = []
        for message in messages:
            inbound, customer, _ = self.parties.of(message)
            at = _moment(message.get("receivedDateTime")) or _moment(message.get("sentDateTime"))
            if at is None or customer is None:
                continue
            events.append(
                MailEvent(
                    str(message.get("id")),
                    at,
                    inbound,
                    customer,
                    message.get("subject") or None,
                    tuple(str(c) for c in message.get("categories") or []),
                )
            )
        return events

    def _incident_record(self, conversation: str, incident: Incident) -> SourceInteraction:
        rule = self.source.support
        return SourceInteraction(
            f"incident:{self.mailbox}:{incident.opened_by}",
            guest_id(incident.customer) if incident.customer else None,
            incident.opened_at,
            INCIDENT_KIND,
            subject=incident.subject,
            cost=incident.cost(rule),
            direction=Direction.INBOUND,
            conversation_id=conversation,
            support=True,
            labels=("open",) if incident.closed_at is None else ("closed",),
        )


def _cursor(states: Mapping[str, Any], pending: list[str], still_open: list[str]) -> Cursor:
    return {"folders": dict(states), "pending": list(pending), "open": list(still_open)}


class CorrespondentStream:
    """Customers' addresses from every conversation folder, as guest customers."""

    record_kind = RecordKind.CUSTOMER
    full_refresh = False
    name = "correspondents"

    def __init__(self, backend: MailBackend, source: OutlookSource) -> None:
        self.backend = backend
        self.source = source
        self.parties = Parties(source.own_domains)

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        states: dict[str, Any] = dict(cursor)
        for entry in self.source.conversations:
            for name in entry.folders:
                key = f"{entry.mailbox}/{name}"
                state = states.get(key, {})
                reader = self.backend.message_pages(entry.mailbox, name, state, view="addresses")
                for page in reader:
                    seen: dict[str, SourceCustomer] = {}
                    for item in page.items:
                        if "@removed" in item:
                            continue
                        for address in self.parties.of(item)[2]:
                            seen.setdefault(
                                address,
                                SourceCustomer(guest_id(address), email=address, guest=True),
                            )
                    states[key] = page.state
                    yield Page(list(seen.values()), dict(states))


def managed_categories(source: OutlookSource) -> set[str]:
    """The category names clm-sync sets (and may take off again) on contacts."""
    rule = source.push.categories
    return {c.name for c in rule.values.values()} if rule is not None else set()


def outlook_streams(
    mail: MailBackend,
    source: OutlookSource,
    managed: set[str],
    now: Callable[[], datetime] | None,
) -> list[Stream]:
    """The streams of an Outlook source, the same for every back-end, in dependency order:
    contacts, correspondents, messages, then the incidents built from them."""
    contacts: list[Stream] = [
        ContactFolderStream(mail, entry.mailbox, folder, managed)
        for entry in source.contacts
        for folder in entry.folders
    ]
    messages: list[Stream] = [
        MessageFolderStream(mail, source, entry.mailbox, folder)
        for entry in source.conversations
        for folder in entry.folders
    ]
    incidents: list[Stream] = [
        IncidentStream(mail, source, entry.mailbox, entry.folders, now)
        for entry in source.conversations
    ]
    people: list[Stream] = [CorrespondentStream(mail, source)] if messages else []
    return [*contacts, *people, *messages, *incidents]
