"""The CSV source (``type: csv``): a folder of exports from another tool.

``customers.csv`` and ``transactions.csv`` are required; ``interactions.csv``,
``referrals.csv`` and ``marketing_spend.csv`` are read when present. Columns are found by
name (see :data:`connectors.csv.streams.FILES`), and the YAML may rename them.
"""

from __future__ import annotations

from collections.abc import Sequence

from config.models import AppConfig, CsvSource
from connectors.base import Stream, Writer
from connectors.csv.streams import FILES, CsvSettings, CsvStream
from connectors.csv.writer import UPDATES_FILENAME, CsvUpdatesWriter

__all__ = ["UPDATES_FILENAME", "CsvConnector"]


class CsvConnector:
    """Streams in dependency order (customers before what refers to them) and the writer."""

    def __init__(self, source: CsvSource, app: AppConfig) -> None:
        self.system = source.name
        self.source = source
        self.settings = CsvSettings(
            folder=source.path,
            page_size=source.page_size,
            delimiter=source.delimiter,
            encoding=source.encoding,
            date_format=source.date_format,
            home_currency=app.home_currency,
        )

    def streams(self) -> Sequence[Stream]:
        return [
            CsvStream(spec, self.settings, getattr(self.source.columns, spec.stream))
            for spec in FILES
        ]

    def writer(self) -> Writer | None:
        return CsvUpdatesWriter(self.source.path, self.source.push.batch_size)
