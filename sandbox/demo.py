"""``clm-sync demo``: a synthetic business as a CSV export folder, its config, a summary.

The demo config is an ordinary one (``DIR/clm-sync.yaml``), so with ``--keep DIR`` every other
command works on the demo ledger. The connector issues add their simulated servers here.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sandbox.synthetic import BusinessSpec, write_csv_folder
from sqlalchemy import Engine

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


def prepare_demo(folder: Path, customers: int, seed: int) -> Path:
    """Write the business and its config into ``folder``; returns the config's path.

    An existing demo folder is reused: the export is rewritten (same seed, same files) and the
    ledger kept, so a second demo run shows an incremental cycle.
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_csv_folder(BusinessSpec(seed=seed, customers=customers), folder / EXPORTS_FOLDER)
    config_path = folder / CONFIG_NAME
    config_path.write_text(DEMO_CONFIG, encoding="utf-8")
    return config_path


def _true_people(folder: Path) -> int:
    with (folder / EXPORTS_FOLDER / GROUND_TRUTH).open(encoding="utf-8", newline="") as handle:
        return len(
            {row["person_id"] for row in csv.DictReader(handle) if row["stream"] == "customers"}
        )


def summarize_demo(console: Console, engine: Engine, folder: Path) -> None:
    """How many people the ledger found versus the truth, and the best customers."""
    rows = list(customer_rows(engine))
    revenue_column = EXPORT_COLUMNS.index("net_revenue")
    console.print(
        f"\nThe business really has {_true_people(folder):,} people; the ledger knows "
        f"{len(rows):,} customers (the reconciliation issue brings these closer)."
    )
    top = sorted(rows, key=lambda row: Decimal(row[revenue_column] or 0), reverse=True)[:5]
    table = Table(title="Top customers by net revenue")
    for column in EXPORT_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in top:
        table.add_row(*row)
    console.print(table)
