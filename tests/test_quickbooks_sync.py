"""QuickBooks pull against the stand-in: backfill, CDC, the look-back and cap fallbacks, money."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from connectors.errors import SourceError
from sandbox.http import Faults, Throttle
from sandbox.quickbooks import QuickBooksStandIn
from sandbox.synthetic import BusinessSpec
from sync.ingest import IngestCounts, StreamIngest, load_cursor
from sync.ledger import QuarantineRow, SourceTransactionRow
from tests.conftest import ROW_CONTEXT
from tests.quickbooks_support import (
    connect,
    expected_customers,
    expected_transactions,
    ledger_customers,
    ledger_spend,
    ledger_transactions,
    pull,
)

SMALL = BusinessSpec(seed=11, customers=60)


@pytest.fixture
def stand_in() -> Iterator[QuickBooksStandIn]:
    with QuickBooksStandIn(SMALL) as server:
        yield server


def test_backfill_then_edits_deletions_merges_and_refunds(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine, page_size=50)

    pull(engine, made)

    assert ledger_transactions(engine) == expected_transactions(stand_in)
    assert set(ledger_customers(engine)) == expected_customers(stand_in)
    assert len(ledger_customers(engine)) == len(stand_in.company.live("Customer"))
    # Spend: only the marketing lines, one record per document and channel.
    spend = ledger_spend(engine)
    documents = stand_in.company.live("Purchase") + stand_in.company.live("Bill")
    assert len(spend) == len(documents)
    assert sum(amount for _, amount in spend.values()) == sum(
        Decimal(str(d["Line"][0]["Amount"])) for d in documents
    )

    receipt = next(
        r for r in stand_in.company.live("SalesReceipt") if int(r["CustomerRef"]["value"]) > 10
    )
    merged, survivor = receipt["CustomerRef"]["value"], "6"
    stand_in.company.update("Customer", "3", PrimaryEmailAddr={"Address": "new@example.com"})
    stand_in.company.deactivate("4")
    stand_in.company.merge(merged, survivor)
    invoice = stand_in.company.live("Invoice")[0]
    stand_in.company.delete("Invoice", invoice["Id"])
    stand_in.company.add_document("RefundReceipt", "7", "19.99")
    stand_in.company.add_document("SalesReceipt", "8", "250.00")
    stand_in.company.advance(timedelta(minutes=5))

    counts = pull(engine, made)

    assert ledger_transactions(engine) == expected_transactions(stand_in)
    customers = ledger_customers(engine)
    assert set(customers) == expected_customers(stand_in)
    assert "4" not in customers and merged not in customers
    assert customers["3"]["email"] == "new@example.com"
    assert ledger_transactions(engine)[f"sales_receipts/{receipt['Id']}"][0] == survivor
    assert counts.deleted == 3  # customer 4, the merged customer, the invoice
    # A cycle with nothing changed stores nothing.
    stand_in.company.advance(timedelta(minutes=5))
    again = pull(engine, made)
    assert again.new + again.changed + again.deleted == 0


def test_a_cycle_with_more_changes_than_one_cdc_answer_holds(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine)
    pull(engine, made)
    stand_in.company.advance(timedelta(minutes=5))
    for number in range(1_100):
        stand_in.company.add_document("SalesReceipt", str(number % 60 + 1), f"{number + 1}.00")
    for invoice in stand_in.company.live("Invoice")[:5]:
        stand_in.company.delete("Invoice", invoice["Id"])
    stand_in.company.advance(timedelta(minutes=5))

    pull(engine, made)

    assert stand_in.cut_cdc_answers == 1
    assert ledger_transactions(engine) == expected_transactions(stand_in)


def test_deletions_the_cut_cdc_answer_left_out_are_recorded(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    """The stand-in cuts in Id order: 1000 edits of low ids fill the answer, so the deletions
    of the highest ids never arrive by CDC; the complete query pass finds them missing."""
    made = connect(stand_in, engine)
    pull(engine, made)
    stand_in.company.advance(timedelta(minutes=5))
    for number in range(1_100):
        stand_in.company.add_document("SalesReceipt", str(number % 60 + 1), f"{number + 1}.00")
    stand_in.company.advance(timedelta(minutes=5))
    pull(engine, made)
    receipts = sorted(stand_in.company.live("SalesReceipt"), key=lambda r: int(r["Id"]))
    stand_in.company.advance(timedelta(minutes=5))
    for receipt in receipts[:1_000]:
        stand_in.company.update("SalesReceipt", receipt["Id"], PrivateNote="edited")
    gone = [receipt["Id"] for receipt in receipts[-5:]]
    for receipt_id in gone:
        stand_in.company.delete("SalesReceipt", receipt_id)
    stand_in.company.advance(timedelta(minutes=5))
    # The cycle stops after the cut answer and the first page of the complete pass ...
    receipts_stream = next(s for s in made.streams() if s.name == "sales_receipts")
    stop = threading.Event()
    pages: list[IngestCounts] = []

    def count(page: IngestCounts) -> None:
        pages.append(page)
        if len(pages) == 2:
            stop.set()

    ingest = StreamIngest(engine, made.system, receipts_stream, ROW_CONTEXT)
    interrupted = ingest.run(None, stop, count)
    assert interrupted.deleted == 0
    assert set(gone) < {key.split("/")[1] for key in ledger_transactions(engine)}
    with engine.connect() as connection:
        assert load_cursor(connection, made.system, "sales_receipts")["pass"]

    # ... and the next one completes the same pass.
    counts = pull(engine, made)

    assert stand_in.cut_cdc_answers == 2
    assert counts.deleted == len(gone)
    assert ledger_transactions(engine) == expected_transactions(stand_in)
    table = SourceTransactionRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        flagged = connection.execute(
            select(table.c.external_id).where(
                table.c.stream == "sales_receipts", table.c.deleted.is_(True)
            )
        ).scalars()
        assert sorted(flagged) == sorted(gone)
    # The next cycle is back on CDC and finds nothing to do.
    stand_in.company.advance(timedelta(minutes=5))
    again = pull(engine, made)
    assert again.new + again.changed + again.deleted == 0
    assert stand_in.cut_cdc_answers == 2


def test_a_cursor_older_than_the_cdc_window_falls_back_to_a_query(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine)
    pull(engine, made)
    stand_in.company.advance(timedelta(days=40))
    stand_in.company.add_document("Invoice", "9", "77.70")
    stand_in.company.update("Customer", "10", DisplayName="Renamed Ltd")
    gone = stand_in.company.live("Invoice")[0]["Id"]
    stand_in.company.delete("Invoice", gone)

    counts = pull(engine, made)

    assert ledger_transactions(engine) == expected_transactions(stand_in)
    assert f"invoices/{gone}" not in ledger_transactions(engine)
    assert counts.deleted == 1  # a query shows no deletions: the complete pass finds it gone
    assert ledger_customers(engine)["10"]["name"] == "Renamed Ltd"


def test_money_refund_credit_memo_and_foreign_currency(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine)
    customer = stand_in.company.add_customer("Money Case Ltd")
    invoice = stand_in.company.add_document("Invoice", customer, "500.00")
    credit = stand_in.company.add_document("CreditMemo", customer, "120.00")
    refund = stand_in.company.add_document("RefundReceipt", customer, "30.00")
    foreign = stand_in.company.add_document("Invoice", customer, "200.00", "EUR", "1.0850")

    pull(engine, made)

    ledger = ledger_transactions(engine)
    assert ledger[f"invoices/{invoice['Id']}"][1:] == (
        "sale",
        Decimal("500.00"),
        "USD",
        Decimal("500.00"),
    )
    assert ledger[f"credit_memos/{credit['Id']}"][1:] == (
        "refund",
        Decimal("120.00"),
        "USD",
        Decimal("120.00"),
    )
    assert ledger[f"refund_receipts/{refund['Id']}"][1:] == (
        "refund",
        Decimal("30.00"),
        "USD",
        Decimal("30.00"),
    )
    assert ledger[f"invoices/{foreign['Id']}"][1:] == (
        "sale",
        Decimal("200.00"),
        "EUR",
        Decimal("217.00"),
    )


def test_sub_customers_roll_up_to_their_parent(stand_in: QuickBooksStandIn, engine: Engine) -> None:
    parent = stand_in.company.add_customer("Parent Co")
    job = stand_in.company.add_customer("Parent Co:Kitchen job", parent_id=parent)
    document = stand_in.company.add_document("Invoice", job, "90.00")
    made = connect(stand_in, engine, roll_up_sub_customers=True)

    pull(engine, made)

    assert ledger_transactions(engine)[f"invoices/{document['Id']}"][0] == parent
    customers = ledger_customers(engine)
    assert parent in customers and job not in customers
    # A customer that becomes a sub-customer later stops being a customer of its own.
    stand_in.company.update("Customer", "5", ParentRef={"value": parent}, Job=True)
    stand_in.company.advance(timedelta(minutes=5))
    pull(engine, made)
    assert "5" not in ledger_customers(engine)


def test_failing_requests_give_the_same_ledger_and_stay_under_the_throttle(
    engine: Engine,
) -> None:
    """A fifth of the requests fail (5xx, 429, stalls past the timeout, cut-off JSON); the
    throttle is QuickBooks' shape at 1/60 of the time scale (500 a second)."""
    faults = Faults(
        server_error=0.06,
        throttle=0.05,
        stall=0.04,
        truncate=0.05,
        stall_seconds=0.6,
        retry_after=0.05,
        seed=3,
    )
    throttle = Throttle(max_requests=25, window=1.0, max_concurrent=10)
    with QuickBooksStandIn(SMALL, faults=faults, throttle=throttle) as stand_in:
        clean = QuickBooksStandIn(SMALL)
        settings = {"page_size": 10, "throttle": {"requests_per_minute": 25}}
        made = connect(stand_in, engine, timeout=(1.0, 0.3), window=1.0, **settings)
        pull(engine, made)
        stand_in.company.add_document("Invoice", "12", "42.00")
        clean.company.add_document("Invoice", "12", "42.00")
        stand_in.company.advance(timedelta(minutes=5))
        pull(engine, made)

        stats = stand_in.server.stats
        assert ledger_transactions(engine) == expected_transactions(clean)
        assert set(ledger_customers(engine)) == expected_customers(clean)
        assert stand_in.server.throttle.rejected == 0
        assert sum(stats.faults.values()) >= 0.12 * stats.requests
        assert stats.requests > 60


