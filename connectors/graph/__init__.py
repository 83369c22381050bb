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
from connectors.outlook.streams import managed_categories, outlook_streams

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
        self.managed = managed_categories(source)
        self._writer: GraphWriter | None = None

    def streams(self) -> Sequence[Stream]:
        return outlook_streams(self.mail, self.source, self.managed, self._now)

    def writer(self) -> Writer | None:
        if self._writer is None:
            self._writer = GraphWriter(self.client, self.source)
        return self._writer
