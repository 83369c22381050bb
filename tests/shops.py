"""Helpers for the web-shop tests: the ledger a shop should give, and cycles against it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from config.models import AppConfig
from connectors.base import Connector
from connectors.http import RetrySettings
from sandbox.shop import ShopBusiness, guest_key
from sync.cycle import CycleOutcome, SyncService
from sync.ledger import SourceCustomerRow, SourceReferralRow, SourceTransactionRow

FAST = RetrySettings(attempts=8, initial_wait=0.01, max_wait=0.05)
TRANSACTIONS = SourceTransactionRow.__table__  # type: ignore[attr-defined]
CUSTOMERS = SourceCustomerRow.__table__  # type: ignore[attr-defined]
REFERRALS = SourceReferralRow.__table__  # type: ignore[attr-defined]
PUSH_FIELDS = [
    {"metric": "net_revenue", "field": "lifetime_revenue", "format": ".2f"},
    {"metric": "orders", "field": "orders", "format": "d"},
    {"metric": "last_purchase", "field": "last_purchase", "format": "%Y-%m-%d"},
]
ALL_RULES = {
    "code_pattern": r"^REF-(\d+)$",
    "order_attribute": "referred_by",
    "note_pattern": r"Referred by (\S+)",
    "landing_parameter": "ref",
}

Row = tuple[str, str, Decimal, str | None]


def expected_transactions(shop: ShopBusiness) -> set[Row]:
    """(external id, kind, amount, customer) of every sale and refund in the shop."""
    rows: set[Row] = set()
    for order in shop.orders.values():
        customer = (
            str(order.customer_id)
            if order.customer_id
            else (guest_key(order.email) if order.email else None)
        )
        rows.add((str(order.id), "sale", order.total, customer))
        rows.update(
            (f"refund-{refund.id}", "refund", refund.amount, customer) for refund in order.refunds
        )
    return rows


def ledger_transactions(engine: Engine, system: str) -> set[Row]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                TRANSACTIONS.c.external_id,
                TRANSACTIONS.c.transaction_kind,
                TRANSACTIONS.c.amount,
                TRANSACTIONS.c.customer_external_id,
            ).where(TRANSACTIONS.c.system == system, TRANSACTIONS.c.deleted.is_(False))
        )
        return {(e, k, Decimal(a).quantize(Decimal("0.01")), c) for e, k, a, c in rows}


def ledger_net(engine: Engine, system: str) -> Decimal:
    """Sales minus refunds of ``system`` in the home currency."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(TRANSACTIONS.c.transaction_kind, TRANSACTIONS.c.home_amount).where(
                TRANSACTIONS.c.system == system, TRANSACTIONS.c.deleted.is_(False)
            )
        )
        total = sum(
            (Decimal(str(a)) * (1 if kind == "sale" else -1) for kind, a in rows), Decimal(0)
        )
    return total.quantize(Decimal("0.01"))


def ledger_customers(engine: Engine, system: str) -> dict[str, bool]:
    """Live source customers of ``system``: external id to guest flag."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(CUSTOMERS.c.external_id, CUSTOMERS.c.guest).where(
                CUSTOMERS.c.system == system, CUSTOMERS.c.deleted.is_(False)
            )
        )
        return dict(rows.all())


def ledger_referrals(engine: Engine, system: str) -> set[tuple[str, str, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                REFERRALS.c.referrer_external_id,
                REFERRALS.c.referred_external_id,
                REFERRALS.c.first_order_external_id,
            ).where(REFERRALS.c.system == system)
        )
        return set(rows.all())


def expected_customers(shop: ShopBusiness) -> dict[str, bool]:
    return {str(number): False for number in shop.customers} | dict.fromkeys(shop.guests(), True)


def app_config(engine: Engine, source: dict[str, Any]) -> AppConfig:
    return AppConfig.model_validate(
        {"ledger": engine.url.render_as_string(hide_password=False), "sources": [source]}
    )


def service_with(engine: Engine, app: AppConfig, connector: Connector) -> SyncService:
    """A service whose connector for the only source is ``connector`` (fast retries)."""
    service = SyncService(app, engine)
    service._connectors[app.sources[0].name] = connector
    return service


def cycle_ok(service: SyncService) -> CycleOutcome:
    outcome = service.cycle()
    assert not outcome.failed, [s.error for s in outcome.sources] + [
        outcome.step.error if outcome.step else None
    ]
    return outcome
