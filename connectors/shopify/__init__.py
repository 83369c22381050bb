"""The Shopify source (``type: shopify``): the GraphQL Admin API, pinned to one version.

Streams, in dependency order: ``customers``, ``guests`` (orders without an account),
``orders`` (sales and refunds) and, when the YAML has referral rules, ``referrals``. Push
writes customer metafields (:mod:`connectors.shopify.writer`); ``clm-sync setup`` defines
them first.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from config.models import ShopifySource, parse_duration
from connectors.base import Console, Stream, Writer
from connectors.records import RecordKind
from connectors.referrals import ReferralReader
from connectors.shopify.bulk import BulkReader
from connectors.shopify.client import FIRST_PAGE, PageSizer, ShopifyClient
from connectors.shopify.streams import (
    BULK_ORDER_FIELDS,
    CUSTOMER_IDS_QUERY,
    CUSTOMERS_QUERY,
    GUEST_FIELDS,
    LINES_PER_ORDER,
    ORDER_FIELDS_WITH_LINES,
    REFERRAL_FIELDS,
    Feed,
    LineFiller,
    Mapper,
    ShopifyCustomers,
    ShopifyStream,
    bulk_orders_query,
    guests_mapper,
    orders_mapper,
    orders_query,
    referrals_mapper,
)
from connectors.shopify.writer import MetafieldWriter, set_up_definitions

__all__ = ["ShopifyConnector"]

CUSTOMERS_DELETE_TOPIC = "customers/delete"


class ShopifyConnector:
    def __init__(self, source: ShopifySource, client: ShopifyClient | None = None) -> None:
        self.system = source.name
        self.source = source
        self.client = client or ShopifyClient(source)
        self.bulk = BulkReader(self.client) if source.bulk_backfill else None
        self.sizers: dict[str, PageSizer] = {}
        self.deletions_heard = threading.Event()
        """A ``customers/delete`` webhook came: the next cycle reads every customer id."""

    def _pushes(self) -> bool:
        return self.source.push.enabled and bool(self.source.push.fields)

    def _check(self) -> None:
        self.client.check_scopes(push=self._pushes())

    def _feed(
        self,
        stream: str,
        root: str,
        fields: str | None = None,
        document: str = CUSTOMERS_QUERY,
        bulk_fields: str | None = None,
    ) -> Feed:
        """One feed per stream; its page sizer (cost per node) lives as long as the connector.

        An order stream (``fields`` given) selects only those fields in pages, and
        ``bulk_fields`` (or the same) in the bulk operation of its first pass; a customer feed
        runs ``document``. Orders with line items get the lines a page left out.
        """
        lines = fields is not None and "lineItems" in fields
        # An order with its line items costs about as much as 1 + LINES_PER_ORDER plain ones:
        # a first page of FIRST_PAGE of them would pass the single-query cap.
        first_page = FIRST_PAGE // (1 + LINES_PER_ORDER) if lines else FIRST_PAGE
        sizer = self.sizers.setdefault(stream, PageSizer(self.source.page_size, first_page))
        if fields is None:
            return Feed(self.client, root, document, sizer)
        bulk_query = bulk_orders_query(bulk_fields or fields)
        bulk = (self.bulk, bulk_query) if self.bulk is not None else None
        fill = LineFiller(self.client) if lines else None
        return Feed(self.client, root, orders_query(fields), sizer, bulk, fill)

    def streams(self) -> Sequence[Stream]:
        def stream(name: str, kind: RecordKind, feed: Feed, mapper: Mapper) -> Stream:
            return ShopifyStream(name, kind, feed, mapper, self._check)

        streams: list[Stream] = [
            ShopifyCustomers(
                self._feed("customers", "customers"),
                self._feed("customer_ids", "customers", document=CUSTOMER_IDS_QUERY),
                parse_duration(self.source.customer_deletions_every),
                self._check,
                self.deletions_heard,
            ),
            stream(
                "guests",
                RecordKind.CUSTOMER,
                self._feed("guests", "orders", GUEST_FIELDS),
                guests_mapper,
            ),
            stream(
                "orders",
                RecordKind.TRANSACTION,
                self._feed(
                    "orders", "orders", ORDER_FIELDS_WITH_LINES, bulk_fields=BULK_ORDER_FIELDS
                ),
                orders_mapper,
            ),
        ]
        if self.source.referrals.any:
            streams.append(
                stream(
                    "referrals",
                    RecordKind.REFERRAL,
                    self._feed("referrals", "orders", REFERRAL_FIELDS),
                    referrals_mapper(ReferralReader(self.source.referrals)),
                )
            )
        return streams

    def heard(self, topic: str) -> None:
        """A verified webhook: after ``customers/delete``, look for deleted customers."""
        if topic == CUSTOMERS_DELETE_TOPIC:
            self.deletions_heard.set()

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
