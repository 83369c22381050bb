"""The Shopify connector against the GraphQL stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select

from config.models import ShopifySource
from connectors.errors import AuthError
from connectors.records import FieldUpdate, SourceReferral, SourceTransaction
from connectors.shopify import ShopifyConnector
from connectors.shopify.bulk import BulkReader
from connectors.shopify.client import CostBudget, PageSizer, ShopifyClient
from connectors.shopify.streams import BULK_CHILDREN, ShopifyCustomers
from connectors.shopify.writer import metafield_key, metafield_type
from connectors.webhooks import SHOPIFY_HEADER, sign
from sandbox.http import Faults, Response, SandboxServer
from sandbox.shop import REFERRAL_STYLES, ShopBusiness, build_shop, referral_code
from sandbox.shopify import ShopifyStandIn, order_lines
from sandbox.synthetic import BusinessSpec, generate_persons
from sync.db import create_ledger_engine, ensure_current_schema
from sync.push import render
from sync.webhooks import WebhookListener
from tests.conftest import clm_sync
from tests.shops import (
    ALL_RULES,
    FAST,
    PUSH_FIELDS,
    TRANSACTIONS,
    app_config,
    cycle_ok,
    expected_customers,
    expected_transactions,
    ledger_customers,
    ledger_net,
    ledger_referrals,
    ledger_transactions,
    service_with,
)

SPEC = BusinessSpec(seed=14, customers=160)


class Console:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.append(text)

    def ask(self, question: str) -> str:
        raise AssertionError(f"unexpected question {question!r}")


@pytest.fixture(scope="module")
def built_shop() -> ShopBusiness:
    return build_shop(SPEC)


@pytest.fixture
def shop(built_shop: ShopBusiness) -> ShopBusiness:
    """A fresh copy per test: tests edit orders and write metafields."""
    return copy.deepcopy(built_shop)


@pytest.fixture
def stand_in(shop: ShopBusiness) -> Iterator[tuple[ShopifyStandIn, SandboxServer]]:
    stand_in = ShopifyStandIn(shop, maximum_available=2000, restore_rate=20_000, bulk_polls=1)
    with stand_in.server() as server:
        yield stand_in, server


def source_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "shopify",
        "name": "shop",
        "store_url": url,
        "access_token": "shpat_sandbox",
        "referrals": ALL_RULES,
        "push": {"fields": PUSH_FIELDS},
    } | extra


def connector_for(settings: dict[str, Any]) -> ShopifyConnector:
    source = ShopifySource.model_validate(settings)
    client = ShopifyClient(source, retry=FAST, timeout=(2.0, 5.0))
    connector = ShopifyConnector(source, client)
    if connector.bulk is not None:
        connector.bulk = BulkReader(client, poll_interval=0)
    return connector


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "paged"])
def test_backfill_then_an_edit_and_a_refund_match_the_shop(
    engine: Engine,
    shop: ShopBusiness,
    stand_in: tuple[ShopifyStandIn, SandboxServer],
    bulk: bool,
) -> None:
    fake, server = stand_in
    settings = source_settings(server.url, bulk_backfill=bulk)
    service = service_with(engine, app_config(engine, settings), connector_for(settings))

    cycle_ok(service)

    assert ledger_transactions(engine, "shop") == expected_transactions(shop)
    assert ledger_customers(engine, "shop") == expected_customers(shop)
    assert (fake.queries.get("bulkOperationRunQuery", 0) > 0) is bulk
    truth = list(generate_persons(SPEC))
    sales = sum((sale.home_amount for person in truth for sale in person.sales), Decimal(0))
    refunds = sum(
        (sale.refund.home_amount for person in truth for sale in person.sales if sale.refund),
        Decimal(0),
    )
    assert ledger_net(engine, "shop") == sales - refunds

    edited, refunded_order = sorted(shop.orders)[10], sorted(shop.orders)[20]
    shop.edit_order(edited, Decimal("77.70"))
    shop.add_refund(refunded_order, Decimal("1.50"))
    outcome = cycle_ok(service)

    assert ledger_transactions(engine, "shop") == expected_transactions(shop)
    assert outcome.sources[0].counts.changed == 1
    assert outcome.sources[0].counts.new == 1


@pytest.mark.parametrize("style", [*REFERRAL_STYLES, "code_table"])
def test_referral_records_match_the_truth_for_each_style(
    shop: ShopBusiness, stand_in: tuple[ShopifyStandIn, SandboxServer], style: str
) -> None:
    _, server = stand_in
    truth_style = "code" if style == "code_table" else style
    truth = {(r.referrer, r.referred, r.first_order) for r in shop.referrals[truth_style]}
    # Notes and landing pages hold the referrer's code: the code rule resolves it.
    code_rule = {"code_pattern": ALL_RULES["code_pattern"]}
    rules = {
        "code": code_rule,
        "code_table": {"codes": {referral_code(int(r[0])): r[0] for r in truth}},
        "attribute": {"order_attribute": "referred_by"},
        "note": {"note_pattern": ALL_RULES["note_pattern"]} | code_rule,
        "landing_page": {"landing_parameter": "ref"} | code_rule,
    }[style]
    connector = connector_for(source_settings(server.url, referrals=rules, bulk_backfill=False))
    (stream,) = [s for s in connector.streams() if s.name == "referrals"]

    found = [record for page in stream.pages({}) for record in page.records]

    referrals = [r for r in found if isinstance(r, SourceReferral)]
    assert len(referrals) == len(found)
    assert truth, "the synthetic shop has no referral of this style"
    assert {
        (r.referrer_external_id, r.referred_external_id, r.first_order_external_id)
        for r in referrals
        if r.method == truth_style
    } == truth


def test_both_referral_rules_read_together_match_the_ledger(
    engine: Engine, shop: ShopBusiness, stand_in: tuple[ShopifyStandIn, SandboxServer]
) -> None:
    _, server = stand_in
    settings = source_settings(server.url, push={"enabled": False})
    cycle_ok(service_with(engine, app_config(engine, settings), connector_for(settings)))

    truth = {
        (r.referrer, r.referred, r.first_order) for refs in shop.referrals.values() for r in refs
    }
    assert ledger_referrals(engine, "shop") == truth


def test_metafields_hold_the_metrics_and_a_second_cycle_writes_nothing(
    engine: Engine, shop: ShopBusiness, stand_in: tuple[ShopifyStandIn, SandboxServer]
) -> None:
    fake, server = stand_in
    settings = source_settings(server.url)
    service = service_with(engine, app_config(engine, settings), connector_for(settings))

    first = cycle_ok(service)
    calls = fake.metafield_calls
    second = cycle_ok(service)

    assert first.step is not None and second.step is not None
    (pushed,) = first.step.pushes
    assert pushed.pushed > 0 and pushed.failed == 0
    assert pushed.guests_skipped == len(shop.guests())
    assert second.step.pushes[0].planned == 0
    assert fake.metafield_calls == calls
    assert calls >= pushed.pushed / 25
    from sync.export import EXPORT_COLUMNS, customer_rows

    column = {name: index for index, name in enumerate(EXPORT_COLUMNS)}
    checked = 0
    for row in customer_rows(engine):
        ids = [
            entry.split(":", 1)[1]
            for entry in row[column["sources"]].split(";")
            if entry.startswith("shop:") and entry.split(":", 1)[1].isdigit()
        ]
        for external_id in ids:
            customer = shop.customers[int(external_id)]
            for mapping in PUSH_FIELDS:
                value = row[column[mapping["metric"]]]
                stored = customer.metafields.get(("clm_sync", metafield_key(mapping["field"])))
                if value:
                    expected = render(
                        int(value) if mapping["format"] == "d" else value, mapping["format"]
                    )
                    assert stored == (metafield_type(mapping["format"]), expected)
                    checked += 1
    assert checked > len(shop.customers)


def test_setup_defines_the_metafields_once(
    stand_in: tuple[ShopifyStandIn, SandboxServer],
) -> None:
    fake, server = stand_in
    connector = connector_for(source_settings(server.url))

    connector.set_up(Console(), dry_run=True)
    assert fake.definitions == {}
    connector.set_up(Console(), dry_run=False)
    connector.set_up(Console(), dry_run=False)

    assert fake.definitions_created == len(PUSH_FIELDS)
    assert {key: d["type"] for (_, key), d in fake.definitions.items()} == {
        "lifetime_revenue": "number_decimal",
        "orders": "number_integer",
        "last_purchase": "date",
    }
    assert all(d["pin"] and d["ownerType"] == "CUSTOMER" for d in fake.definitions.values())


def test_faults_and_a_small_bucket_still_give_the_right_ledger_within_budget(
    tmp_path: Path, shop: ShopBusiness
) -> None:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ensure_current_schema(engine)
    fake = ShopifyStandIn(shop, maximum_available=1100, restore_rate=20_000, bulk_polls=1)
    faults = Faults(server_error=0.1, throttle=0.05, truncate=0.1, retry_after=0.01, seed=5)
    with fake.server(faults) as server:
        for bulk in (True, False):
            settings = source_settings(
                server.url, bulk_backfill=bulk, name=f"shop-{str(bulk).lower()}"
            )
            service = service_with(engine, app_config(engine, settings), connector_for(settings))
            cycle_ok(service)
            assert ledger_transactions(
                engine, f"shop-{str(bulk).lower()}"
            ) == expected_transactions(shop)
        assert sum(server.stats.faults.values()) > 5, server.stats.faults

    assert fake.throttled == 0
    assert fake.over_cost == 0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"scopes": ("read_customers", "read_orders")}, "read_all_orders"),
        ({"scopes": ("read_customers", "read_orders", "read_all_orders")}, "write_customers"),
        ({"protected_customer_data": False}, "protected customer data"),
    ],
)
def test_a_missing_scope_or_approval_is_named(
    shop: ShopBusiness, change: dict[str, Any], named: str
) -> None:
    fake = ShopifyStandIn(shop, restore_rate=20_000, **change)
    with fake.server() as server:
        connector = connector_for(source_settings(server.url, bulk_backfill=False))
        with pytest.raises(AuthError, match=named):
            for stream in connector.streams():
                list(stream.pages({}))


def test_the_budget_waits_for_what_the_bucket_lacks() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = CostBudget(clock=lambda: now[0], sleep=sleep)
    budget.wait_for(900)  # nothing known yet: no wait
    budget.update({"maximumAvailable": 1000, "currentlyAvailable": 100, "restoreRate": 50})
    now[0] += 2.0  # +100 points
    budget.wait_for(500)
    budget.wait_for(5000)  # never more than the bucket holds

    assert slept == [pytest.approx(6.0), pytest.approx(10.0)]


def test_a_query_without_an_answer_still_counts_as_spent() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = CostBudget(clock=lambda: now[0], sleep=sleep)
    budget.update({"maximumAvailable": 1000, "currentlyAvailable": 1000, "restoreRate": 50})
    budget.reserve(800)  # sent; the answer was cut off, so no status came back
    budget.wait_for(800)  # 200 left: wait for 600 more points at 50 a second

    assert slept == [pytest.approx(12.0)]


def test_no_refill_is_credited_while_an_unanswered_query_was_in_flight() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = CostBudget(clock=lambda: now[0], sleep=sleep)
    budget.update({"maximumAvailable": 1000, "currentlyAvailable": 1000, "restoreRate": 50})
    budget.reserve(800)
    now[0] += 4.0  # in flight; the shop may have charged it at the very end
    budget.unanswered()
    budget.wait_for(800)  # still 200 left: the 4 s in flight earned nothing for sure

    assert slept == [pytest.approx(12.0)]


def test_pages_grow_to_the_most_a_query_may_cost() -> None:
    sizer = PageSizer(250)
    assert (sizer.first, sizer.estimate()) == (50, 1000)
    sizer.learn(50, 2 + 50 * 6)
    assert (sizer.first, sizer.estimate()) == (166, 998)
    sizer.learn(166, 2 + 166 * 3)
    assert sizer.first == 250


def test_plain_http_to_another_host_is_refused() -> None:
    from connectors.errors import SourceError

    with pytest.raises(SourceError, match="https"):
        connector_for(source_settings("http://shop.example.com"))


def test_a_refused_metafield_fails_alone_and_an_empty_value_deletes(
    shop: ShopBusiness, stand_in: tuple[ShopifyStandIn, SandboxServer]
) -> None:
    _, server = stand_in
    writer = connector_for(source_settings(server.url)).writer()
    assert writer is not None and writer.max_batch == 25
    first, second = sorted(shop.customers)[:2]
    results = writer.write(
        [
            FieldUpdate(str(first), "lifetime_revenue", "12.50"),
            FieldUpdate("999", "lifetime_revenue", "1.00"),
            FieldUpdate(str(second), "lifetime_revenue", "not a number"),
            FieldUpdate("guest:ann@example.com", "orders", "3"),
        ]
    )
    errors = {result.update.external_id: result.error for result in results}

    assert errors[str(first)] is None
    assert "Owner does not exist" in (errors["999"] or "")
    assert "number_decimal" in (errors[str(second)] or "")
    assert "guest" in (errors["guest:ann@example.com"] or "")
    key = ("clm_sync", "lifetime_revenue")
    assert shop.customers[first].metafields[key] == ("number_decimal", "12.50")

    (deleted,) = writer.write([FieldUpdate(str(first), "lifetime_revenue", "")])
    assert deleted.error is None and key not in shop.customers[first].metafields


def test_setup_from_the_command_line_defines_the_metafields(
    tmp_path: Path, stand_in: tuple[ShopifyStandIn, SandboxServer]
) -> None:
    fake, server = stand_in
    config = tmp_path / "clm-sync.yaml"
    config.write_text(
        f"ledger: sqlite:///{tmp_path / 'ledger.db'}\n"
        "sources:\n"
        "  - name: store\n"
        "    type: shopify\n"
        f"    store_url: {server.url}\n"
        f"    access_token: {fake.token}\n"
        "    push:\n"
        "      fields:\n"
        "        - {metric: net_revenue, field: Lifetime revenue, format: '.2f'}\n",
        encoding="utf-8",
    )
    assert clm_sync("migrate", "--config", str(config)).returncode == 0

    result = clm_sync("setup", "shopify", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert "defined metafield clm_sync.lifetime_revenue (number_decimal)" in result.stdout
    assert list(fake.definitions) == [("clm_sync", "lifetime_revenue")]


def test_an_order_modified_during_a_pass_is_read_again(
    shop: ShopBusiness, stand_in: tuple[ShopifyStandIn, SandboxServer]
) -> None:
    _, server = stand_in
    connector = connector_for(source_settings(server.url, bulk_backfill=False))
    (orders,) = [s for s in connector.streams() if s.name == "orders"]
    early, late = sorted(shop.orders)[5], sorted(shop.orders)[-5]

    cursor: dict[str, Any] = {}
    amounts: dict[str, Decimal] = {}
    for number, page in enumerate(orders.pages({})):
        if number == 1:
            shop.edit_order(early, Decimal("11.11"))
            shop.edit_order(late, Decimal("22.22"))
        amounts |= {
            r.external_id: r.amount for r in page.records if isinstance(r, SourceTransaction)
        }
        cursor = dict(page.cursor)
    again = [r.external_id for page in orders.pages(cursor) for r in page.records]

    assert (amounts[str(early)], amounts[str(late)]) == (Decimal("11.11"), Decimal("22.22"))
    assert len(again) < 10, "the next pass read more than the boundary"


def test_a_page_over_the_cost_cap_is_asked_again_smaller(
    shop: ShopBusiness, stand_in: tuple[ShopifyStandIn, SandboxServer]
) -> None:
    fake, server = stand_in
    connector = connector_for(source_settings(server.url, bulk_backfill=False))
    (orders,) = [s for s in connector.streams() if s.name == "orders"]
    connector.sizers["orders"].node_cost = 1.0  # a wrong guess: 250 orders cost 10,002

    records = [r for page in orders.pages({}) for r in page.records]

    assert fake.over_cost == 1
    assert len(records) == len(expected_transactions(shop))


def test_a_wrong_token_names_the_setting_to_check(
    stand_in: tuple[ShopifyStandIn, SandboxServer],
) -> None:
    _, server = stand_in
    connector = connector_for(source_settings(server.url, access_token="shpat_wrong"))

    with pytest.raises(AuthError, match="check access_token") as refused:
        list(connector.streams()[0].pages({}))
    assert "shpat_wrong" not in str(refused.value)


def test_a_deleted_customer_is_flagged_by_the_next_cycle_and_no_one_else(
    engine: Engine, shop: ShopBusiness, stand_in: tuple[ShopifyStandIn, SandboxServer]
) -> None:
    fake, server = stand_in
    settings = source_settings(
        server.url, bulk_backfill=False, push={"enabled": False}, customer_deletions_every="0s"
    )
    service = service_with(engine, app_config(engine, settings), connector_for(settings))
    buyer = next(iter(shop.customers.values()))
    signed_up = dataclasses.replace(
        buyer, id=max(shop.customers) + 1, updated_at=shop.tick(), metafields={}
    )
    shop.customers[signed_up.id] = signed_up  # a sign-up who never ordered
    cycle_ok(service)
    assert ledger_customers(engine, "shop") == expected_customers(shop)

    with pytest.raises(ValueError, match="associated orders"):
        fake.delete_customer(buyer.id)
    fake.delete_customer(signed_up.id)
    outcome = cycle_ok(service)

    assert ledger_customers(engine, "shop") == expected_customers(shop)
    assert str(signed_up.id) not in ledger_customers(engine, "shop")
    assert outcome.sources[0].counts.deleted == 1
    assert ledger_transactions(engine, "shop") == expected_transactions(shop)


def test_customer_ids_are_read_again_only_when_the_check_is_due(
    shop: ShopBusiness, stand_in: tuple[ShopifyStandIn, SandboxServer]
) -> None:
    _, server = stand_in
    connector = connector_for(source_settings(server.url, bulk_backfill=False))
    customers = connector.streams()[0]
    assert isinstance(customers, ShopifyCustomers)
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    customers.clock = lambda: now[0]

    first = list(customers.pages({}))
    assert all(page.full_pass for page in first) and first[-1].pass_complete
    cursor = first[-1].cursor
    now[0] += timedelta(hours=23)
    assert not any(page.full_pass for page in customers.pages(cursor))
    now[0] += timedelta(hours=2)
    due = list(customers.pages(cursor))

    id_pages = [page for page in due if page.full_pass]
    assert id_pages and id_pages[-1].pass_complete and not any(p.records for p in id_pages)
    assert {i for page in id_pages for i in page.seen} == {str(c) for c in shop.customers}
    assert id_pages[-1].cursor["checked_at"] == now[0].isoformat()


def test_a_cut_off_bulk_file_is_read_again_without_repeating_an_order() -> None:
    orders = [
        {"id": f"gid://shopify/Order/{number}", "name": f"#{number}"} for number in range(1, 7)
    ]
    lines: list[str] = []
    for order in orders:
        lines.append(json.dumps(order))
        for item in range(2):
            child = {"id": f"gid://shopify/LineItem/{order['name'][1:]}{item}", "quantity": 1}
            lines.append(json.dumps(child | {"__parentId": order["id"]}))
    text = "".join(line + "\n" for line in lines)
    # First download: cut in the middle of the fourth order's second child.
    cut = len("".join(line + "\n" for line in lines[:11])) + 5
    served: list[int] = []
    server = SandboxServer(no_delay=True)

    @server.route("GET", r"/bulk/1\.jsonl")
    def bulk_file(_request: Any) -> Response:
        served.append(1)
        body = text[:cut] if len(served) == 1 else text
        return Response(200, body.encode(), {"Content-Type": "application/jsonl"})

    with server:
        source = ShopifySource.model_validate(source_settings(server.url))
        reader = BulkReader(ShopifyClient(source, retry=FAST), sleep=lambda _: None)
        read = list(reader.nodes(f"{server.url}/bulk/1.jsonl", len(lines), 0, BULK_CHILDREN))
        resumed = list(reader.nodes(f"{server.url}/bulk/1.jsonl", len(lines), 6, BULK_CHILDREN))

    assert [node["id"] for node, _ in read] == [order["id"] for order in orders]
    assert [after for _, after in read] == [3, 6, 9, 12, 15, 18]
    assert all(len(node["lineItems"]["nodes"]) == 2 for node, _ in read)
    assert all("__parentId" not in item for node, _ in read for item in node["lineItems"]["nodes"])
    assert len(served) == 3
    assert [node["id"] for node, _ in resumed] == [order["id"] for order in orders[2:]]


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "paged"])
def test_order_totals_are_their_line_totals_less_the_discounts(
    engine: Engine,
    shop: ShopBusiness,
    stand_in: tuple[ShopifyStandIn, SandboxServer],
    bulk: bool,
) -> None:
    fake, server = stand_in
    settings = source_settings(server.url, bulk_backfill=bulk, push={"enabled": False})
    cycle_ok(service_with(engine, app_config(engine, settings), connector_for(settings)))

    with engine.connect() as connection:
        rows = connection.execute(
            select(TRANSACTIONS.c.external_id, TRANSACTIONS.c.amount, TRANSACTIONS.c.discount)
            .add_columns(TRANSACTIONS.c.lines)
            .where(TRANSACTIONS.c.system == "shop", TRANSACTIONS.c.transaction_kind == "sale")
        ).all()
    assert len(rows) == len(shop.orders)
    for external_id, amount, discount, stored in rows:
        lines = json.loads(stored)
        assert len(lines) == len(order_lines(shop.orders[int(external_id)], shop.currency))
        gross = sum(Decimal(line["total"]) for line in lines)
        net = sum(Decimal(line["discounted_total"]) for line in lines)
        assert gross - Decimal(discount or 0) == Decimal(amount) == net, external_id
        assert all(line["quantity"] >= 1 and line["sku"] for line in lines)
    long_orders = sum(1 for order in shop.orders if order % 25 == 0)
    assert long_orders > 0
    assert fake.queries.get("order", 0) == (0 if bulk else long_orders)


def test_a_customers_delete_webhook_makes_the_next_cycle_find_the_deletion(
    engine: Engine, shop: ShopBusiness, stand_in: tuple[ShopifyStandIn, SandboxServer]
) -> None:
    fake, server = stand_in
    settings = source_settings(
        server.url, bulk_backfill=False, push={"enabled": False}, webhook_secret="app-secret"
    )
    app = app_config(engine, settings)
    service = service_with(engine, app, connector_for(settings))
    signed_up = dataclasses.replace(
        next(iter(shop.customers.values())),
        id=max(shop.customers) + 1,
        updated_at=shop.tick(),
        metafields={},
    )
    shop.customers[signed_up.id] = signed_up
    cycle_ok(service)
    fake.delete_customer(signed_up.id)
    cycle_ok(service)  # the daily check is not due: the deletion is not seen yet
    assert str(signed_up.id) in ledger_customers(engine, "shop")

    triggered: list[str] = []
    body = json.dumps({"id": signed_up.id}).encode()
    with WebhookListener(app, "127.0.0.1", 0, triggered.append, service.heard) as listener:
        headers = {SHOPIFY_HEADER: sign("app-secret", body), "X-Shopify-Topic": "customers/delete"}
        answer = requests.post(
            f"http://127.0.0.1:{listener.port}/webhooks/shop", data=body, headers=headers, timeout=5
        )
    outcome = cycle_ok(service)

    assert (answer.status_code, triggered) == (202, ["shop"])
    assert ledger_customers(engine, "shop") == expected_customers(shop)
    assert outcome.sources[0].counts.deleted == 1
