"""From a source's YAML to its connector. New source types register here."""

from __future__ import annotations

from config.models import (
    AppConfig,
    CsvSource,
    EwsSource,
    GraphSource,
    QuickBooksSource,
    ShopifySource,
    SourceConfig,
    WooCommerceSource,
)
from connectors.base import Connector, ConnectorContext
from connectors.csv import CsvConnector
from connectors.ews import EwsConnector
from connectors.graph import GraphConnector
from connectors.quickbooks import QuickBooksConnector
from connectors.shopify import ShopifyConnector
from connectors.woocommerce import WooCommerceConnector


def build_connector(source: SourceConfig, app: AppConfig, context: ConnectorContext) -> Connector:
    """The connector for one configured source."""
    match source:
        case CsvSource():
            return CsvConnector(source, app)
        case QuickBooksSource():
            return QuickBooksConnector(source, app, context)
        case GraphSource():
            return GraphConnector(source)
        case EwsSource():
            return EwsConnector(source)
        case ShopifySource():
            return ShopifyConnector(source)
        case WooCommerceSource():
            return WooCommerceConnector(source)
