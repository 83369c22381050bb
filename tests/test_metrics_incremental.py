"""Recomputing only the customers touched since the last run gives the figures of a full
recompute (sync/basis.py, sync/figures.py), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
from sqlalchemy import Engine, delete, insert, select

from config.models import MetricsConfig
from connectors.records import (
    Record,
    SourceCustomer,
    SourceInteraction,
    SourceReferral,
    SourceSpend,
    SourceTransaction,
)
from sync.basis import stored_basis
from sync.figures import compute_figures
from sync.ledger import CustomerMetrics, TransactionMatch
from sync.reconcile import reconcile
from tests.conftest import ingest_records
from tests.test_reconcile import ledger_ids

FIGURES = CustomerMetrics.__table__  # type: ignore[attr-defined]
MATCH = TransactionMatch.__table__  # type: ignore[attr-defined]
FIRST = datetime(2024, 7, 1, 12, tzinfo=UTC)
SECOND = FIRST + timedelta(days=40)
# Short windows, so that moving the as-of time by 40 days moves rows out of them.
SETTINGS = MetricsConfig(revenue_window_days=30, roc_window_days=60)


def sale(external_id: str, customer: str, moment: datetime, amount: int = 20) -> SourceTransaction:
    return SourceTransaction(external_id, customer, moment, Decimal(amount), "USD")


def business() -> list[Record]:
    records: list[Record] = []
    for number in range(30):
        customer = f"C{number}"
        records.append(SourceCustomer(customer, email=f"c{number}@example.com"))
        for order in range(number % 4):
            moment = FIRST - timedelta(days=7 * number + 25 * order)
            records.append(sale(f"T{number}-{order}", customer, moment, 10 + number))
    records += [
        # bought after the first as-of time: not known then, known at the second
        sale("FUTURE", "C1", FIRST + timedelta(days=10)),
        SourceInteraction(
            "I1", "C2", FIRST - timedelta(days=3), "email", support=True, subject="broken"
        ),
        SourceReferral("R1", "C3", "C2"),
        SourceSpend("P1", (FIRST - timedelta(days=20)).date(), "ads", Decimal(300), "USD"),
    ]
    return records


def stored(engine: Engine) -> dict[int, str]:
    with engine.connect() as connection:
        rows = connection.execute(select(FIGURES.c.ledger_customer_id, FIGURES.c.values_json))
        return dict(rows.all())


def test_recomputing_touched_customers_equals_a_full_recompute(engine: Engine) -> None:
    ingest_records(engine, "shop", business())
    reconcile(engine, FIRST)
    first = compute_figures(engine, FIRST, SETTINGS)
    assert first.recomputed == first.customers == 30

    ingest_records(
        engine,
        "shop",
        [
            sale("NEW", "C5", FIRST + timedelta(days=5)),  # a new sale
            SourceTransaction(  # a deleted sale
                "T6-1", "C6", FIRST, Decimal(1), "USD", deleted=True
            ),
            sale("T7-1", "C8", FIRST - timedelta(days=7 * 7 + 25)),  # moved to another customer
            SourceInteraction(  # a support message
                "I2", "C9", FIRST + timedelta(days=1), "phone", support=True
            ),
            SourceCustomer("C10", email="c11@example.com"),  # now the same person as C11
        ],
    )
    reconcile(engine, SECOND)

    incremental = compute_figures(engine, SECOND, SETTINGS)
    assert incremental.recomputed < incremental.customers, "only touched customers"
    with engine.connect() as connection:
        kept_basis = stored_basis(connection)
    kept_figures = stored(engine)

    full = compute_figures(engine, SECOND, SETTINGS, incremental=False)

    assert full.recomputed == full.customers == incremental.customers == 30
    assert full.changed == 0, "a full recompute finds nothing to change"
    assert stored(engine) == kept_figures
    with engine.connect() as connection:
        assert stored_basis(connection).equals(kept_basis)


def test_changed_settings_recompute_everyone(engine: Engine) -> None:
    ingest_records(engine, "shop", business())
    reconcile(engine, FIRST)
    compute_figures(engine, FIRST, SETTINGS)
    assert compute_figures(engine, FIRST, SETTINGS).recomputed == 0
    other = SETTINGS.model_copy(update={"revenue_window_days": 31})
    assert compute_figures(engine, FIRST, other).recomputed == 30
    assert compute_figures(engine, FIRST - timedelta(days=1), other).recomputed == 30, (
        "an earlier as-of time recomputes everyone"
    )


def booked_twice(engine: Engine) -> tuple[int, list[dict[str, object]]]:
    """The business plus C0's 55.00 sale booked again in ``books``, reconciled: C0's ledger id
    and the ``transaction_match`` rows reconcile wrote, which are taken out of the table."""
    moment = FIRST - timedelta(days=9)
    ingest_records(engine, "shop", [*business(), sale("O-9", "C0", moment, 55)])
    books: list[Record] = [
        SourceCustomer("B0", email="c0@example.com"),
        sale("INV-9", "B0", moment, 55),
    ]
    ingest_records(engine, "books", books)
    reconcile(engine, FIRST)
    with engine.begin() as connection:
        matches = [dict(row) for row in connection.execute(select(MATCH)).mappings()]
        connection.execute(delete(MATCH))
    assert len(matches) == 1, "reconcile matched the two bookings"
    return ledger_ids(engine)["C0"], matches


def net_revenue(engine: Engine, customer_id: int) -> Decimal:
    with engine.connect() as connection:
        basis = stored_basis(connection).filter(pl.col("customer_id") == customer_id)
    return Decimal(basis["net_revenue"].item())


def assert_incremental_equals_full(engine: Engine) -> None:
    """A touched-only recompute stores what a full recompute computes."""
    incremental = compute_figures(engine, FIRST, SETTINGS)
    assert incremental.recomputed < incremental.customers, "only touched customers"
    kept_figures = stored(engine)
    with engine.connect() as connection:
        kept_basis = stored_basis(connection)
    full = compute_figures(engine, FIRST, SETTINGS, incremental=False)
    assert full.changed == 0, "a full recompute finds nothing to change"
    assert stored(engine) == kept_figures
    with engine.connect() as connection:
        assert stored_basis(connection).equals(kept_basis)


def test_a_sale_matched_after_the_last_run_is_counted_once(engine: Engine) -> None:
    customer, matches = booked_twice(engine)
    compute_figures(engine, FIRST, SETTINGS)
    assert net_revenue(engine, customer) == Decimal(110), "both bookings while unmatched"

    with engine.begin() as connection:  # as reconcile records a match
        connection.execute(insert(MATCH), matches)
    assert_incremental_equals_full(engine)
    assert net_revenue(engine, customer) == Decimal(55)


def test_a_match_removed_after_the_last_run_counts_both_bookings(engine: Engine) -> None:
    customer, matches = booked_twice(engine)
    with engine.begin() as connection:
        connection.execute(insert(MATCH), matches)
    compute_figures(engine, FIRST, SETTINGS)
    assert net_revenue(engine, customer) == Decimal(55)

    with engine.begin() as connection:  # as reconcile drops a match that no longer holds
        connection.execute(delete(MATCH))
    assert_incremental_equals_full(engine)
    assert net_revenue(engine, customer) == Decimal(110)
