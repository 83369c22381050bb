"""The first per-customer figures (clm_metrics/basic.py) and the step that stores them
(sync/figures.py), the latter on both databases."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

import pytest
from sqlalchemy import Engine, select

from clm_metrics import METRICS, Purchase, customer_figures
from connectors.records import SourceCustomer, SourceTransaction, TransactionKind
from sync.figures import compute_figures
from sync.ledger import CustomerLink, CustomerMetrics, SourceCustomerRow
from sync.reconcile import reconcile
from tests.conftest import ingest_records

FIGURES = CustomerMetrics.__table__  # type: ignore[attr-defined]
LINK = CustomerLink.__table__  # type: ignore[attr-defined]
SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
AS_OF = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def bought(
    day: str, amount: str, kind: Literal["sale", "refund"] = "sale", hour: int = 12
) -> Purchase:
    moment = datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)
    return Purchase(moment, kind, Decimal(amount))


def test_orders_revenue_first_last_and_recency() -> None:
    figures = customer_figures(
        [
            bought("2024-03-10", "100.00"),
            bought("2024-01-05", "40.50"),
            bought("2024-06-20", "9.99"),
            bought("2024-06-25", "40.50", "refund"),
        ],
        AS_OF,
    )
    assert figures.orders == 3, "refunds are not orders"
    assert figures.net_revenue == Decimal("109.99")
    assert isinstance(figures.net_revenue, Decimal)
    assert figures.first_purchase == date(2024, 1, 5)
    assert figures.last_purchase == date(2024, 6, 20), "a refund is not a purchase"
    assert figures.recency_days == 11
    assert figures.values() == {
        "orders": 3,
        "net_revenue": Decimal("109.99"),
        "first_purchase": date(2024, 1, 5),
        "last_purchase": date(2024, 6, 20),
        "recency_days": 11,
    }
    assert set(figures.values()) == set(METRICS)


def test_a_prospect_without_orders_has_zero_revenue_and_no_dates() -> None:
    figures = customer_figures([], AS_OF)
    assert (figures.orders, figures.net_revenue) == (0, Decimal("0.00"))
    assert str(figures.net_revenue) == "0.00"
    assert (figures.first_purchase, figures.last_purchase, figures.recency_days) == (None,) * 3


def test_only_refunds_give_negative_revenue_and_no_purchase_dates() -> None:
    figures = customer_figures([bought("2024-02-01", "25", "refund")], AS_OF)
    assert (figures.orders, figures.net_revenue) == (0, Decimal("-25.00"))
    assert (figures.first_purchase, figures.last_purchase, figures.recency_days) == (None,) * 3


@pytest.mark.parametrize(
    ("amounts", "expected"),
    [
        (["0.125"], "0.12"),  # half-even: to the even cent
        (["0.135"], "0.14"),
        (["0.0050"], "0.00"),
        (["0.0150"], "0.02"),
        (["0.125", "0.125"], "0.25"),  # the sum is rounded once, not each amount
        (["10.0049"], "10.00"),
    ],
)
def test_net_revenue_is_rounded_to_cents_half_even(amounts: list[str], expected: str) -> None:
    figures = customer_figures([bought("2024-01-01", amount) for amount in amounts], AS_OF)
    assert str(figures.net_revenue) == expected


def test_refunds_are_subtracted_before_rounding() -> None:
    figures = customer_figures(
        [bought("2024-01-01", "10.005"), bought("2024-01-02", "0.0100", "refund")], AS_OF
    )
    # 9.995 rounds half-even to 10.00 (rounding each first would give 10.00 - 0.01 = 9.99).
    assert str(figures.net_revenue) == "10.00"


def test_purchases_after_as_of_are_ignored_and_one_at_as_of_counts() -> None:
    purchases = [
        bought("2024-01-05", "10"),
        Purchase(AS_OF, "sale", Decimal("5")),
        Purchase(AS_OF + timedelta(seconds=1), "sale", Decimal("1000")),
        Purchase(AS_OF + timedelta(days=3), "refund", Decimal("15")),
    ]
    figures = customer_figures(purchases, AS_OF)
    assert (figures.orders, figures.net_revenue) == (2, Decimal("15.00"))
    assert figures.last_purchase == AS_OF.date()
    assert figures.recency_days == 0

    earlier = customer_figures(purchases, datetime(2024, 1, 4, tzinfo=UTC))
    assert (earlier.orders, earlier.net_revenue, earlier.last_purchase) == (
        0,
        Decimal("0.00"),
        None,
    )


def test_recency_counts_calendar_days_to_the_as_of_date() -> None:
    late = Purchase(datetime(2024, 6, 30, 23, 59, tzinfo=UTC), "sale", Decimal(1))
    assert customer_figures([late], datetime(2024, 7, 1, 0, 1, tzinfo=UTC)).recency_days == 1
    assert customer_figures([late], datetime(2024, 7, 31, 23, 0, tzinfo=UTC)).recency_days == 31
    assert customer_figures([late], datetime(2024, 6, 30, 23, 59, tzinfo=UTC)).recency_days == 0


def test_dates_are_utc_dates_whatever_the_zone_of_the_inputs() -> None:
    new_york = timezone(timedelta(hours=-5))
    berlin = timezone(timedelta(hours=2))
    # 2024-06-30 22:00 in New York is 2024-07-01 03:00 UTC.
    evening = Purchase(datetime(2024, 6, 30, 22, 0, tzinfo=new_york), "sale", Decimal(1))
    # 2024-07-02 01:00 in Berlin is 2024-07-01 23:00 UTC.
    as_of = datetime(2024, 7, 2, 1, 0, tzinfo=berlin)
    figures = customer_figures([evening], as_of)
    assert figures.first_purchase == figures.last_purchase == date(2024, 7, 1)
    assert figures.recency_days == 0


# -- the stored figures, through the ledger --------------------------------------------------


def sale(
    external_id: str,
    customer: str,
    day: str,
    amount: str,
    kind: TransactionKind = TransactionKind.SALE,
    **extra: Any,
) -> SourceTransaction:
    return SourceTransaction(
        external_id,
        customer,
        datetime.fromisoformat(day).replace(tzinfo=UTC),
        Decimal(amount),
        extra.pop("currency", "USD"),
        kind,
        **extra,
    )


def stored(engine: Engine) -> dict[int, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(FIGURES.c.ledger_customer_id, FIGURES.c.values_json))
        return {ledger_id: json.loads(text) for ledger_id, text in rows.tuples()}


def ledger_id_of(engine: Engine, external_id: str, system: str = "shop") -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(LINK.c.ledger_customer_id)
                .join(SOURCE, SOURCE.c.id == LINK.c.source_customer_id)
                .where(SOURCE.c.system == system, SOURCE.c.external_id == external_id)
            ).scalar_one()
        )


def test_stored_figures_per_ledger_customer(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            SourceCustomer("C1", email="ann@example.com"),
            SourceCustomer("C2", email="ANN@example.com"),  # the same person
            SourceCustomer("C3", email="prospect@example.com"),
            sale("T1", "C1", "2024-02-01", "100.0050"),
            sale("T2", "C2", "2024-05-01", "50", currency="EUR", home_amount=Decimal("54.32")),
            sale("T3", "C1", "2024-05-02", "20.0050", TransactionKind.REFUND),
            sale("T4", "C2", "2024-08-01", "999"),  # after as-of
        ],
    )
    reconcile(engine, AS_OF)

    result = compute_figures(engine, AS_OF)

    assert (result.customers, result.changed) == (2, 2)
    figures = stored(engine)
    assert figures[ledger_id_of(engine, "C1")] == {
        "orders": 2,
        "net_revenue": "134.32",  # home amounts: 100.005 + 54.32 - 20.005
        "first_purchase": "2024-02-01",
        "last_purchase": "2024-05-01",
        "recency_days": 61,
    }
    assert figures[ledger_id_of(engine, "C3")] == {
        "orders": 0,
        "net_revenue": "0.00",
        "first_purchase": None,
        "last_purchase": None,
        "recency_days": None,
    }


def test_figures_are_rewritten_only_when_they_change(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [SourceCustomer("C1"), SourceCustomer("C2"), sale("T1", "C1", "2024-06-01", "10")],
    )
    reconcile(engine, AS_OF)
    compute_figures(engine, AS_OF)
    assert compute_figures(engine, AS_OF).changed == 0

    # A day later only the buyer's recency moves; the prospect's figures stay the same.
    later = AS_OF + timedelta(days=1)
    assert compute_figures(engine, later).changed == 1
    with engine.connect() as connection:
        rows = connection.execute(select(FIGURES.c.ledger_customer_id, FIGURES.c.as_of))
        as_of: dict[int, datetime] = dict(rows.tuples().all())
    assert as_of[ledger_id_of(engine, "C1")] == later
    assert as_of[ledger_id_of(engine, "C2")] == AS_OF
    assert stored(engine)[ledger_id_of(engine, "C1")]["recency_days"] == 31


def test_deleted_transactions_no_longer_count(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            SourceCustomer("C1"),
            sale("T1", "C1", "2024-06-01", "10"),
            sale("T2", "C1", "2024-06-02", "5"),
        ],
    )
    reconcile(engine, AS_OF)
    compute_figures(engine, AS_OF)
    deleted = SourceTransaction(
        "T2", "C1", datetime(2024, 6, 2, tzinfo=UTC), Decimal(5), "USD", deleted=True
    )
    ingest_records(engine, "shop", [deleted])

    assert compute_figures(engine, AS_OF).changed == 1
    figures = stored(engine)[ledger_id_of(engine, "C1")]
    assert (figures["orders"], figures["net_revenue"], figures["last_purchase"]) == (
        1,
        "10.00",
        "2024-06-01",
    )


def test_transactions_of_another_system_with_the_same_customer_id_do_not_mix(
    engine: Engine,
) -> None:
    ingest_records(engine, "shop", [SourceCustomer("C1"), sale("T1", "C1", "2024-06-01", "10")])
    ingest_records(engine, "books", [SourceCustomer("C1"), sale("T1", "C1", "2024-06-01", "7")])
    reconcile(engine, AS_OF)
    compute_figures(engine, AS_OF)

    shop, books = ledger_id_of(engine, "C1", "shop"), ledger_id_of(engine, "C1", "books")
    assert shop != books
    figures = stored(engine)
    assert (figures[shop]["net_revenue"], figures[books]["net_revenue"]) == ("10.00", "7.00")
