"""``clm-sync demo``: a synthetic business as a CSV export folder, its config, a summary.

The demo config is an ordinary one (``DIR/clm-sync.yaml``), so with ``--keep DIR`` every other
command works on the demo ledger. The connector issues add their simulated servers here.

The shops sell to the same persons as the export (Shopify to half of them, WooCommerce to
the other half), and the export books the same sales, as an accounting system does with shop
orders: matching those transactions across systems is the reconciliation's job.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from sandbox.ews import start_demo_exchange
from sandbox.graph import start_demo_tenant
from sandbox.quickbooks_demo import start_demo_company
from sandbox.synthetic import BusinessSpec, write_csv_folder
from sync.export import EXPORT_COLUMNS, customer_rows

EXPORTS_FOLDER = "exports"
CONFIG_NAME = "clm-sync.yaml"
GROUND_TRUTH = "ground_truth.csv"

DEMO_CONFIG = """\
# Written by `clm-sync demo`; every key is explained in config/example.yaml.
ledger: sqlite:///ledger.db
sources:
  - name: shop-exports
    type: csv
    path: ./exports
    schedule:
      every: 15m
    push:
      enabled: true
      fields:
        - {metric: net_revenue, field: lifetime_revenue, format: ".2f"}
        - {metric: orders, field: orders}
        - {metric: last_purchase, field: last_purchase, format: "%Y-%m-%d"}
"""

DemoSource = Callable[[BusinessSpec, Path, ExitStack], str]
"""Starts a stand-in server for the demo and returns its source entry for the demo YAML.

Called with the business, the demo folder and an exit stack that lives as long as the demo
cycle (register the server's stop on it); returns a YAML list item indented for `sources:`.
"""


def start_shopify(spec: BusinessSpec, folder: Path, servers: ExitStack) -> str:  # noqa: ARG001
    """Half the business's persons buy in a Shopify store (the stand-in's own token)."""
    from sandbox.shop import build_shop
    from sandbox.shopify import ShopifyStandIn

    fake = ShopifyStandIn(build_shop(spec, storefront=(0, 2)), bulk_polls=0)
    server = servers.enter_context(fake.server())
    return f"""\
  - name: shopify
    type: shopify
    store_url: {server.url}
    access_token: {fake.token}
    referrals:
      code_pattern: '^REF-(\\d+)$'
      order_attribute: referred_by
      landing_parameter: ref
    push:
      fields:
        - {{metric: net_revenue, field: lifetime_revenue, format: ".2f"}}
        - {{metric: last_purchase, field: last_purchase, format: "%Y-%m-%d"}}
"""


def start_woocommerce(spec: BusinessSpec, folder: Path, servers: ExitStack) -> str:  # noqa: ARG001
    """The other half buy in a WooCommerce store."""
    from sandbox.shop import build_shop
    from sandbox.woocommerce import WooStandIn

    fake = WooStandIn(build_shop(spec, storefront=(1, 2)))
    server = servers.enter_context(fake.server())
    return f"""\
  - name: woocommerce
    type: woocommerce
    url: {server.url}
    consumer_key: {fake.consumer_key}
    consumer_secret: {fake.consumer_secret}
    referrals:
      code_pattern: '^ref-(\\d+)$'
    push:
      fields:
        - {{metric: net_revenue, field: clm_lifetime_revenue, format: ".2f"}}
"""


DEMO_SOURCES: list[DemoSource] = [
    start_demo_company,
    start_demo_tenant,
    start_demo_exchange,
    start_shopify,
    start_woocommerce,
]
"""The stand-ins `clm-sync demo` runs next to the CSV export, in this order."""


def prepare_demo(
    folder: Path, customers: int, seed: int, servers: ExitStack
) -> tuple[Path, datetime]:
    """Write the business and its config into ``folder``.

    Returns the config's path and the end of the business's history, the moment the demo's
    metrics are computed as of (recency counted from today would make everyone look lost).
    An existing demo folder is reused: the export is rewritten (same seed, same files) and the
    ledger kept, so a second demo run shows an incremental cycle. Stand-in servers started
    for the demo stop when ``servers`` closes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    spec = BusinessSpec(seed=seed, customers=customers)
    write_csv_folder(spec, folder / EXPORTS_FOLDER)
    config_path = folder / CONFIG_NAME
    extra = "".join(start(spec, folder, servers) for start in DEMO_SOURCES)
    config_path.write_text(DEMO_CONFIG + extra, encoding="utf-8")
    return config_path, datetime.combine(spec.as_of, time(23, 59, 59), UTC)


def _true_people(folder: Path) -> int:
    with (folder / EXPORTS_FOLDER / GROUND_TRUTH).open(encoding="utf-8", newline="") as handle:
        return len(
            {row["person_id"] for row in csv.DictReader(handle) if row["stream"] == "customers"}
        )


def summarize_demo(console: Console, engine: Engine, folder: Path, as_of: datetime) -> None:
    """How many people the ledger found versus the truth, and the best customers."""
    rows = list(customer_rows(engine))
    column = {name: index for index, name in enumerate(EXPORT_COLUMNS)}
    console.print(
        f"\nThe business really has {_true_people(folder):,} people; the ledger knows "
        f"{len(rows):,} customers (`clm-sync explain` and `review` show how records were matched)."
    )
    top = sorted(rows, key=lambda row: Decimal(row[column["net_revenue"]] or 0), reverse=True)
    table = Table(title=f"Top customers by net revenue, as of {as_of:%Y-%m-%d}")
    for name in ("customer", "records", "orders", "net revenue", "last purchase", "days since"):
        table.add_column(name, justify="left" if name == "customer" else "right")
    for row in top[:5]:
        table.add_row(
            row[column["customer_id"]],
            str(len(row[column["sources"]].split(";"))),
            row[column["orders"]],
            row[column["net_revenue"]],
            row[column["last_purchase"]],
            row[column["recency_days"]],
        )
    console.print(table)
