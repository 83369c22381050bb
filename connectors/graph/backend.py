"""Graph as a :class:`connectors.outlook.streams.MailBackend`: delta queries and $batch reads.

A folder is read with its delta function; the cursor state holds the next or delta link.
When Graph answers a stored link with 410 (``syncStateNotFound``, its delta token cache
dropped the token), the folder is read again from the start as a complete pass.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from config.models import GraphSource
from connectors.base import Cursor
from connectors.errors import SourceError
from connectors.graph.client import (
    DELTA_GONE,
    IMMUTABLE_IDS,
    GraphClient,
    delta_pages,
    mailbox_path,
)
from connectors.http import HttpError
from connectors.outlook.streams import DeltaPage, MailView

log = logging.getLogger(__name__)

MAX_RESTARTS = 3
"""Expired links in a row before a folder's read is given up for this cycle."""
WELL_KNOWN_MAIL_FOLDERS = frozenset(
    {"inbox", "sentitems", "archive", "drafts", "deleteditems", "junkemail", "outbox"}
)
CONTACT_FIELDS = (
    "displayName,givenName,surname,companyName,emailAddresses,businessPhones,mobilePhone,"
    "homePhones,businessAddress,homeAddress,personalNotes,categories,createdDateTime"
)
MESSAGE_FIELDS = (
    "subject,from,toRecipients,ccRecipients,receivedDateTime,sentDateTime,conversationId,"
    "categories,parentFolderId"
)
ADDRESS_FIELDS = "from,toRecipients,ccRecipients"
THREAD_FIELDS = "conversationId,categories,parentFolderId"
CONVERSATION_FIELDS = (
    "from,toRecipients,ccRecipients,receivedDateTime,sentDateTime,subject,categories"
)


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
                        after = {"link": self._relative(following), "full": full, "pass": pass_id}
                        yield DeltaPage(values, after, full, False, pass_id)
                    else:
                        done = {"link": self._relative(delta or "")}
                        yield DeltaPage(values, done, full, full, pass_id)
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

    def _relative(self, link: str) -> str:
        """A link as the cursor keeps it: relative to ``graph_url``, so the cursor survives a
        new address for the same service (a proxy, the demo's stand-in on a new port)."""
        base = self.client.source.graph_url.rstrip("/") + "/"
        return link.removeprefix(base)


class GraphMail:
    """Reads contacts and mail of the source's mailboxes through Graph."""

    def __init__(self, client: GraphClient, source: GraphSource) -> None:
        self.client = client
        self.source = source
        self._mail_folders: dict[tuple[str, str], str] = {}

    def contact_pages(self, mailbox: str, folder: str, state: Cursor) -> Iterator[DeltaPage]:
        folders = self.client.folder_ids(mailbox, "contactFolders")
        folder_id = folders.get(folder.lower())
        if folder_id is None:
            known = ", ".join(sorted(folders)) or "none"
            raise SourceError(
                f"{mailbox} has no contact folder {folder!r} (it has: {known}); fix "
                "`contacts` in the source's YAML"
            )
        first = (
            f"{mailbox_path(mailbox)}/contactFolders/{folder_id}/contacts/delta"
            f"?$select={CONTACT_FIELDS}"
        ).lstrip("/")
        yield from DeltaFolder(self.client, mailbox, first).pages(state)

    def message_pages(
        self, mailbox: str, folder: str, state: Cursor, *, view: MailView
    ) -> Iterator[DeltaPage]:
        folder_id = self.mail_folder_ids(mailbox, [folder])[folder]
        if view == "messages":
            fields = MESSAGE_FIELDS + (",bodyPreview" if self.source.body_preview else "")
        else:
            fields = ADDRESS_FIELDS if view == "addresses" else THREAD_FIELDS
        first = f"{mailbox_path(mailbox)}/mailFolders/{folder_id}/messages/delta?$select={fields}"
        yield from DeltaFolder(self.client, mailbox, first.lstrip("/")).pages(state)

    def mail_folder_ids(self, mailbox: str, names: Sequence[str]) -> dict[str, str]:
        """Well-known names are asked for directly, display names looked up (cached)."""
        missing = [n for n in names if (mailbox.lower(), n) not in self._mail_folders]
        listed: dict[str, str] | None = None
        for name in missing:
            if name.lower() in WELL_KNOWN_MAIL_FOLDERS:
                path = f"{mailbox_path(mailbox)}/mailFolders/{name}".lstrip("/")
                self._mail_folders[mailbox.lower(), name] = str(
                    self.client.get(mailbox, path)["id"]
                )
                continue
            listed = (
                listed if listed is not None else self.client.folder_ids(mailbox, "mailFolders")
            )
            if name.lower() not in listed:
                known = ", ".join(sorted(listed)) or "none"
                raise SourceError(
                    f"{mailbox} has no mail folder {name!r} (well-known names: "
                    f"{', '.join(sorted(WELL_KNOWN_MAIL_FOLDERS))}; display names: {known}); "
                    "fix the source's YAML"
                )
            self._mail_folders[mailbox.lower(), name] = listed[name.lower()]
        return {name: self._mail_folders[mailbox.lower(), name] for name in names}

    def conversations(
        self, mailbox: str, folders: Sequence[str], ids: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Every message of each conversation in the mailbox, in $batch requests."""
        requests = [
            {
                "id": str(number),
                "method": "GET",
                "url": f"{mailbox_path(mailbox)}/messages?$filter=conversationId eq "
                f"'{conversation.replace(chr(39), chr(39) * 2)}'&$select={CONVERSATION_FIELDS}",
                "headers": {"Prefer": IMMUTABLE_IDS},
            }
            for number, conversation in enumerate(ids)
        ]
        answers = self.client.batch(mailbox, requests)
        found: dict[str, list[dict[str, Any]]] = {}
        for number, conversation in enumerate(ids):
            answer = answers.get(str(number))
            if answer is None or not answer.ok or not isinstance(answer.body, dict):
                log.warning(
                    "%s: conversation %s: %s",
                    mailbox,
                    conversation,
                    answer.error_text() if answer else "no answer",
                )
                continue
            found[conversation] = [m for m in answer.body.get("value", []) if isinstance(m, dict)]
        return found
