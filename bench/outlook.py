"""Outlook benchmark: a Graph backfill under throttling, against the bound the limits allow.

Builds the synthetic business as a Microsoft 365 tenant on the Graph stand-in, whose throttle
enforces Graph's Outlook limits per mailbox, time-scaled (10,000 requests per 10 minutes
becomes ``--per-window`` requests per ``--window`` seconds; 4 concurrent either way). The
connector's limiter gets the same limits. Then one cycle (pull, reconcile, metrics, push onto
the contacts) runs into a fresh SQLite ledger, next to the business's CSV export that supplies
the revenue.

Printed: requests per mailbox (a ``$batch`` counts each request inside it, as Graph does),
the wall time of the Graph source's pull and push, the bound the limits allow for those
requests, the ratio (target ≤ 1.2), requests the stand-in rejected (target 0), and write
requests per changed contact (target ≤ 1/20, thanks to JSON batches).

The bound: a mailbox whose limit admits R requests per window W needs at least
``(ceil(n / R) - 1) * W`` seconds for n requests. clm-sync reads one mailbox after another
(streams run in order), so the bound it is measured against is the sum over mailboxes; the
figure that would allow all mailboxes at once (the largest mailbox alone) is printed too.

    python bench/outlook.py                      # 1,000 people, 100 requests/s per mailbox
    python bench/outlook.py --customers 4000 --per-window 200 --exchanges 43   # ~5k contacts,
                                                                               # ~50k messages
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from datetime import time as day_time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/outlook.py` from a checkout
    sys.path.insert(0, str(ROOT))

from config.models import AppConfig, GraphSource  # noqa: E402
from connectors.graph import GraphConnector  # noqa: E402
from connectors.http import RetrySettings  # noqa: E402
from sandbox.graph import (  # noqa: E402
    CLIENT_ID,
    CLIENT_SECRET,
    MAILBOXES,
    OWN_DOMAIN,
    OWNER,
    SALES,
    SUPPORT,
    TENANT_ID,
    GraphServer,
    tenant_from_business,
)
from sandbox.http import Throttle  # noqa: E402
from sandbox.synthetic import BusinessSpec, write_csv_folder  # noqa: E402
from sync.cycle import SyncService  # noqa: E402
from sync.db import create_ledger_engine, migrate  # noqa: E402
from sync.ledger import SourceCustomerRow, SourceInteractionRow  # noqa: E402

console = Console()


class CountingThrottle(Throttle):
    """The stand-in's throttle, also counting admitted requests per mailbox."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.admitted: dict[str, int] = {}

    def admit(self, key: str, now: float) -> bool:
        admitted = Throttle.admit(self, key, now)
        if admitted and key in MAILBOXES:
            self.admitted[key] = self.admitted.get(key, 0) + 1
        return admitted


def _config(folder: Path, server: GraphServer, per_window: int, window: int) -> AppConfig:
    return AppConfig.model_validate(
        {
            "ledger": "sqlite:///unused.db",
            "sources": [
                {"type": "csv", "name": "shop", "path": str(folder / "exports")},
                {
                    "type": "graph",
                    "name": "outlook",
                    "tenant_id": TENANT_ID,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "authority_host": server.authority_host,
                    "graph_url": server.graph_url,
                    "contacts": [
                        {"mailbox": SALES, "folders": ["Contacts"]},
                        {"mailbox": OWNER, "folders": ["Contacts"]},
                    ],
                    "conversations": [
                        {"mailbox": m, "folders": ["inbox", "sentitems"]} for m in MAILBOXES
                    ],
                    "own_domains": [OWN_DOMAIN],
                    "support": {"mailboxes": [SUPPORT], "cost": "12.50"},
                    "limits": {
                        "max_requests": per_window,
                        "window": f"{window}s",
                        "max_concurrent": 4,
                    },
                    "push": {
                        "fields": [
                            {"metric": "net_revenue", "field": "lifetime_revenue", "format": ".2f"},
                            {"metric": "orders", "field": "orders"},
                            {"metric": "first_purchase", "field": "since", "format": "%Y"},
                        ],
                        "categories": {
                            "field": "since",
                            "values": {
                                str(y): {"name": f"CLM: since {y}"} for y in (2023, 2024, 2025)
                            },
                        },
                    },
                },
            ],
        }
    )


