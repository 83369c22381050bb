"""EWS as a :class:`connectors.outlook.streams.MailBackend`: SyncFolderItems and FindItem.

A folder is read with ``SyncFolderItems``, at most ``page_size`` (≤ 512) changes a call; the
cursor state holds the sync state. When Exchange refuses a stored state
(``ErrorInvalidSyncStateData``) the folder is read again from the start as a complete pass.
exchangelib's items are converted to Graph's JSON shape, so the records come out of the same
mapping for both back-ends. Message bodies are never requested.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from exchangelib import Q
from exchangelib.errors import ErrorInvalidSyncStateData, EWSError
from exchangelib.folders import BaseFolder, FolderCollection
from exchangelib.items import ID_ONLY
from exchangelib.properties import ConversationId, ItemId
from exchangelib.services import SyncFolderItems

from config.models import EWS_MAX_SYNC_CHANGES, EwsSource
from connectors.base import Cursor
from connectors.errors import SourceError
from connectors.ews.client import EwsClient, iso, translate
from connectors.outlook.streams import DeltaPage, MailView

log = logging.getLogger(__name__)

MAX_RESTARTS = 3
CONTACT_FIELDS = (
    "display_name",
    "given_name",
    "surname",
    "company_name",
    "email_addresses",
    "phone_numbers",
    "physical_addresses",
    "body",
    "categories",
    "datetime_created",
)
MESSAGE_FIELDS = (
    "subject",
    "author",
    "to_recipients",
    "cc_recipients",
    "datetime_received",
    "datetime_sent",
    "conversation_id",
    "categories",
)
ADDRESS_FIELDS = ("author", "to_recipients", "cc_recipients")
THREAD_FIELDS = ("conversation_id", "categories")
_WELL_KNOWN = {"inbox": "inbox", "sentitems": "sent", "archive": "archive_inbox"}
_PHONES = {"BusinessPhone": "businessPhones", "HomePhone": "homePhones"}
_ADDRESSES = {"Business": "businessAddress", "Home": "homeAddress"}


def _person(mailbox: Any) -> dict[str, Any] | None:
    if mailbox is None:
        return None
    return {"emailAddress": {"name": mailbox.name, "address": mailbox.email_address}}


def contact_json(item: Any) -> dict[str, Any]:
    """An exchangelib Contact in Graph's ``contact`` shape."""
    phones: dict[str, Any] = {"businessPhones": [], "homePhones": [], "mobilePhone": None}
    for phone in item.phone_numbers or []:
        if phone.label == "MobilePhone":
            phones["mobilePhone"] = phone.phone_number
        elif phone.label in _PHONES:
            phones[_PHONES[phone.label]].append(phone.phone_number)
    addresses = {}
    for address in item.physical_addresses or []:
        if address.label in _ADDRESSES:
            addresses[_ADDRESSES[address.label]] = {
                "street": address.street,
                "city": address.city,
                "state": address.state,
                "countryOrRegion": address.country,
                "postalCode": address.zipcode,
            }
    return {
        "id": item.id,
        "displayName": item.display_name,
        "givenName": item.given_name,
        "surname": item.surname,
        "companyName": item.company_name,
        "emailAddresses": [
            {"address": entry.email} for entry in item.email_addresses or [] if entry.email
        ],
        **phones,
        **addresses,
        "personalNotes": str(item.body) if item.body else "",
        "categories": list(item.categories or []),
        "createdDateTime": iso(item.datetime_created),
    }


def message_json(item: Any, folder_id: str) -> dict[str, Any]:
    """An exchangelib Message in Graph's ``message`` shape (no body)."""
    conversation = getattr(item, "conversation_id", None)
    return {
        "id": item.id,
        "subject": getattr(item, "subject", None),
        "from": _person(getattr(item, "author", None)),
        "toRecipients": [_person(r) for r in getattr(item, "to_recipients", None) or []],
        "ccRecipients": [_person(r) for r in getattr(item, "cc_recipients", None) or []],
        "receivedDateTime": iso(getattr(item, "datetime_received", None)),
        "sentDateTime": iso(getattr(item, "datetime_sent", None)),
        "conversationId": conversation.id if conversation is not None else None,
        "categories": list(getattr(item, "categories", None) or []),
        "parentFolderId": folder_id,
    }


