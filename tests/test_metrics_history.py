"""History metrics (clm_metrics/history.py) with hand-computed worked examples, and the step
that stores them (sync/figures.py), the latter on both databases."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from clm_metrics import (
    METRICS,
    LedgerFrames,
    MetricValue,
    TransactionTuple,
    customer_metrics,
    customers_frame,
    metric_rows,
    transactions_frame,
)
from connectors.records import SourceCustomer, SourceTransaction, TransactionKind
from sync.figures import compute_figures
from sync.ledger import CustomerLink, CustomerMetrics, SourceCustomerRow
from sync.reconcile import reconcile
from tests.conftest import ingest_records

FIGURES = CustomerMetrics.__table__  # type: ignore[attr-defined]
LINK = CustomerLink.__table__  # type: ignore[attr-defined]
SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
AS_OF = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
HISTORY = (
    "orders",
    "net_revenue",
    "first_purchase",
    "last_purchase",
    "recency_days",
    "lifespan_days",
    "repeat_purchases",
    "avg_days_between_orders",
    "average_order_value",
    "revenue_12m",
)


def bought(
    customer: int, day: str, amount: str, kind: str = "sale", hour: int = 12
) -> TransactionTuple:
    moment = datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)
    return (customer, moment, kind, Decimal(amount))


def figures(
    rows: Sequence[TransactionTuple], as_of: datetime = AS_OF, customers: Sequence[int] = (1,)
) -> dict[int, dict[str, MetricValue]]:
    frames = LedgerFrames(customers_frame(customers), transactions_frame(rows))
    return dict(metric_rows(customer_metrics(frames, as_of).table))


def test_worked_example_refunds_and_amounts_already_in_home_currency() -> None:
    # Customer 1: the 2024-03-10 sale was EUR 90.00, booked at 100.00 in the home currency.
    (ann,) = figures(
        [
            bought(1, "2024-03-10", "100.00"),
            bought(1, "2024-01-05", "40.50"),
            bought(1, "2024-06-20", "9.99"),
            bought(1, "2024-06-25", "40.50", "refund"),
        ]
    ).values()
    assert {name: ann[name] for name in HISTORY} == {
        "orders": 3,  # refunds are not orders
        "net_revenue": Decimal("109.99"),  # 100.00 + 40.50 + 9.99 - 40.50
        "first_purchase": date(2024, 1, 5),
        "last_purchase": date(2024, 6, 20),  # a refund is not a purchase
        "recency_days": 11,  # 2024-06-20 to 2024-07-01
        "lifespan_days": 172,  # 2024-01-05 to the refund on 2024-06-25
        "repeat_purchases": 2,
        "avg_days_between_orders": 83.5,  # 167 days / 2 gaps
        "average_order_value": Decimal("36.66"),  # 109.99 / 3 = 36.6633
        "revenue_12m": Decimal("109.99"),  # all within 365 days
    }
    assert isinstance(ann["net_revenue"], Decimal)


def test_worked_example_one_order_customer_and_a_prospect() -> None:
    result = figures([bought(2, "2023-05-01", "25")], customers=(2, 3))
    one_order, prospect = result[2], result[3]
    assert {name: one_order[name] for name in HISTORY} == {
        "orders": 1,
        "net_revenue": Decimal("25.00"),
        "first_purchase": date(2023, 5, 1),
        "last_purchase": date(2023, 5, 1),
        "recency_days": 427,  # 366 days to 2024-05-01 (leap year) + 61
        "lifespan_days": 0,
        "repeat_purchases": 0,
        "avg_days_between_orders": None,  # no gap yet
        "average_order_value": Decimal("25.00"),
        "revenue_12m": Decimal("0.00"),  # the window starts 2023-07-02 12:00
    }
    assert {name: prospect[name] for name in HISTORY} == {
        "orders": 0,
        "net_revenue": Decimal("0.00"),
        "first_purchase": None,
        "last_purchase": None,
        "recency_days": None,
        "lifespan_days": None,
        "repeat_purchases": 0,
        "avg_days_between_orders": None,
        "average_order_value": None,
        "revenue_12m": Decimal("0.00"),
    }
    assert str(prospect["net_revenue"]) == "0.00"


def test_revenue_window_counts_sales_and_refunds_after_its_start() -> None:
    (values,) = figures(
        [
            bought(1, "2023-07-02", "10", hour=11),  # just before the window
            bought(1, "2023-07-02", "20", hour=13),  # just inside
            bought(1, "2024-01-01", "5", "refund"),
        ]
    ).values()
    assert (values["net_revenue"], values["revenue_12m"]) == (Decimal("25.00"), Decimal("15.00"))


def test_only_refunds_give_negative_revenue_and_no_purchase_dates() -> None:
    (values,) = figures([bought(1, "2024-02-01", "25", "refund")]).values()
    assert (values["orders"], values["net_revenue"]) == (0, Decimal("-25.00"))
    assert (values["first_purchase"], values["last_purchase"], values["recency_days"]) == (
        None,
    ) * 3
    assert (values["lifespan_days"], values["average_order_value"]) == (None, None)


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
    (values,) = figures([bought(1, "2024-01-01", amount) for amount in amounts]).values()
    assert str(values["net_revenue"]) == expected


def test_refunds_are_subtracted_before_rounding() -> None:
    (values,) = figures(
        [bought(1, "2024-01-01", "10.005"), bought(1, "2024-01-02", "0.0100", "refund")]
    ).values()
    # 9.995 rounds half-even to 10.00 (rounding each first would give 10.00 - 0.01 = 9.99).
    assert str(values["net_revenue"]) == "10.00"


def test_purchases_after_as_of_are_ignored_and_one_at_as_of_counts() -> None:
    rows = [
        bought(1, "2024-01-05", "10"),
        (1, AS_OF, "sale", Decimal("5")),
        (1, AS_OF + timedelta(seconds=1), "sale", Decimal("1000")),
        (1, AS_OF + timedelta(days=3), "refund", Decimal("15")),
    ]
    (values,) = figures(rows).values()
    assert (values["orders"], values["net_revenue"]) == (2, Decimal("15.00"))
    assert values["last_purchase"] == AS_OF.date()
    assert values["recency_days"] == 0

    (earlier,) = figures(rows, datetime(2024, 1, 4, tzinfo=UTC)).values()
    assert (earlier["orders"], earlier["net_revenue"], earlier["last_purchase"]) == (
        0,
        Decimal("0.00"),
        None,
    )


def test_recency_counts_calendar_days_to_the_as_of_date() -> None:
    late = [(1, datetime(2024, 6, 30, 23, 59, tzinfo=UTC), "sale", Decimal(1))]
    assert figures(late, datetime(2024, 7, 1, 0, 1, tzinfo=UTC))[1]["recency_days"] == 1
    assert figures(late, datetime(2024, 7, 31, 23, 0, tzinfo=UTC))[1]["recency_days"] == 31
    assert figures(late, datetime(2024, 6, 30, 23, 59, tzinfo=UTC))[1]["recency_days"] == 0


def test_dates_are_utc_dates_whatever_the_zone_of_the_inputs() -> None:
    new_york = timezone(timedelta(hours=-5))
    berlin = timezone(timedelta(hours=2))
    # 2024-06-30 22:00 in New York is 2024-07-01 03:00 UTC.
    evening = [(1, datetime(2024, 6, 30, 22, 0, tzinfo=new_york), "sale", Decimal(1))]
    # 2024-07-02 01:00 in Berlin is 2024-07-01 23:00 UTC.
    (values,) = figures(evening, datetime(2024, 7, 2, 1, 0, tzinfo=berlin)).values()
    assert values["first_purchase"] == values["last_purchase"] == date(2024, 7, 1)
    assert values["recency_days"] == 0


def test_every_customer_gets_every_metric() -> None:
    result = figures([bought(1, "2024-01-01", "1")], customers=(1, 2))
    assert [list(values) for values in result.values()] == [list(METRICS)] * 2


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
        return {ledger_id: json.loads(text) for ledger_id, text in rows}


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
    # C1 and C2 are one merged customer: two source records, two currencies, one refund.
    merged = figures[ledger_id_of(engine, "C1")]
    assert {name: merged[name] for name in HISTORY} == {
        "orders": 2,
        "net_revenue": "134.32",  # home amounts: 100.005 + 54.32 - 20.005
        "first_purchase": "2024-02-01",
        "last_purchase": "2024-05-01",
        "recency_days": 61,
        "lifespan_days": 91,  # 2024-02-01 to the refund on 2024-05-02
        "repeat_purchases": 1,
        "avg_days_between_orders": 90.0,
        "average_order_value": "67.16",
        "revenue_12m": "134.32",
    }
    prospect = figures[ledger_id_of(engine, "C3")]
    assert {name: prospect[name] for name in HISTORY} == {
        "orders": 0,
        "net_revenue": "0.00",
        "first_purchase": None,
        "last_purchase": None,
        "recency_days": None,
        "lifespan_days": None,
        "repeat_purchases": 0,
        "avg_days_between_orders": None,
        "average_order_value": None,
        "revenue_12m": "0.00",
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
        as_of: dict[int, datetime] = dict(rows.all())
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
