"""The Graph connector end to end against the sandbox tenant, and its parts alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from config.models import GraphSource, SupportRule
from connectors.errors import AuthError
from connectors.graph import GraphConnector
from connectors.graph.client import PS_PUBLIC_STRINGS, LoopbackSession, property_id
from connectors.notes_block import BEGIN, END
from connectors.outlook.incidents import MailEvent, split_incidents
from connectors.outlook.streams import Parties, SupportTest, contact_record, message_record
from sandbox.graph import SALES, SUPPORT, GraphServer, tenant_from_business
from sandbox.http import Throttle
from tests.outlook_fixtures import (
    AS_OF,
    FAST_RETRY,
    FIELDS,
    SPEC,
    app_config,
    graph_source,
    ledger_view,
    service,
    sqlite_ledger,
)

USER_NOTES = "Met at the fair.\r\nPrefers e-mail — café at 9:00 ✓\n\n  trailing spaces  "


def test_throttled_tenant_rejects_nothing_in_steady_state(tmp_path: Path) -> None:
    engine = sqlite_ledger(tmp_path)
    small = replace(SPEC, customers=30)
    tenant, truth = tenant_from_business(small)
    throttle = Throttle(max_requests=15, window=1.0, max_concurrent=4)
    with GraphServer(tenant, throttle=throttle) as server:
        limits = {"max_requests": 15, "window": "1s", "max_concurrent": 4}
        sync = service(app_config(tmp_path, server, small, limits=limits), engine)
        assert not sync.cycle(as_of=AS_OF).failed
        assert throttle.rejected == 0
        assert throttle.peak_concurrent <= 4
        assert ledger_view(engine).contacts == set(truth.contacts)


def test_wrong_secret_is_an_auth_error_that_says_what_to_check(tmp_path: Path) -> None:
    tenant, _ = tenant_from_business(SPEC)
    with GraphServer(tenant) as server:
        source = GraphSource.model_validate(graph_source(server, client_secret="wrong"))
        stream = GraphConnector(source, FAST_RETRY).streams()[0]
        with pytest.raises(AuthError) as caught:
            list(stream.pages({}))
    assert "client_secret" in str(caught.value)
    assert "wrong" not in str(caught.value)


def test_loopback_session_maps_https_only_for_this_machine() -> None:
    sent: list[str] = []

    class Recording(LoopbackSession):
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
            sent.append(request.url)
            raise ConnectionError("not sent")

    for url in ("https://127.0.0.1:8443/t", "https://login.microsoftonline.com/t"):
        with pytest.raises(ConnectionError):
            Recording().get(url)
    assert sent == ["http://127.0.0.1:8443/t", "https://login.microsoftonline.com/t"]


def test_property_ids_are_outlook_user_defined_fields() -> None:
    assert property_id("clm_lifetime_revenue") == (
        "String {00020329-0000-0000-C000-000000000046} Name clm_lifetime_revenue"
    )
    assert PS_PUBLIC_STRINGS.upper() == PS_PUBLIC_STRINGS


# -- mapping ------------------------------------------------------------------------------------


def test_internal_addresses_are_never_customers() -> None:
    parties = Parties(["northwind.test"])
    us = {"emailAddress": {"address": "Sales@Northwind.test"}}
    colleague = {"emailAddress": {"address": "bob@eu.northwind.test"}}
    customer = {"emailAddress": {"address": "Ann@Example.com"}}
    assert parties.of({"from": us, "toRecipients": [colleague]}) == (False, None, [])
    assert parties.of({"from": us, "toRecipients": [colleague], "ccRecipients": [customer]}) == (
        False,
        "ann@example.com",
        ["ann@example.com"],
    )
    assert parties.of({"from": customer, "toRecipients": [us]})[:2] == (True, "ann@example.com")
    internal = {"id": "m1", "from": us, "toRecipients": [colleague]}
    test = SupportTest(False, frozenset(), None)
    assert message_record(SALES, internal, parties, test, preview=True) is None


def test_body_preview_only_when_turned_on() -> None:
    parties = Parties(["northwind.test"])
    message = {
        "id": "m1",
        "from": {"emailAddress": {"address": "ann@example.com"}},
        "toRecipients": [{"emailAddress": {"address": "help@northwind.test"}}],
        "receivedDateTime": "2025-03-01T10:00:00Z",
        "conversationId": "c1",
        "categories": ["Complaint"],
        "bodyPreview": "This is the third time the parcel is late",
    }
    test = SupportTest(False, frozenset(), "complaint")
    off = message_record(SALES, message, parties, test, preview=False)
    on = message_record(SALES, message, parties, test, preview=True)
    assert off is not None and on is not None
    assert off.preview is None and on.preview == message["bodyPreview"]
    assert off.support and off.labels == ("Complaint",)
    assert off.customer_external_id == "email:ann@example.com"
    assert off.occurred_at == datetime(2025, 3, 1, 10, tzinfo=UTC)


def test_contact_mapping_keeps_user_notes_and_categories_but_not_ours() -> None:
    body = {
        "id": "AAMkX",
        "displayName": "Ann Lee",
        "emailAddresses": [{"address": "ann@example.com"}],
        "mobilePhone": "+1 555 0100",
        "businessAddress": {"street": "1 Main St\nSuite 4", "city": "Springfield"},
        "personalNotes": "Likes tea\n\n" + BEGIN + "\nclm_orders: 3\n" + END,
        "categories": ["VIP", "CLM: Since 2024"],
    }
    record = contact_record(SALES, body, {"CLM: Since 2024"})
    assert record.external_id == f"{SALES}:AAMkX"
    assert (record.email, record.phone) == ("ann@example.com", "+1 555 0100")
    assert (record.address_line1, record.address_line2) == ("1 Main St", "Suite 4")
    assert record.notes == "Likes tea"
    assert record.labels == ("VIP",)
    assert contact_record(SALES, {"id": "AAMkX", "@removed": {"reason": "deleted"}}, set()).deleted


# -- the incident rule --------------------------------------------------------------------------


def _event(number: int, hours: float, inbound: bool, *categories: str) -> MailEvent:
    at = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=hours)
    return MailEvent(f"m{number}", at, inbound, "ann@example.com", "Help", categories)


def test_incident_closes_after_our_reply_and_quiet_days() -> None:
    rule = SupportRule(quiet_days=3, cost=Decimal(10), cost_per_reply=Decimal(2))
    events = [_event(1, 0, True), _event(2, 5, False), _event(3, 30, True), _event(4, 32, False)]
    now = datetime(2025, 2, 1, tzinfo=UTC)
    (incident,) = split_incidents(events, rule, now)
    assert (incident.opened_by, incident.replies) == ("m1", 2)
    assert incident.closed_at == events[-1].at + timedelta(days=3)
    assert incident.cost(rule) == Decimal(14)
    # Still open while the customer had the last word, or the quiet days have not passed.
    assert split_incidents(events[:3], rule, now)[0].closed_at is None
    assert split_incidents(events, rule, events[-1].at + timedelta(days=1))[0].closed_at is None


def test_customer_writing_after_the_quiet_days_opens_a_new_incident() -> None:
    rule = SupportRule(quiet_days=2)
    events = [_event(1, 0, True), _event(2, 1, False), _event(3, 24 * 5, True)]
    first, second = split_incidents(events, rule, datetime(2025, 1, 6, 1, tzinfo=UTC))
    assert (first.opened_by, first.replies) == ("m1", 1)
    assert first.closed_at is not None
    assert (second.opened_by, second.closed_at) == ("m3", None)


def test_resolved_category_closes_at_once_and_our_first_word_opens_nothing() -> None:
    rule = SupportRule(quiet_days=30, resolved_category="Resolved")
    events = [_event(0, -5, False), _event(1, 0, True), _event(2, 2, False, "resolved")]
    (incident,) = split_incidents(events, rule, events[-1].at)
    assert incident.opened_by == "m1"
    assert incident.closed_at == events[-1].at


def test_category_field_must_be_a_pushed_field() -> None:
    tenant, _ = tenant_from_business(SPEC)
    with GraphServer(tenant) as server:
        source = graph_source(server)
        source["push"] = {"fields": FIELDS[:1], "categories": {"field": "clm_customer_since"}}
        with pytest.raises(ValueError, match=r"not a `field` of push\.fields"):
            GraphSource.model_validate(source)


def test_cursors_survive_a_new_address_for_the_same_service(tmp_path: Path) -> None:
    """Delta links are kept relative to graph_url: a proxy or a new port keeps them valid."""
    engine = sqlite_ledger(tmp_path)
    tenant, truth = tenant_from_business(SPEC)
    with GraphServer(tenant) as server:
        assert not service(app_config(tmp_path, server), engine).cycle(as_of=AS_OF).failed
    with GraphServer(tenant) as moved:
        sync = service(app_config(tmp_path, moved), engine)
        outcome = sync.cycle(as_of=AS_OF)
        assert not outcome.failed, outcome
        assert moved.stats.by_route.get(r"/v1\.0/\$batch", 0) == 0  # nothing new to write
    assert ledger_view(engine).contacts == set(truth.contacts)


def test_a_support_folder_missing_in_a_mailbox_is_no_error(tmp_path: Path) -> None:
    engine = sqlite_ledger(tmp_path)
    small = replace(SPEC, customers=30)
    tenant, truth = tenant_from_business(small)
    support = {"mailboxes": [SUPPORT], "folders": ["Escalations"], "cost": "10.00"}
    with GraphServer(tenant) as server:
        sync = service(app_config(tmp_path, server, small, support=support), engine)
        outcome = sync.cycle(as_of=AS_OF)
    assert not outcome.failed, outcome
    assert sum(len(v) for v in ledger_view(engine).incidents.values()) == len(truth.incidents)


def test_throttled_requests_inside_batches_are_sent_again_after_retry_after(
    tmp_path: Path,
) -> None:
    """A client that ignores the limit is told 429 per request inside a $batch; those
    requests, and only those, go again after the Retry-After they carry."""
    engine = sqlite_ledger(tmp_path)
    small = replace(SPEC, customers=30)
    tenant, truth = tenant_from_business(small)
    throttle = Throttle(max_requests=25, window=1.0, max_concurrent=4, retry_after=0.2)
    with GraphServer(tenant, throttle=throttle) as server:
        limits = {"max_requests": 10_000, "window": "1s", "max_concurrent": 4}
        sync = service(app_config(tmp_path, server, small, limits=limits), engine)
        assert not sync.cycle(as_of=AS_OF).failed
    assert server.batch_throttled > 0
    assert ledger_view(engine).contacts == set(truth.contacts)
    for _key, contact in tenant.live_contacts():
        assert property_id("clm_orders") in contact.extended
