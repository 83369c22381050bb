"""The WooCommerce source (``type: woocommerce``): the REST API v3 with key and secret.

Streams, in dependency order: ``customers``, ``guests`` (orders with ``customer_id`` 0),
``orders`` (sales and refunds) and, when the YAML has referral rules, ``referrals``. Push
writes customer ``meta_data`` (:mod:`connectors.woocommerce.writer`).
"""

from __future__ import annotations

from collections.abc import Sequence

from config.models import WooCommerceSource
from connectors.base import Stream, Writer
from connectors.records import RecordKind
from connectors.referrals import ReferralReader
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.streams import (
    OrderFeed,
    WooCustomers,
    WooOrderStream,
    guests_mapper,
    orders_mapper,
    referrals_mapper,
)
from connectors.woocommerce.writer import MetaDataWriter

__all__ = ["WooCommerceConnector"]


class WooCommerceConnector:
    def __init__(self, source: WooCommerceSource, client: WooClient | None = None) -> None:
        self.system = source.name
        self.source = source
        self.client = client or WooClient(source)
        self.customers = WooCustomers(self.client, source.page_size, source.customers_every)

    def streams(self) -> Sequence[Stream]:
        def feed() -> OrderFeed:
            return OrderFeed(self.client, self.source.page_size)

        streams: list[Stream] = [
            self.customers,
            WooOrderStream("guests", RecordKind.CUSTOMER, feed(), guests_mapper),
            WooOrderStream("orders", RecordKind.TRANSACTION, feed(), orders_mapper(self.client)),
        ]
        if self.source.referrals.any:
            mapper = referrals_mapper(ReferralReader(self.source.referrals))
            streams.append(WooOrderStream("referrals", RecordKind.REFERRAL, feed(), mapper))
        return streams

    def writer(self) -> Writer | None:
        return MetaDataWriter(self.client, self.source.push.batch_size)