def test_cdc_refused_by_the_server_falls_back_to_a_query(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    """Our clock says the cursor is recent; QuickBooks' clock says it is past the window."""
    made = connect(stand_in, engine, clock=lambda: datetime.now(UTC))
    pull(engine, made)
    stand_in.company.advance(timedelta(days=31))
    added = stand_in.company.add_document("SalesReceipt", "9", "12.34")
    gone = stand_in.company.live("SalesReceipt")[0]["Id"]
    stand_in.company.delete("SalesReceipt", gone)

    pull(engine, made)

    assert f"sales_receipts/{gone}" not in ledger_transactions(engine)
    assert ledger_transactions(engine)[f"sales_receipts/{added['Id']}"][2] == Decimal("12.34")
    assert ledger_transactions(engine) == expected_transactions(stand_in)


def test_an_object_that_cannot_be_mapped_is_quarantined_and_the_rest_loads(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine)
    broken = stand_in.company.live("Invoice")[0]["Id"]
    stand_in.company.update("Invoice", broken, TxnDate="31/12/2025")

    counts = pull(engine, made)

    assert counts.quarantined == 1
    with engine.connect() as connection:
        reason, location, raw = connection.execute(
            select(QuarantineRow.reason, QuarantineRow.location, QuarantineRow.raw)  # type: ignore[call-overload]
        ).one()
    assert reason.startswith(f"Invoice {broken}: TxnDate '31/12/2025' is not a date")
    assert location.startswith("query 'SELECT * FROM Invoice")
    assert '"31/12/2025"' in raw
    expected = expected_transactions(stand_in)
    del expected[f"invoices/{broken}"]
    assert ledger_transactions(engine) == expected


def test_moving_a_spend_line_to_another_account_moves_the_spend(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine)
    pull(engine, made)
    purchase = stand_in.company.live("Purchase")[0]
    line = purchase["Line"][0]
    channel = line["AccountBasedExpenseLineDetail"]["AccountRef"]["name"].split(":")[1]
    other = "events" if channel != "events" else "search"
    account = {"AccountRef": {"name": f"Advertising:{other}"}}
    moved = {**line, "AccountBasedExpenseLineDetail": account}
    stand_in.company.update("Purchase", purchase["Id"], Line=[moved, purchase["Line"][1]])
    stand_in.company.advance(timedelta(minutes=5))

    pull(engine, made)

    spend = ledger_spend(engine)
    assert f"purchases/{purchase['Id']}:{channel}" not in spend
    assert spend[f"purchases/{purchase['Id']}:{other}"] == (other, Decimal(str(line["Amount"])))


def test_a_credit_card_credit_is_not_marketing_spend(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine)
    purchase = stand_in.company.live("Purchase")[0]
    stand_in.company.update("Purchase", purchase["Id"], Credit=True)

    pull(engine, made)

    prefix = f"purchases/{purchase['Id']}:"
    assert not [key for key in ledger_spend(engine) if key.startswith(prefix)]


def test_an_answer_without_a_query_response_is_an_error_not_an_empty_page(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine)
    stand_in.shapeless_answers = 1

    with pytest.raises(SourceError, match="no QueryResponse"):
        pull(engine, made)
    pull(engine, made)

    assert ledger_transactions(engine) == expected_transactions(stand_in)
