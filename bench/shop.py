"""Backfill of a sandbox shop on Shopify and WooCommerce, against the rate-limit bound.

Prints, per platform and mode, the wall time of a first pull into a fresh SQLite ledger
and the least time the platform's published limit allows for the same work:

* Shopify (paged): every query's cost is charged to a leaky bucket of ``--bucket`` points
  refilled at ``--restore-rate`` points a second (Standard plan: 2,000 and 100; the default
  here is time-scaled so the bench ends). Bound: (points charged - bucket) / restore rate.
* Shopify (bulk): the order history comes from one bulk operation; only the customer pages
  and a few small queries cost points, so the bound is far lower.
* WooCommerce: the REST API v3 publishes no request limit; each request costs the stand-in's
  ``--latency``, sequentially, so the bound is requests x latency. Each order page is read
  once (it gives the sales, guests and referrals); the line shows the order pages read.

It also measures the second cycle of WooCommerce customers: re-read every cycle (only real
changes written) against ``customers_every: 1d`` (skipped until a day has passed).

    python bench/shop.py --customers 1000 --orders 10000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from config.models import AppConfig, ShopifySource, WooCommerceSource
from connectors.http import RetrySettings
from connectors.shopify import ShopifyConnector
from connectors.shopify.bulk import BulkReader
from connectors.shopify.client import ShopifyClient
from connectors.woocommerce import WooCommerceConnector
from connectors.woocommerce.client import WooClient
from sandbox.http import Faults
from sandbox.shop import ShopBusiness, build_shop
from sandbox.shopify import ShopifyStandIn
from sandbox.synthetic import spec_for_transactions
from sync.cycle import SyncService
from sync.db import create_ledger_engine, ensure_current_schema
from sync.ledger import SourceTransactionRow

RETRY = RetrySettings(attempts=6, initial_wait=0.05, max_wait=1.0)
CENT = Decimal("0.01")


def _matches(service: SyncService, system: str, shop: ShopBusiness) -> str:
    """Whether the ledger holds the shop's sales and refunds: counts and sums per kind."""
    table = SourceTransactionRow.__table__  # type: ignore[attr-defined]
    with service.engine.connect() as connection:
        rows = connection.execute(
            select(table.c.transaction_kind, func.count(), func.sum(table.c.amount))
            .where(table.c.system == system, table.c.deleted.is_(False))
            .group_by(table.c.transaction_kind)
        )
        found = {kind: (count, Decimal(str(total)).quantize(CENT)) for kind, count, total in rows}
    refunds = [refund.amount for order in shop.orders.values() for refund in order.refunds]
    expected = {
        "sale": (len(shop.orders), sum((o.total for o in shop.orders.values()), Decimal(0))),
        "refund": (len(refunds), sum(refunds, Decimal(0))),
    }
    return "matches the shop" if found == expected else f"DIFFERS: {found} != {expected}"


def _service(folder: Path, source: dict[str, Any]) -> tuple[SyncService, AppConfig]:
    url = f"sqlite:///{folder / (source['name'] + '.db')}"
    engine = create_ledger_engine(url)
    ensure_current_schema(engine)
    app = AppConfig.model_validate({"ledger": url, "sources": [source]})
    return SyncService(app, engine), app


def shopify(shop: ShopBusiness, folder: Path, bulk: bool, args: argparse.Namespace) -> float:
    fake = ShopifyStandIn(
        shop, maximum_available=args.bucket, restore_rate=args.restore_rate, bulk_polls=0
    )
    with fake.server() as server:
        settings = {
            "type": "shopify",
            "name": f"shopify-{'bulk' if bulk else 'paged'}",
            "store_url": server.url,
            "access_token": fake.token,
            "bulk_backfill": bulk,
            "referrals": {"code_pattern": r"^REF-(\d+)$"},
        }
        service, _ = _service(folder, settings)
        source = ShopifySource.model_validate(settings)
        client = ShopifyClient(source, retry=RETRY)
        connector = ShopifyConnector(source, client)
        if bulk:
            connector.bulk = BulkReader(client, poll_interval=0.5)
        service._connectors[source.name] = connector
        started = time.perf_counter()
        outcome = service.pull(source.name)
        wall = time.perf_counter() - started
    bound = max(0.0, fake.points - args.bucket) / args.restore_rate
    print(
        f"shopify {'bulk ' if bulk else 'paged'}: {outcome.counts.records_in:,} records in "
        f"{wall:.1f}s ({outcome.status}); {fake.points:,} points charged, bound {bound:.1f}s, "
        f"ratio {wall / bound if bound else float('inf'):.2f}; throttled {fake.throttled}, "
        f"budget waits {client.budget.waited:.1f}s; ledger {_matches(service, source.name, shop)}"
    )
    return wall


def woocommerce(shop: ShopBusiness, folder: Path, args: argparse.Namespace) -> None:
    from sandbox.woocommerce import API, WooStandIn

    fake = WooStandIn(shop)
    with fake.server(Faults(latency=args.latency)) as server:
        settings: dict[str, Any] = {
            "type": "woocommerce",
            "name": "woo",
            "url": server.url,
            "consumer_key": fake.consumer_key,
            "consumer_secret": fake.consumer_secret,
            "referrals": {"code_pattern": r"^ref-(\d+)$"},
        }
        service, _ = _service(folder, settings)

        def pull(every: str | None) -> tuple[int, float, int, int]:
            source = WooCommerceSource.model_validate(settings | {"customers_every": every})
            service._connectors[source.name] = WooCommerceConnector(
                source, WooClient(source, retry=RETRY)
            )
            before = server.stats.requests
            started = time.perf_counter()
            outcome = service.pull(source.name)
            wall = time.perf_counter() - started
            counts = outcome.counts
            return server.stats.requests - before, wall, counts.records_in, counts.changed

        requests, wall, records, _ = pull(None)
        bound = requests * args.latency
        order_pages = server.stats.by_route[f"{API}/orders"]
        print(
            f"woocommerce backfill: {records:,} records in {wall:.1f}s; {requests:,} requests "
            f"({order_pages:,} order pages), bound {bound:.1f}s, ratio {wall / bound:.2f}; "
            f"ledger {_matches(service, 'woo', shop)}"
        )
        for every, label in ((None, "every cycle"), ("1d", "daily")):
            requests, wall, _, changed = pull(every)
            print(
                f"woocommerce next cycle, customers read {label}: {requests:,} requests, "
                f"{wall:.2f}s, {changed:,} changed rows written"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--bucket", type=float, default=2_000.0)
    parser.add_argument(
        "--restore-rate", type=float, default=20_000.0, help="points a second (Standard: 100)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.1,
        help="WooCommerce seconds per request (WordPress answers a page of 100 in 0.1-1s)",
    )
    args = parser.parse_args()
    spec = spec_for_transactions(args.customers, args.orders)
    shop = build_shop(spec)
    refunds = sum(len(order.refunds) for order in shop.orders.values())
    print(
        f"shop: {len(shop.customers):,} customers, {len(shop.guests()):,} guests, "
        f"{len(shop.orders):,} orders, {refunds:,} refunds"
    )
    with tempfile.TemporaryDirectory(prefix="clm-sync-bench-") as folder:
        paged = shopify(shop, Path(folder), False, args)
        bulk = shopify(shop, Path(folder), True, args)
        print(f"shopify: the bulk backfill takes {bulk / paged:.2f}x the paged one's time")
        woocommerce(shop, Path(folder), args)


if __name__ == "__main__":
    main()
