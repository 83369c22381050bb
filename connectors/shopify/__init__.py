"""The Shopify source (``type: shopify``): the GraphQL Admin API, pinned to one version.

Streams, in dependency order: ``customers``, ``guests`` (orders without an account),
``orders`` (sales and refunds) and, when the YAML has referral rules, ``referrals``. Push
writes customer metafields (:mod:`connectors.shopify.writer`); ``clm-sync setup`` defines
them first.
"""

from __future__ import annotations

from collections.abc import Sequence

from config.models import ShopifySource
from connectors.base import Console, Stream, Writer
from connectors.records import RecordKind
from connectors.referrals import ReferralReader
from connectors.shopify.bulk import BulkReader
from connectors.shopify.client import PageSizer, ShopifyClient
from connectors.shopify.streams import (
    CUSTOMERS_QUERY,
    ORDERS_QUERY,
    Feed,
    ShopifyStream,
    customers_mapper,
    guests_mapper,
    orders_mapper,
    referrals_mapper,
)
from connectors.shopify.writer import MetafieldWriter, set_up_definitions

__all__ = ["ShopifyConnector"]


class ShopifyConnector:
    def __init__(self, source: ShopifySource, client: ShopifyClient | None = None) -> None:
        self.system = source.name
        self.source = source
        self.client = client or ShopifyClient(source)
        self.bulk = BulkReader(self.client) if source.bulk_backfill else None
        self.sizers = {root: PageSizer(source.page_size) for root in ("customers", "orders")}

    def _pushes(self) -> bool:
        return self.source.push.enabled and bool(self.source.push.fields)

    def _check(self) -> None:
        self.client.check_scopes(push=self._pushes())

    def _orders_feed(self) -> Feed:
        return Feed(self.client, "orders", ORDERS_QUERY, self.sizers["orders"], self.bulk)

    def streams(self) -> Sequence[Stream]:
        customers = Feed(self.client, "customers", CUSTOMERS_QUERY, self.sizers["customers"])
        streams: list[Stream] = [
            ShopifyStream(
                "customers", RecordKind.CUSTOMER, customers, customers_mapper, self._check
            ),
            ShopifyStream(
                "guests", RecordKind.CUSTOMER, self._orders_feed(), guests_mapper, self._check
            ),
            ShopifyStream(
                "orders", RecordKind.TRANSACTION, self._orders_feed(), orders_mapper, self._check
            ),
        ]
        if self.source.referrals.any:
            mapper = referrals_mapper(ReferralReader(self.source.referrals))
            streams.append(
                ShopifyStream(
                    "referrals", RecordKind.REFERRAL, self._orders_feed(), mapper, self._check
                )
            )
        return streams

    def writer(self) -> Writer | None:
        push = self.source.push
        return MetafieldWriter(
            self.client, self.source.metafield_namespace, push.fields, push.batch_size
        )

    def set_up(self, console: Console, dry_run: bool) -> None:
        fields = self.source.push.fields
        if not fields:
            console.say("no push fields are configured; nothing to define")
            return
        created = set_up_definitions(
            self.client, self.source.metafield_namespace, fields, console, dry_run
        )
        if not dry_run:
            console.say(f"{created} metafield definition(s) created")
