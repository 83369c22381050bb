"""Microsoft 365 mailboxes through Microsoft Graph (``type: graph``).

Streams, in dependency order: the contact folders (one stream each), the correspondents
(guest customers for the addresses in the conversation folders), the conversation folders'
messages (one stream each), then the support incidents (one stream per mailbox). The writer
puts the figures onto the contacts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from config.models import GraphSource
from connectors.base import Stream, Writer
from connectors.graph.backend import GraphMail
from connectors.graph.client import DEFAULT_TIMEOUT, GraphClient
from connectors.graph.writer import GraphWriter
from connectors.http import RetrySettings
from connectors.outlook.streams import (
    ContactFolderStream,
    CorrespondentStream,
    IncidentStream,
    MessageFolderStream,
)

__all__ = ["GraphConnector"]


class GraphConnector:
    def __init__(
        self,
        source: GraphSource,
        retry: RetrySettings = RetrySettings(),
        now: Callable[[], datetime] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.system = source.name
        self.source = source
        self.client = GraphClient(source, retry, timeout)
        self.mail = GraphMail(self.client, source)
        self._now = now
        rule = source.push.categories
        self.managed = {c.name for c in rule.values.values()} if rule is not None else set()
        self._writer: GraphWriter | None = None

    def streams(self) -> Sequence[Stream]:
        contacts: list[Stream] = [
            ContactFolderStream(self.mail, entry.mailbox, folder, self.managed)
            for entry in self.source.contacts
            for folder in entry.folders
        ]
        messages: list[Stream] = [
            MessageFolderStream(self.mail, self.source, entry.mailbox, folder)
            for entry in self.source.conversations
            for folder in entry.folders
        ]
        incidents: list[Stream] = [
            IncidentStream(self.mail, self.source, entry.mailbox, entry.folders, self._now)
            for entry in self.source.conversations
        ]
        people: list[Stream] = [CorrespondentStream(self.mail, self.source)] if messages else []
        return [*contacts, *people, *messages, *incidents]

    def writer(self) -> Writer | None:
        if self._writer is None:
            self._writer = GraphWriter(self.client, self.source)
        return self._writer
