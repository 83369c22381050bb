"""From a source's YAML to its connector. New source types register here."""

from __future__ import annotations

from config.models import AppConfig, CsvSource, ShopifySource, SourceConfig, WooCommerceSource
from connectors.base import Connector, ConnectorContext
from connectors.csv import CsvConnector
from connectors.shopify import ShopifyConnector
from connectors.woocommerce import WooCommerceConnector


def build_connector(
    source: SourceConfig,
    app: AppConfig,
    context: ConnectorContext,  # noqa: ARG001 (CSV and the shops keep no OAuth tokens)
) -> Connector:
    """The connector for one configured source."""
    match source:
        case CsvSource():
            return CsvConnector(source, app)
        case ShopifySource():
            return ShopifyConnector(source)
        case WooCommerceSource():
            return WooCommerceConnector(source)
