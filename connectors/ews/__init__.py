"""On-premises Exchange Server mailboxes through EWS with exchangelib (``type: ews``).

The same streams and the same pushed fields as the Graph back-end
(:mod:`connectors.outlook`), over SyncFolderItems, FindItem, GetItem and UpdateItem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from config.models import EwsSource
from connectors.base import Stream, Writer
from connectors.ews.backend import EwsMail
from connectors.ews.client import EwsClient
from connectors.ews.writer import EwsWriter
from connectors.outlook.streams import managed_categories, outlook_streams

__all__ = ["EwsConnector"]


class EwsConnector:
    def __init__(
        self,
        source: EwsSource,
        now: Callable[[], datetime] | None = None,
        *,
        timeout: float | None = None,
        retry_wait: float | None = None,
    ) -> None:
        self.system = source.name
        self.source = source
        self.client = EwsClient(source, timeout=timeout, retry_wait=retry_wait)
        self.mail = EwsMail(self.client, source)
        self._now = now
        self.managed = managed_categories(source)
        self._writer: EwsWriter | None = None

    def streams(self) -> Sequence[Stream]:
        return outlook_streams(self.mail, self.source, self.managed, self._now)

    def writer(self) -> Writer | None:
        if self._writer is None:
            self._writer = EwsWriter(self.client, self.mail, self.source)
        return self._writer
