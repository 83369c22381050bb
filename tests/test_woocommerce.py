"""The WooCommerce connector against the REST stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from config.models import WooCommerceSource
from connectors.errors import AuthError, SourceError
from connectors.records import FieldUpdate, SourceReferral, SourceTransaction
from connectors.woocommerce import WooCommerceConnector
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.streams import WooOrders, guest_record, order_records
from sandbox.http import Faults, Request, Response, SandboxServer
from sandbox.shop import REFERRAL_STYLES, ShopBusiness, build_shop, guest_key, referral_code
from sandbox.synthetic import BusinessSpec
from sandbox.woocommerce import WooStandIn, customer_item
from sync.db import create_ledger_engine, ensure_current_schema
from sync.export import EXPORT_COLUMNS, customer_rows
from sync.ingest import _KindIngest
from sync.push import render
from sync.runs import RunStatus
from tests.shops import (
    CUSTOMERS,
    FAST,
    PUSH_FIELDS,
    REFERRALS,
    TRANSACTIONS,
    app_config,
    cycle_ok,
    expected_customers,
    expected_transactions,
    ledger_customers,
    ledger_referrals,
    ledger_transactions,
    service_with,
)

SPEC = BusinessSpec(seed=13, customers=160)
RULES = {
    "code_pattern": r"^ref-(\d+)$",
    "order_attribute": "referred_by",
    "note_pattern": r"Referred by (\S+)",
    "landing_parameter": "ref",
}


@pytest.fixture(scope="module")
def built_shop() -> ShopBusiness:
    return build_shop(SPEC)


@pytest.fixture
def shop(built_shop: ShopBusiness) -> ShopBusiness:
    return copy.deepcopy(built_shop)


@pytest.fixture
def stand_in(shop: ShopBusiness) -> Iterator[tuple[WooStandIn, SandboxServer]]:
    fake = WooStandIn(shop)
    with fake.server() as server:
        yield fake, server


def source_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "woocommerce",
        "name": "woo",
        "url": url,
        "consumer_key": "ck_sandbox",
        "consumer_secret": "cs_sandbox",
        "referrals": RULES,
        "push": {"fields": PUSH_FIELDS},
    } | extra


def connector_for(settings: dict[str, Any]) -> WooCommerceConnector:
    source = WooCommerceSource.model_validate(settings)
    return WooCommerceConnector(source, WooClient(source, retry=FAST, timeout=(2.0, 5.0)))


def test_backfill_then_an_edit_and_a_refund_match_the_shop(
    engine: Engine, shop: ShopBusiness, stand_in: tuple[WooStandIn, SandboxServer]
) -> None:
    _, server = stand_in
    settings = source_settings(server.url, push={"enabled": False})
    service = service_with(engine, app_config(engine, settings), connector_for(settings))

    cycle_ok(service)

    assert ledger_transactions(engine, "woo") == expected_transactions(shop)
    assert ledger_customers(engine, "woo") == expected_customers(shop)
    assert ledger_referrals(engine, "woo") == {
        (r.referrer, r.referred, r.first_order) for refs in shop.referrals.values() for r in refs
    }

    edited, refunded = sorted(shop.orders)[10], sorted(shop.orders)[20]
    shop.edit_order(edited, Decimal("77.70"))
    shop.add_refund(refunded, Decimal("1.50"))
    outcome = cycle_ok(service)

    assert ledger_transactions(engine, "woo") == expected_transactions(shop)
    counts = outcome.sources[0].counts
    assert (counts.new, counts.changed) == (1, 1)


@pytest.mark.parametrize("style", [*REFERRAL_STYLES, "code_table"])
def test_referral_records_match_the_truth_for_each_style(
    shop: ShopBusiness, stand_in: tuple[WooStandIn, SandboxServer], style: str
) -> None:
    _, server = stand_in
    truth_style = "code" if style == "code_table" else style
    truth = {(r.referrer, r.referred, r.first_order) for r in shop.referrals[truth_style]}
    code_rule = {"code_pattern": RULES["code_pattern"]}
    rules = {
        "code": code_rule,
        "code_table": {"codes": {referral_code(int(r[0])): r[0] for r in truth}},
        "attribute": {"order_attribute": "referred_by"},
        "note": {"note_pattern": RULES["note_pattern"]} | code_rule,
        "landing_page": {"landing_parameter": "ref"} | code_rule,
    }[style]
    connector = connector_for(source_settings(server.url, referrals=rules))
    (stream,) = [s for s in connector.streams() if s.name == "orders"]

    found = [r for page in stream.pages({}) for r in page.records if isinstance(r, SourceReferral)]

    assert truth
    assert {
        (r.referrer_external_id, r.referred_external_id, r.first_order_external_id)
        for r in found
        if r.method == truth_style
    } == truth


def test_meta_data_holds_the_metrics_and_a_second_cycle_writes_nothing(
    engine: Engine, shop: ShopBusiness, stand_in: tuple[WooStandIn, SandboxServer]
) -> None:
    fake, server = stand_in
    settings = source_settings(server.url)
    service = service_with(engine, app_config(engine, settings), connector_for(settings))

    first = cycle_ok(service)
    calls = fake.batch_calls
    second = cycle_ok(service)

    assert first.step is not None and second.step is not None
    (pushed,) = first.step.pushes
    assert pushed.failed == 0 and pushed.guests_skipped == len(shop.guests())
    assert second.step.pushes[0].planned == 0 and fake.batch_calls == calls
    column = {name: index for index, name in enumerate(EXPORT_COLUMNS)}
    checked = 0
    for row in customer_rows(engine):
        for entry in row[column["sources"]].split(";"):
            system, external_id = entry.split(":", 1)
            if system != "woo" or not external_id.isdigit():
                continue
            meta = shop.customers[int(external_id)].meta_data
            for mapping in PUSH_FIELDS:
                value = row[column[mapping["metric"]]]
                if value:
                    shown = render(
                        int(value) if mapping["format"] == "d" else value, mapping["format"]
                    )
                    assert meta[mapping["field"]] == shown
                    checked += 1
    assert checked > len(shop.customers)


def test_customers_are_reread_each_cycle_or_on_their_own_schedule(
    engine: Engine, shop: ShopBusiness, stand_in: tuple[WooStandIn, SandboxServer]
) -> None:
    fake, server = stand_in
    every = connector_for(source_settings(server.url))
    settings = source_settings(server.url, customers_every="1d", push={"enabled": False})
    daily = connector_for(settings)
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    daily.customers.clock = lambda: now[0]
    service = service_with(engine, app_config(engine, settings), daily)

    cycle_ok(service)
    read = fake.requests["customers"]
    second = cycle_ok(service)
    assert fake.requests["customers"] == read, "customers read again within the day"
    now[0] += timedelta(days=1, seconds=1)
    third = cycle_ok(service)

    assert fake.requests["customers"] == 2 * read
    for outcome in (second, third):
        assert (outcome.sources[0].counts.new, outcome.sources[0].counts.changed) == (0, 0)
    assert every.customers.every is None


def test_faults_still_give_the_right_ledger(tmp_path: Path, shop: ShopBusiness) -> None:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ensure_current_schema(engine)
    fake = WooStandIn(shop)
    faults = Faults(server_error=0.1, throttle=0.1, truncate=0.1, retry_after=0.01, seed=9)
    with fake.server(faults) as server:
        settings = source_settings(server.url)
        cycle_ok(service_with(engine, app_config(engine, settings), connector_for(settings)))
        assert sum(server.stats.faults.values()) > 5, server.stats.faults

    assert ledger_transactions(engine, "woo") == expected_transactions(shop)
    assert ledger_customers(engine, "woo") == expected_customers(shop)


def test_a_stripped_authorization_header_falls_back_to_the_query_string(
    shop: ShopBusiness,
) -> None:
    fake = WooStandIn(shop, strip_authorization=True)
    with fake.server() as server:
        connector = connector_for(source_settings(server.url))
        pages = list(connector.streams()[0].pages({}))

    assert sum(len(page.records) for page in pages) == len(shop.customers)
    assert connector.client.query_auth


def test_plain_http_to_another_host_is_refused() -> None:
    with pytest.raises(SourceError, match="https"):
        connector_for(source_settings("http://shop.example.com"))


def test_meta_data_goes_in_batches_of_at_most_100_and_an_unknown_id_fails_alone(
    shop: ShopBusiness, stand_in: tuple[WooStandIn, SandboxServer]
) -> None:
    fake, server = stand_in
    writer = connector_for(source_settings(server.url, push={"batch_size": 500})).writer()
    assert writer is not None and writer.max_batch == 100
    known = sorted(shop.customers)[0]

    results = writer.write(
        [
            FieldUpdate(str(known), "clm_orders", "4"),
            FieldUpdate(str(known), "clm_revenue", "10.00"),
            FieldUpdate("424242", "clm_orders", "1"),
        ]
    )

    assert [result.error is None for result in results] == [True, True, False]
    assert shop.customers[known].meta_data == {"clm_orders": "4", "clm_revenue": "10.00"}
    assert fake.batch_calls == 1


def test_order_mapping_signs_refunds_and_tombstones_unpaid_orders() -> None:
    order = {
        "id": 41,
        "number": "1041",
        "status": "completed",
        "currency": "EUR",
        "date_created_gmt": "2025-03-01T10:00:00",
        "date_modified_gmt": "2025-03-02T10:00:00",
        "discount_total": "0.00",
        "total": "30.00",
        "customer_id": 0,
        "customer_note": "",
        "billing": {"first_name": "Ann", "last_name": "Lee", "email": " Ann@Example.com "},
        "refunds": [{"id": 7, "total": "-5.00"}],
    }
    refunds = [{"id": 7, "date_created_gmt": "2025-03-02T10:00:00", "amount": "5.00"}]

    sale, refund = order_records(order, refunds)
    (cancelled,) = order_records(order | {"status": "cancelled"}, refunds)
    guest = guest_record(order)

    assert (sale.customer_external_id, sale.reference, sale.amount) == (
        "guest:ann@example.com",
        "1041",
        Decimal("30.00"),
    )
    assert (refund.amount, refund.refund_of, refund.occurred_at.tzinfo) == (
        Decimal("5.00"),
        "41",
        UTC,
    )
    assert cancelled.deleted and cancelled.external_id == "41"
    assert guest is not None and guest.guest and guest.external_id == "guest:ann@example.com"
    assert guest_record(order | {"customer_id": 5}) is None


def test_a_customer_gone_from_a_complete_pass_is_flagged_deleted(
    tmp_path: Path, shop: ShopBusiness, stand_in: tuple[WooStandIn, SandboxServer]
) -> None:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ensure_current_schema(engine)
    _, server = stand_in
    settings = source_settings(server.url, push={"enabled": False})
    service = service_with(engine, app_config(engine, settings), connector_for(settings))
    cycle_ok(service)

    gone = sorted(shop.customers)[3]
    del shop.customers[gone]
    outcome = cycle_ok(service)

    assert str(gone) not in ledger_customers(engine, "woo")
    assert outcome.sources[0].counts.deleted == 1


@pytest.mark.parametrize("route", [True, False], ids=["refunds-route", "per-order"])
def test_refunds_are_read_per_page_or_per_order_on_older_stores(
    shop: ShopBusiness, route: bool
) -> None:
    fake = WooStandIn(shop, refunds_route=route)
    with fake.server() as server:
        connector = connector_for(source_settings(server.url))
        (orders,) = [s for s in connector.streams() if s.name == "orders"]
        records = [r for page in orders.pages({}) for r in page.records]

    rows = {
        (r.external_id, r.transaction_kind.value, r.amount, r.customer_external_id)
        for r in records
        if isinstance(r, SourceTransaction)
    }
    assert rows == expected_transactions(shop)
    with_refunds = sum(1 for order in shop.orders.values() if order.refunds)
    per_order = fake.requests.get("refunds", 0)
    per_page = fake.requests.get("all_refunds", 0)
    if route:
        assert per_order == 0 and 0 < per_page < with_refunds
    else:
        assert per_order == with_refunds


def test_an_order_modified_during_a_pass_is_read_by_the_next_one(
    shop: ShopBusiness, stand_in: tuple[WooStandIn, SandboxServer]
) -> None:
    _, server = stand_in
    connector = connector_for(source_settings(server.url, page_size=50))
    (orders,) = [s for s in connector.streams() if s.name == "orders"]
    first_page, late = sorted(shop.orders)[5], sorted(shop.orders)[-5]

    cursor: dict[str, Any] = {}
    for number, page in enumerate(orders.pages({})):
        if number == 1:  # page 0 is read: change an order on it, then one further on
            shop.edit_order(first_page, Decimal("11.11"))
            shop.edit_order(late, Decimal("22.22"))
        cursor = dict(page.cursor)
    again = {
        r.external_id: r
        for page in orders.pages(cursor)
        for r in page.records
        if isinstance(r, SourceTransaction)
    }

    assert again[str(first_page)].amount == Decimal("11.11")
    assert again[str(late)].amount == Decimal("22.22")
    assert len(again) < len(shop.orders) / 4, "the next pass read far more than the changes"


def test_a_wrong_key_names_the_settings_to_check(
    shop: ShopBusiness, stand_in: tuple[WooStandIn, SandboxServer]
) -> None:
    _, server = stand_in
    connector = connector_for(source_settings(server.url, consumer_secret="cs_wrong"))

    with pytest.raises(AuthError, match="consumer_key and consumer_secret") as refused:
        list(connector.streams()[0].pages({}))
    assert "cs_wrong" not in str(refused.value)


def test_a_server_that_ignores_the_page_parameter_stops_the_pass(shop: ShopBusiness) -> None:
    server = SandboxServer()
    first_hundred = sorted(shop.customers.values(), key=lambda customer: customer.id)[:100]

    @server.route("GET", r"/wp-json/wc/v3/customers")
    def always_page_one(request: Request) -> Response:
        return Response.json([customer_item(customer) for customer in first_hundred])

    with server:
        connector = connector_for(source_settings(server.url))
        with pytest.raises(SourceError, match="ignore the page parameter"):
            list(connector.streams()[0].pages({}))


def test_a_cycle_reads_each_order_page_once(
    engine: Engine, shop: ShopBusiness, stand_in: tuple[WooStandIn, SandboxServer]
) -> None:
    _, server = stand_in
    settings = source_settings(server.url, page_size=40, push={"enabled": False})
    service = service_with(engine, app_config(engine, settings), connector_for(settings))
    orders_route = "/wp-json/wc/v3/orders"

    cycle_ok(service)
    backfill = server.stats.by_route[orders_route]
    shop.edit_order(sorted(shop.orders)[3], Decimal("12.34"))
    cycle_ok(service)

    assert backfill == math.ceil(len(shop.orders) / 40), "an order page was read twice"
    assert server.stats.by_route[orders_route] == backfill + 1
    assert ledger_customers(engine, "woo") == expected_customers(shop)
    assert ledger_referrals(engine, "woo") == {
        (r.referrer, r.referred, r.first_order) for refs in shop.referrals.values() for r in refs
    }


def test_a_crash_between_the_kinds_of_an_order_page_loses_and_doubles_nothing(
    engine: Engine,
    shop: ShopBusiness,
    stand_in: tuple[WooStandIn, SandboxServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, server = stand_in
    settings = source_settings(server.url, page_size=40, push={"enabled": False})
    service = service_with(engine, app_config(engine, settings), connector_for(settings))
    store = _KindIngest.store
    referral_parts = [0]

    def crash_on_the_second_referrals(self: _KindIngest, *args: Any) -> Any:
        if self.name == "referrals":
            referral_parts[0] += 1
            if referral_parts[0] == 2:
                raise RuntimeError("power cut after the orders and guests of page 2")
        return store(self, *args)

    monkeypatch.setattr(_KindIngest, "store", crash_on_the_second_referrals)
    assert service.pull("woo").status == RunStatus.FAILED
    first_page = {o.id: o for o in sorted(shop.orders.values(), key=lambda o: o.id)[:40]}
    stored = ledger_transactions(engine, "woo")
    assert {int(row[0]) for row in stored if row[1] == "sale"} == set(first_page)
    assert set(ledger_customers(engine, "woo")) - {str(c) for c in shop.customers} == {
        guest_key(o.email) for o in first_page.values() if o.customer_id is None and o.email
    }
    assert {r[2] for r in ledger_referrals(engine, "woo")} <= {str(o) for o in first_page}

    monkeypatch.setattr(_KindIngest, "store", store)
    cycle_ok(service)

    assert ledger_transactions(engine, "woo") == expected_transactions(shop)
    assert ledger_customers(engine, "woo") == expected_customers(shop)
    assert ledger_referrals(engine, "woo") == {
        (r.referrer, r.referred, r.first_order) for refs in shop.referrals.values() for r in refs
    }
    truth = {
        CUSTOMERS: len(expected_customers(shop)),
        TRANSACTIONS: len(expected_transactions(shop)),
        REFERRALS: sum(len(refs) for refs in shop.referrals.values()),
    }
    with engine.connect() as connection:
        for table, expected in truth.items():
            count = select(func.count()).select_from(table).where(table.c.system == "woo")
            assert connection.execute(count).scalar_one() == expected, table.name


def test_an_order_that_cannot_be_mapped_is_quarantined_once_and_gives_no_record() -> None:
    orders = connector_for(source_settings("http://127.0.0.1:9")).streams()[1]
    assert isinstance(orders, WooOrders)
    good = {
        "id": 41,
        "status": "completed",
        "currency": "EUR",
        "date_created_gmt": "2025-03-01T10:00:00",
        "total": "30.00",
        "customer_id": 0,
        "billing": {"email": "ann@example.com"},
        "coupon_lines": [{"code": "ref-5"}],
    }
    bad = good | {"id": 42, "total": "lots", "billing": {"email": "bob@example.com"}}

    records, rejected = orders.records([good, bad])

    assert [(r.external_id, r.location) for r in rejected] == [("42", "WooCommerce order")]
    assert sorted((r.kind.value, r.external_id) for r in records) == [
        ("customer", "guest:ann@example.com"),
        ("referral", "guest:ann@example.com"),
        ("transaction", "41"),
    ]
