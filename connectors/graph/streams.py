"""Graph streams: contacts per folder, correspondents, and conversations with incidents.

* **contacts** — one stream per configured (mailbox, contact folder), read with delta
  queries. A folder's first read, and a re-read after Graph expired its delta link (410
  ``syncStateNotFound``), is a *complete pass*: the stream says so (``full_refresh``) and ingest
  flags every contact that pass did not see as deleted, so a deletion made while the link was
  expired is not lost; contacts seen again are unchanged, never doubled.
* **correspondents** — the customers' e-mail addresses from the conversation folders, as
  *guest* customers (``email:ADDRESS``): the people messages are linked to; reconcile joins
  them to contacts and other systems by e-mail. Our own domains are never customers.
* **conversations** — one stream per conversation mailbox: every message with an external
  party as an interaction (sender, recipients, date, subject, conversation id, categories;
  the body preview only if the YAML asks), then the **support incidents** of the support
  conversations touched, per the YAML rule (:mod:`connectors.graph.incidents`). The stream's
  cursor keeps each folder's delta link and the ids of conversations still to evaluate or
  still open, so an open incident is looked at again every cycle until it closes.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from config.models import GRAPH_BATCH_SIZE, GraphSource
from connectors.base import Cursor, Page
from connectors.errors import SourceError
from connectors.graph.client import DELTA_GONE, GraphClient, delta_pages, mailbox_path
from connectors.graph.incidents import Incident, MailEvent, split_incidents
from connectors.http import HttpError
from connectors.notes_block import user_text
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
MAX_RESTARTS = 3
"""Expired links in a row before a folder's read is given up for this cycle."""
WELL_KNOWN_MAIL_FOLDERS = frozenset(
    {"inbox", "sentitems", "archive", "drafts", "deleteditems", "junkemail", "outbox"}
)
_STREAM_NAME_LIMIT = 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CONTACT_FIELDS = (
    "displayName,givenName,surname,companyName,emailAddresses,businessPhones,mobilePhone,"
    "homePhones,businessAddress,homeAddress,personalNotes,categories,createdDateTime"
)
_MESSAGE_FIELDS = (
    "subject,from,toRecipients,ccRecipients,receivedDateTime,sentDateTime,conversationId,"
    "categories,parentFolderId"
)
_ADDRESS_FIELDS = "from,toRecipients,ccRecipients"


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


class DeltaFolder:
    """Reads one folder's delta from its cursor state; restarts it when the link expired."""

    def __init__(self, client: GraphClient, mailbox: str, first: str) -> None:
        self.client = client
        self.mailbox = mailbox
        self.first = first

    def pages(self, state: Mapping[str, Any]) -> Iterator[DeltaPage]:
        link = state.get("link")
        full = bool(state.get("full", not link))
        pass_id = str(state.get("pass") or uuid.uuid4().hex)
        restarts = 0
        while True:
            try:
                for values, following, delta in delta_pages(
                    self.client, self.mailbox, self.first, link
                ):
                    if following:
                        after = {"link": following, "full": full, "pass": pass_id}
                        yield DeltaPage(values, after, full, False, pass_id)
                    else:
                        yield DeltaPage(values, {"link": delta}, full, full, pass_id)
                return
            except HttpError as error:
                if error.status != DELTA_GONE or restarts >= MAX_RESTARTS:
                    raise
                restarts += 1
                log.warning(
                    "%s: the delta link of %s expired (410); reading the folder again",
                    self.mailbox,
                    self.first.split("?")[0],
                )
                link, full, pass_id = None, True, uuid.uuid4().hex


class ContactFolderStream:
    """Contacts of one folder of one mailbox (see the module docstring)."""

    record_kind = RecordKind.CUSTOMER

    def __init__(self, client: GraphClient, mailbox: str, folder: str, managed: set[str]) -> None:
        self.client = client
        self.mailbox = mailbox
        self.folder = folder
        self.managed = managed
        self.name = stream_name("contacts", mailbox, folder)
        self._full = False

    @property
    def full_refresh(self) -> bool:
        """True while the stream is in a complete pass over the folder."""
        return self._full

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        folders = self.client.folder_ids(self.mailbox, "contactFolders")
        folder_id = folders.get(self.folder.lower())
        if folder_id is None:
            known = ", ".join(sorted(folders)) or "none"
            raise SourceError(
                f"{self.mailbox} has no contact folder {self.folder!r} (it has: {known}); fix "
                "`contacts` in the source's YAML"
            )
        first = (
            f"{mailbox_path(self.mailbox)}/contactFolders/{folder_id}/contacts/delta"
            f"?$select={_CONTACT_FIELDS}"
        ).lstrip("/")
        for page in DeltaFolder(self.client, self.mailbox, first).pages(cursor):
            self._full = page.full
            records = [contact_record(self.mailbox, item, self.managed) for item in page.items]
            yield Page(records, page.state, pass_complete=page.complete, pass_id=page.pass_id)


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