def _stored(engine: Engine) -> dict[str, int]:
    """Live Outlook contacts and interactions by kind in the ledger."""
    customers = SourceCustomerRow.__table__  # type: ignore[attr-defined]
    interactions = SourceInteractionRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        contacts = connection.execute(
            select(func.count()).where(
                customers.c.system == "outlook",
                customers.c.deleted.is_(False),
                customers.c.stream.like("contacts:%"),
            )
        ).scalar_one()
        kinds = connection.execute(
            select(interactions.c.interaction_kind, func.count())
            .where(interactions.c.system == "outlook", interactions.c.deleted.is_(False))
            .group_by(interactions.c.interaction_kind)
        ).all()
    return {"contacts": contacts, "email": 0, "support_incident": 0} | dict(kinds)


def main(
    customers: Annotated[int, typer.Option(help="People in the business.")] = 1000,
    per_window: Annotated[int, typer.Option(help="Requests per mailbox and window.")] = 100,
    window: Annotated[int, typer.Option(help="Throttle window in seconds.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic business.")] = 7,
    exchanges: Annotated[
        int, typer.Option(help="Extra message pairs per sales conversation (more mail).")
    ] = 0,
) -> None:
    spec = replace(BusinessSpec(), seed=seed, customers=customers)
    as_of = datetime.combine(spec.as_of, day_time(23, 59, 59), UTC)
    tenant, truth = tenant_from_business(spec, exchanges)
    console.print(
        f"Tenant: {len(truth.contacts):,} contacts, {truth.messages:,} customer messages, "
        f"{len(truth.incidents):,} support incidents in {len(MAILBOXES)} mailboxes; limit "
        f"{per_window} requests per {window}s and 4 concurrent per mailbox"
    )
    throttle = CountingThrottle(max_requests=per_window, window=float(window), max_concurrent=4)
    with tempfile.TemporaryDirectory(prefix="clm-bench-outlook-") as name:
        folder = Path(name)
        write_csv_folder(spec, folder / "exports")
        engine = create_ledger_engine(f"sqlite:///{folder / 'ledger.db'}")
        migrate(engine)
        with GraphServer(tenant, throttle=throttle) as server:
            app = _config(folder, server, per_window, window)
            sync = SyncService(app, engine)
            source = next(s for s in app.sources if isinstance(s, GraphSource))
            connector = GraphConnector(source, RetrySettings(), now=lambda: as_of)
            sync._connectors[source.name] = connector
            sync.pull("shop")
            started = time.perf_counter()
            pulled = sync.pull("outlook")
            pull_seconds = time.perf_counter() - started
            sync.post_pull(as_of, push=False)
            patches_before = tenant.patches
            started = time.perf_counter()
            pushes = sync.push(dry_run=False)
            push_seconds = time.perf_counter() - started
        stored = _stored(engine)
        engine.dispose()
    writer = connector.writer()
    changed = tenant.patches - patches_before
    write_requests = getattr(writer, "write_requests", 0)
    table = Table(title="Graph backfill under time-scaled throttling")
    for column in ("mailbox", "requests", "bound (s)"):
        table.add_column(column, justify="left" if column == "mailbox" else "right")
    bounds = {}
    for mailbox in MAILBOXES:
        count = throttle.admitted.get(mailbox, 0)
        bounds[mailbox] = max(0, math.ceil(count / per_window) - 1) * window
        table.add_row(mailbox, f"{count:,}", f"{bounds[mailbox]:.1f}")
    console.print(table)
    wall = pull_seconds + push_seconds
    bound = sum(bounds.values())
    console.print(
        f"ledger against the tenant: contacts {stored['contacts']:,}/{len(truth.contacts):,}, "
        f"messages {stored['email']:,}/{truth.messages:,}, incidents "
        f"{stored['support_incident']:,}/{len(truth.incidents):,}"
    )
    console.print(
        f"pull {pull_seconds:.1f}s ({pulled.status}, {pulled.counts.records_in:,} records) + "
        f"push {push_seconds:.1f}s ({sum(p.pushed for p in pushes):,} values) = {wall:.1f}s\n"
        f"bound, mailboxes one after another: {bound:.1f}s -> ratio {wall / max(bound, 1e-9):.2f}"
        f" (target <= 1.2)\n"
        f"bound, all mailboxes at once: {max(bounds.values()):.1f}s\n"
        f"requests rejected by the stand-in: {throttle.rejected} (target 0)\n"
        f"contacts written: {changed:,}; write requests: {write_requests:,} -> "
        f"{write_requests / max(changed, 1):.3f} per changed contact (target <= {1 / 20:.3f})"
    )


if __name__ == "__main__":
    typer.run(main)
