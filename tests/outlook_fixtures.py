"""Shared set-up of the Outlook tests: the sandbox tenant, its config, the ledger queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from config.models import AppConfig, EwsSource, GraphSource
from connectors.base import Connector
from connectors.ews import EwsConnector
from connectors.graph import GraphConnector
from connectors.http import RetrySettings
from sandbox.ews import PASSWORD as EWS_PASSWORD
from sandbox.ews import USERNAME as EWS_USERNAME
from sandbox.ews import EwsServer
from sandbox.graph import (
    CLIENT_ID,
    CLIENT_SECRET,
    OWN_DOMAIN,
    OWNER,
    SALES,
    SUPPORT,
    TENANT_ID,
    GraphServer,
    GraphTenant,
)
from sandbox.synthetic import BusinessSpec, write_csv_folder
from sync.cycle import SyncService
from sync.db import create_ledger_engine, ensure_current_schema
from sync.ledger import SourceCustomerRow, SourceInteractionRow

SPEC = BusinessSpec(seed=11, customers=70)
AS_OF = datetime.combine(SPEC.as_of, time(23, 59, 59), UTC)
INCIDENT_COST = Decimal("10.00")
REPLY_COST = Decimal("5.00")
FIELDS = [
    {"metric": "net_revenue", "field": "clm_lifetime_revenue", "format": ".2f"},
    {"metric": "orders", "field": "clm_orders"},
    {"metric": "first_purchase", "field": "clm_customer_since", "format": "%Y"},
]
CATEGORIES = {
    "2023": {"name": "CLM: Since 2023", "color": "preset4"},
    "2024": {"name": "CLM: Since 2024", "color": "preset7"},
    "2025": {"name": "CLM: Since 2025", "color": "preset9"},
}
FAST_RETRY = RetrySettings(attempts=8, initial_wait=0.01, max_wait=0.5)


BACKENDS = ("graph", "ews")


@contextmanager
def serve(tenant: GraphTenant, backend: str, **options: Any) -> Iterator[GraphServer | EwsServer]:
    """The tenant behind the stand-in of ``backend`` (``graph`` or ``ews``)."""
    server = GraphServer(tenant, **options) if backend == "graph" else EwsServer(tenant, **options)
    with server:
        yield server


def graph_source(server: GraphServer | EwsServer, **overrides: Any) -> dict[str, Any]:
    """The YAML of the sandbox tenant's source, as a mapping, for the server's back-end."""
    if isinstance(server, GraphServer):
        access: dict[str, Any] = {
            "type": "graph",
            "tenant_id": TENANT_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authority_host": server.authority_host,
            "graph_url": server.graph_url,
        }
    else:
        access = {
            "type": "ews",
            "ews_url": server.endpoint,
            "username": EWS_USERNAME,
            "password": EWS_PASSWORD,
            "auth_type": "basic",
            "max_wait": "60s",
        }
    source: dict[str, Any] = access | {
        "name": "outlook",
        "contacts": [
            {"mailbox": SALES, "folders": ["Contacts"]},
            {"mailbox": OWNER, "folders": ["Contacts"]},
        ],
        "conversations": [
            {"mailbox": mailbox, "folders": ["inbox", "sentitems"]}
            for mailbox in (SALES, SUPPORT, OWNER)
        ],
        "own_domains": [OWN_DOMAIN],
        "support": {
            "mailboxes": [SUPPORT],
            "cost": str(INCIDENT_COST),
            "cost_per_reply": str(REPLY_COST),
        },
        "push": {
            "fields": FIELDS,
            "categories": {"field": "clm_customer_since", "values": CATEGORIES},
        },
    }
    return source | overrides


def app_config(
    folder: Path, server: GraphServer | EwsServer, spec: BusinessSpec = SPEC, **overrides: Any
) -> AppConfig:
    """The tenant next to a CSV export of the same business (where the revenue comes from)."""
    exports = folder / "exports"
    if not exports.exists():
        write_csv_folder(spec, exports)
    return AppConfig.model_validate(
        {
            "ledger": "sqlite:///unused.db",
            "sources": [
                {"type": "csv", "name": "shop", "path": str(exports)},
                graph_source(server, **overrides),
            ],
        }
    )


def service(app: AppConfig, engine: Engine) -> SyncService:
    """A sync service whose Outlook connector retries fast and sees the business's "now"."""
    sync = SyncService(app, engine)
    for source in app.sources:
        if isinstance(source, GraphSource):
            connector: Connector = GraphConnector(source, FAST_RETRY, now=lambda: AS_OF)
        elif isinstance(source, EwsSource):
            connector = EwsConnector(source, now=lambda: AS_OF)
        else:
            continue
        sync._connectors[source.name] = connector
    return sync


@dataclass(slots=True)
class LedgerView:
    contacts: set[str]
    guests: set[str]
    messages: int
    incidents: dict[str, list[Decimal]]
    """Guest e-mail -> the costs of their incidents."""


def ledger_view(engine: Engine, system: str = "outlook") -> LedgerView:
    customers = SourceCustomerRow.__table__  # type: ignore[attr-defined]
    interactions = SourceInteractionRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(
            select(customers.c.stream, customers.c.external_id, customers.c.email).where(
                customers.c.system == system, customers.c.deleted.is_(False)
            )
        ).all()
        acts = connection.execute(
            select(
                interactions.c.interaction_kind,
                interactions.c.customer_external_id,
                interactions.c.cost,
            ).where(interactions.c.system == system, interactions.c.deleted.is_(False))
        ).all()
    incidents: dict[str, list[Decimal]] = defaultdict(list)
    for kind, customer, cost in acts:
        if kind == "support_incident":
            incidents[customer.removeprefix("email:")].append(Decimal(cost))
    return LedgerView(
        contacts={external_id for stream, external_id, _ in rows if stream.startswith("contacts:")},
        guests={email for stream, _, email in rows if stream == "correspondents"},
        messages=sum(1 for kind, _, _ in acts if kind == "email"),
        incidents={k: sorted(v) for k, v in incidents.items()},
    )


def contact_row(engine: Engine, external_id: str, system: str = "outlook") -> Any:
    customers = SourceCustomerRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return connection.execute(
            select(customers).where(
                customers.c.system == system, customers.c.external_id == external_id
            )
        ).one()


def sqlite_ledger(folder: Path) -> Engine:
    """A fresh SQLite ledger (for the tests that are not about the database)."""
    engine = create_ledger_engine(f"sqlite:///{folder / 'ledger.db'}")
    ensure_current_schema(engine)
    return engine