def mail_folder_ids(client: GraphClient, mailbox: str, names: Sequence[str]) -> dict[str, str]:
    """Folder name as configured -> folder id; well-known names are asked for directly."""
    found: dict[str, str] = {}
    listed: dict[str, str] | None = None
    for name in names:
        if name.lower() in WELL_KNOWN_MAIL_FOLDERS:
            folder = client.get(mailbox, f"{mailbox_path(mailbox)}/mailFolders/{name}".lstrip("/"))
            found[name] = str(folder["id"])
            continue
        listed = listed if listed is not None else client.folder_ids(mailbox, "mailFolders")
        if name.lower() not in listed:
            known = ", ".join(sorted(listed)) or "none"
            raise SourceError(
                f"{mailbox} has no mail folder {name!r} (well-known names: "
                f"{', '.join(sorted(WELL_KNOWN_MAIL_FOLDERS))}; display names: {known}); fix "
                "the source's YAML"
            )
        found[name] = listed[name.lower()]
    return found


def _message_url(mailbox: str, folder_id: str, fields: str) -> str:
    return f"{mailbox_path(mailbox)}/mailFolders/{folder_id}/messages/delta?$select={fields}"[1:]


class ConversationStream:
    """Messages of one mailbox's conversation folders, then its support incidents."""

    record_kind = RecordKind.INTERACTION
    full_refresh = False

    def __init__(
        self,
        client: GraphClient,
        source: GraphSource,
        mailbox: str,
        folders: Sequence[str],
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.source = source
        self.mailbox = mailbox
        self.folders = list(folders)
        self.name = stream_name("conversations", mailbox)
        self.parties = Parties(source.own_domains)
        self._now = now or (lambda: datetime.now(UTC))

    def _support_test(self) -> SupportTest:
        rule = self.source.support
        in_mailbox = self.mailbox.lower() in {m.lower() for m in rule.mailboxes}
        folder_ids = (
            frozenset(mail_folder_ids(self.client, self.mailbox, rule.folders).values())
            if rule.folders
            else frozenset()
        )
        return SupportTest(in_mailbox, folder_ids, rule.category)

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        support = self._support_test()
        folder_ids = mail_folder_ids(self.client, self.mailbox, self.folders)
        states: dict[str, Any] = dict(cursor.get("folders") or {})
        pending: list[str] = list(cursor.get("pending") or [])
        still_open: list[str] = list(cursor.get("open") or [])
        fields = _MESSAGE_FIELDS + (",bodyPreview" if self.source.body_preview else "")
        for name in self.folders:
            url = _message_url(self.mailbox, folder_ids[name], fields)
            for page in DeltaFolder(self.client, self.mailbox, url).pages(states.get(name, {})):
                records: list[SourceInteraction] = []
                for item in page.items:
                    record = message_record(
                        self.mailbox, item, self.parties, support, self.source.body_preview
                    )
                    if record is None:
                        continue
                    records.append(record)
                    if record.support and record.conversation_id:
                        pending.append(record.conversation_id)
                pending = list(dict.fromkeys(pending))
                states[name] = page.state
                yield Page(records, _cursor(states, pending, still_open))
        yield from self._incidents(states, pending, still_open)

    def _incidents(
        self, states: dict[str, Any], pending: list[str], still_open: list[str]
    ) -> Iterator[Page]:
        """Evaluate the touched and the open support conversations, a batch at a time."""
        todo = list(dict.fromkeys([*pending, *still_open]))
        now = self._now()
        select = "from,toRecipients,ccRecipients,receivedDateTime,sentDateTime,subject,categories"
        for start in range(0, len(todo), GRAPH_BATCH_SIZE):
            chunk = todo[start : start + GRAPH_BATCH_SIZE]
            requests = [
                {
                    "id": str(number),
                    "method": "GET",
                    "url": f"{mailbox_path(self.mailbox)}/messages?$filter=conversationId eq "
                    f"'{conversation.replace(chr(39), chr(39) * 2)}'&$select={select}",
                }
                for number, conversation in enumerate(chunk)
            ]
            answers = self.client.batch(self.mailbox, requests)
            records: list[SourceInteraction] = []
            done: set[str] = set()
            for number, conversation in enumerate(chunk):
                answer = answers.get(str(number))
                if answer is None or not answer.ok:
                    log.warning(
                        "%s: conversation %s not readable (%s); tried again next cycle",
                        self.mailbox,
                        conversation,
                        answer.error_text() if answer else "no answer",
                    )
                    continue
                done.add(conversation)
                messages = answer.body.get("value", []) if isinstance(answer.body, dict) else []
                incidents = split_incidents(self._events(messages), self.source.support, now)
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

    def __init__(self, client: GraphClient, source: GraphSource) -> None:
        self.client = client
        self.source = source
        self.parties = Parties(source.own_domains)

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        states: dict[str, Any] = dict(cursor)
        for entry in self.source.conversations:
            folder_ids = mail_folder_ids(self.client, entry.mailbox, entry.folders)
            for name in entry.folders:
                key = f"{entry.mailbox}/{name}"
                url = _message_url(entry.mailbox, folder_ids[name], _ADDRESS_FIELDS)
                reader = DeltaFolder(self.client, entry.mailbox, url)
                for page in reader.pages(states.get(key, {})):
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