class EwsMail:
    """Reads contacts and mail of the source's mailboxes through EWS."""

    def __init__(self, client: EwsClient, source: EwsSource) -> None:
        self.client = client
        self.source = source
        self.page_size = min(source.page_size, EWS_MAX_SYNC_CHANGES)

    def contact_folder(self, mailbox: str, name: str) -> BaseFolder:
        account = self.client.account(mailbox)
        try:
            if name.lower() == "contacts":
                return account.contacts
            return account.contacts / name
        except EWSError as error:
            raise SourceError(
                f"{mailbox} has no contact folder {name!r} ({error}); fix `contacts` in the "
                "source's YAML"
            ) from error
        except Exception as error:
            raise translate(error, f"{mailbox}: contact folder {name}") from error

    def _mail_folder(self, mailbox: str, name: str) -> BaseFolder:
        account = self.client.account(mailbox)
        try:
            if name.lower() in _WELL_KNOWN:
                folder: BaseFolder = getattr(account, _WELL_KNOWN[name.lower()])
                return folder
            return account.msg_folder_root / name
        except EWSError as error:
            raise SourceError(
                f"{mailbox} has no mail folder {name!r} ({error}); use inbox, sentitems, "
                "archive or a folder under the mailbox root"
            ) from error
        except Exception as error:
            raise translate(error, f"{mailbox}: mail folder {name}") from error

    def contact_pages(self, mailbox: str, folder: str, state: Cursor) -> Iterator[DeltaPage]:
        target = self.contact_folder(mailbox, folder)
        for page in self._sync(mailbox, target, CONTACT_FIELDS, state):
            items = [
                item if "@removed" in item else contact_json(item_object)
                for item, item_object in page
            ]
            yield self._page(items, page)

    def message_pages(
        self, mailbox: str, folder: str, state: Cursor, *, view: MailView
    ) -> Iterator[DeltaPage]:
        target = self._mail_folder(mailbox, folder)
        names = {"messages": MESSAGE_FIELDS, "addresses": ADDRESS_FIELDS}.get(view, THREAD_FIELDS)
        for page in self._sync(mailbox, target, names, state):
            items = [
                item if "@removed" in item else message_json(item_object, target.id)
                for item, item_object in page
            ]
            yield self._page(items, page)

    def _page(self, items: list[dict[str, Any]], page: _SyncPage) -> DeltaPage:
        return DeltaPage(items, page.state, page.full, page.complete, page.pass_id)

    def _sync(
        self, mailbox: str, folder: BaseFolder, names: Sequence[str], state: Cursor
    ) -> Iterator[_SyncPage]:
        """SyncFolderItems calls from ``state`` on; a refused state restarts the folder."""
        account = self.client.account(mailbox)
        fields = {
            f for f in folder.normalize_fields(fields=list(names)) if not f.field.is_attribute
        }
        sync_state = state.get("sync")
        full = bool(state.get("full", not sync_state))
        pass_id = str(state.get("pass") or uuid.uuid4().hex)
        restarts = 0
        while True:
            service = SyncFolderItems(account=account)
            try:
                changes = list(
                    service.call(
                        folder=folder,
                        shape=ID_ONLY,
                        additional_fields=fields,
                        sync_state=sync_state,
                        ignore=None,
                        max_changes_returned=self.page_size,
                        sync_scope=None,
                    )
                )
            except ErrorInvalidSyncStateData:
                if restarts >= MAX_RESTARTS:
                    raise
                restarts += 1
                log.warning(
                    "%s: the sync state of %s was refused; reading it again", mailbox, folder
                )
                sync_state, full, pass_id = None, True, uuid.uuid4().hex
                continue
            except Exception as error:
                raise translate(error, f"{mailbox}: SyncFolderItems") from error
            done = bool(service.includes_last_item_in_range) or service.sync_state == sync_state
            sync_state = service.sync_state
            page = _SyncPage(full, done and full, pass_id)
            for change_type, item in changes:
                if change_type == SyncFolderItems.DELETE and isinstance(item, ItemId):
                    page.append(({"id": item.id, "@removed": {"reason": "deleted"}}, item))
                elif change_type in (SyncFolderItems.CREATE, SyncFolderItems.UPDATE):
                    page.append(({"id": item.id}, item))
            page.state = (
                {"sync": sync_state}
                if done
                else {"sync": sync_state, "full": full, "pass": pass_id}
            )
            yield page
            if done:
                return

    def mail_folder_ids(self, mailbox: str, names: Sequence[str]) -> dict[str, str]:
        return {name: str(self._mail_folder(mailbox, name).id) for name in names}

    def conversations(
        self, mailbox: str, folders: Sequence[str], ids: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Each conversation's messages from the mailbox's conversation folders (FindItem)."""
        account = self.client.account(mailbox)
        targets = [self._mail_folder(mailbox, name) for name in folders]
        found: dict[str, list[dict[str, Any]]] = {}
        for conversation in ids:
            try:
                query = FolderCollection(account=account, folders=targets).filter(
                    Q(conversation_id=ConversationId(id=conversation))
                )
                items = list(query.only(*MESSAGE_FIELDS))
            except EWSError as error:
                log.warning("%s: conversation %s: %s", mailbox, conversation, error)
                continue
            except Exception as error:
                raise translate(error, f"{mailbox}: FindItem") from error
            found[conversation] = [message_json(item, "") for item in items]
        return found


class _SyncPage(list[tuple[dict[str, Any], Any]]):
    """One SyncFolderItems answer: (marker, exchangelib item) pairs and the state after it."""

    def __init__(self, full: bool, complete: bool, pass_id: str) -> None:
        super().__init__()
        self.full = full
        self.complete = complete
        self.pass_id = pass_id
        self.state: dict[str, Any] = {}
