"""From a source's YAML to its connector. New source types register here."""

from __future__ import annotations

from config.models import AppConfig, CsvSource, SourceConfig
from connectors.base import Connector
from connectors.csv import CsvConnector


def build_connector(source: SourceConfig, app: AppConfig) -> Connector:
    """The connector for one configured source."""
    match source:
        case CsvSource():
            return CsvConnector(source, app)
