"""The WooCommerce source (``type: woocommerce``): the REST API v3 with key and secret.

Streams, in dependency order: ``customers``, then ``orders``, whose pages are read once per
cycle and give three ledger streams: ``orders`` (sales and refunds), ``guests`` (customers of
orders with ``customer_id`` 0) and, when the YAML has referral rules, ``referrals``. Push
writes customer ``meta_data`` (:mod:`connectors.woocommerce.writer`).
"""

from __future__ import annotations

from collections.abc import Sequence

from config.models import WooCommerceSource
from connectors.base import Stream, Writer
from connectors.referrals import ReferralReader
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.streams import OrderFeed, RefundReader, WooCustomers, WooOrders
from connectors.woocommerce.writer import MetaDataWriter

__all__ = ["WooCommerceConnector"]


class WooCommerceConnector:
    def __init__(self, source: WooCommerceSource, client: WooClient | None = None) -> None:
        self.system = source.name
        self.source = source
        self.client = client or WooClient(source)
        self.customers = WooCustomers(self.client, source.page_size, source.customers_every)

    def streams(self) -> Sequence[Stream]:
        rules = self.source.referrals
        orders = WooOrders(
            OrderFeed(self.client, self.source.page_size),
            RefundReader(self.client),
            ReferralReader(rules) if rules.any else None,
        )
        return [self.customers, orders]

    def writer(self) -> Writer | None:
        return MetaDataWriter(self.client, self.source.push.batch_size)
