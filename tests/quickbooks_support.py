"""Shared pieces of the QuickBooks tests: a connected connector against the stand-in, a pull."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import Engine, select

from config.models import AppConfig, QuickBooksSource
from connectors.base import ConnectorContext
from connectors.http import RetrySettings
from connectors.quickbooks import QuickBooksConnector
from sandbox.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM_ID, QuickBooksStandIn
from sync.ingest import IngestCounts, StreamIngest
from sync.ledger import SourceCustomerRow, SourceSpendRow, SourceTransactionRow
from sync.tokens import TokenStore
from tests.conftest import ROW_CONTEXT

FAST_RETRY = RetrySettings(attempts=12, initial_wait=0.01, max_wait=0.05)
KEY_TEXT = Fernet.generate_key()
KEY = Fernet(KEY_TEXT)


def source_config(stand_in: QuickBooksStandIn, **settings: Any) -> QuickBooksSource:
    values: dict[str, Any] = {
        "type": "quickbooks",
        "name": "qbo",
        "realm_id": REALM_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": "https://clm-sync.example/callback",
        "api_url": stand_in.url,
        "graphql_url": stand_in.graphql_url,
        "discovery_url": stand_in.discovery_url,
        "marketing_accounts": stand_in.company.marketing_accounts(),
    }
    return QuickBooksSource.model_validate(values | settings)


def connector(
    stand_in: QuickBooksStandIn,
    engine: Engine,
    retry: RetrySettings = FAST_RETRY,
    timeout: tuple[float, float] = (5.0, 10.0),
    window: float = 60.0,
    clock: Callable[[], datetime] | None = None,
    **settings: Any,
) -> QuickBooksConnector:
    """A connector for the stand-in; its clock is the company's unless ``clock`` is given."""
    source = source_config(stand_in, **settings)
    app = AppConfig(ledger="sqlite:///unused.db", sources=[source])
    context = ConnectorContext(tokens=TokenStore(engine, KEY))
    clock = clock or stand_in.company.now
    return QuickBooksConnector(source, app, context, retry, clock, timeout, window)


def connect(stand_in: QuickBooksStandIn, engine: Engine, **settings: Any) -> QuickBooksConnector:
    """A connector whose admin has gone through `clm-sync auth` already."""
    made = connector(stand_in, engine, **settings)
    made.auth.complete(stand_in.consent(made.auth.consent_url()))
    return made


def pull(engine: Engine, made: QuickBooksConnector) -> IngestCounts:
    """One pull of every stream through the real ingest step."""
    total = IngestCounts()
    for stream in made.streams():
        total.add(StreamIngest(engine, made.system, stream, ROW_CONTEXT).run(None))
    return total


def ledger_transactions(engine: Engine, system: str = "qbo") -> dict[str, tuple[Any, ...]]:
    """Live transactions: external id to (customer, kind, amount, currency, home amount)."""
    table = SourceTransactionRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                table.c.stream,
                table.c.external_id,
                table.c.customer_external_id,
                table.c.transaction_kind,
                table.c.amount,
                table.c.currency,
                table.c.home_amount,
            ).where(table.c.system == system, table.c.deleted.is_(False))
        )
        return {
            f"{stream}/{eid}": (customer, kind, Decimal(amount), currency, Decimal(home))
            for stream, eid, customer, kind, amount, currency, home in rows
        }


def ledger_customers(engine: Engine, system: str = "qbo") -> dict[str, Mapping[str, Any]]:
    table = SourceCustomerRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(
            select(table).where(table.c.system == system, table.c.deleted.is_(False))
        ).mappings()
        return {row["external_id"]: dict(row) for row in rows}


def ledger_spend(engine: Engine, system: str = "qbo") -> dict[str, tuple[Any, ...]]:
    table = SourceSpendRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(
            select(table.c.stream, table.c.external_id, table.c.channel, table.c.amount).where(
                table.c.system == system, table.c.deleted.is_(False)
            )
        )
        return {f"{s}/{e}": (channel, Decimal(amount)) for s, e, channel, amount in rows}


STREAMS = {
    "Invoice": ("invoices", "sale"),
    "SalesReceipt": ("sales_receipts", "sale"),
    "CreditMemo": ("credit_memos", "refund"),
    "RefundReceipt": ("refund_receipts", "refund"),
}


def expected_transactions(stand_in: QuickBooksStandIn) -> dict[str, tuple[Any, ...]]:
    """What the ledger should hold: every live sales document of the company, read directly."""
    expected: dict[str, tuple[Any, ...]] = {}
    for entity, (stream, kind) in STREAMS.items():
        for obj in stand_in.company.live(entity):
            amount = Decimal(str(obj["TotalAmt"]))
            currency = obj["CurrencyRef"]["value"]
            if "HomeTotalAmt" in obj:
                home = Decimal(str(obj["HomeTotalAmt"]))
            elif currency != "USD":
                home = (amount * Decimal(str(obj["ExchangeRate"]))).quantize(Decimal("0.01"))
            else:
                home = amount
            customer = obj["CustomerRef"]["value"]
            expected[f"{stream}/{obj['Id']}"] = (customer, kind, amount, currency, home)
    return expected


def expected_customers(stand_in: QuickBooksStandIn) -> set[str]:
    return {c["Id"] for c in stand_in.company.live("Customer") if c.get("Active", True)}
