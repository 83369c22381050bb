"""The Graph connector end to end against the sandbox tenant, and its parts alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from config.models import GraphSource, SupportRule
from connectors.errors import AuthError
from connectors.graph import GraphConnector
from connectors.graph.client import PS_PUBLIC_STRINGS, LoopbackSession, property_id
from connectors.graph.incidents import MailEvent, split_incidents
from connectors.graph.streams import Parties, SupportTest, contact_record, message_record
from connectors.notes_block import BEGIN, END, split_notes
from sandbox.graph import OWN_DOMAIN, SALES, GraphServer, tenant_from_business
from sandbox.http import Faults, Throttle
from sync.db import create_ledger_engine, ensure_current_schema
from tests.outlook_fixtures import (
    AS_OF,
    CATEGORIES,
    FAST_RETRY,
    FIELDS,
    INCIDENT_COST,
    REPLY_COST,
    SPEC,
    app_config,
    contact_row,
    graph_source,
    ledger_view,
    service,
)

USER_NOTES = "Met at the fair.\r\nPrefers e-mail — café at 9:00 ✓\n\n  trailing spaces  "


def _sqlite(tmp_path: Path) -> Engine:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ensure_current_schema(engine)
    return engine


def _expected_incidents(truth_incidents: dict[str, list[int]]) -> dict[str, list[Decimal]]:
    return {
        email: sorted(INCIDENT_COST + REPLY_COST * replies for replies in replies_list)
        for email, replies_list in truth_incidents.items()
    }


def test_cycles_match_the_tenant_and_a_second_cycle_writes_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    tenant, truth = tenant_from_business(SPEC)
    noted = list(truth.contacts)[:5]
    for key in noted:
        mailbox, contact_id = key.split(":", 1)
        tenant.edit_contact(mailbox, contact_id, personalNotes=USER_NOTES)
    with GraphServer(tenant) as server:
        sync = service(app_config(tmp_path, server), engine)
        first = sync.cycle(as_of=AS_OF)
        assert not first.failed, first

        view = ledger_view(engine)
        assert view.contacts == set(truth.contacts)
        assert view.guests == truth.customer_emails
        assert all(not email.endswith(OWN_DOMAIN) for email in view.guests)
        assert view.messages == truth.messages
        by_email = {
            email: [i.replies for i in items] for email, items in truth.incidents_by_email().items()
        }
        assert view.incidents == _expected_incidents(by_email)

        # Every matched contact shows the figures three ways.
        for key, contact in tenant.live_contacts():
            since = contact.extended[property_id("clm_customer_since")]
            assert contact.extended[property_id("clm_lifetime_revenue")]
            assert CATEGORIES[since]["name"] in contact.body["categories"]
            parts = split_notes(contact.body["personalNotes"])
            assert parts.block is not None and f"clm_customer_since: {since}" in parts.block
            assert parts.user_text == (USER_NOTES if key in noted else "")
        master = {c["displayName"]: c["color"] for c in tenant.mailboxes[SALES].categories}
        assert master == {c["name"]: c["color"] for c in CATEGORIES.values()}

        # A second cycle has nothing to write, and the pushed changes read back as unchanged.
        patches = tenant.patches
        second = sync.cycle(as_of=AS_OF)
        assert not second.failed
        assert tenant.patches == patches
        assert second.step is not None
        assert [(p.system, p.pushed) for p in second.step.pushes] == [("outlook", 0)]


def test_edits_deletions_and_expired_delta_links(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    tenant, truth = tenant_from_business(SPEC)
    with GraphServer(tenant) as server:
        sync = service(app_config(tmp_path, server), engine)
        assert not sync.cycle(as_of=AS_OF).failed
        keys = sorted(truth.contacts)
        renamed, gone, gone_while_expired = keys[0], keys[1], keys[2]
        mailbox, contact_id = renamed.split(":", 1)
        ours = tenant.contact(renamed).body["personalNotes"]
        tenant.edit_contact(mailbox, contact_id, personalNotes=USER_NOTES + "\n\n" + ours)
        tenant.edit_contact(mailbox, contact_id, companyName="Renamed Ltd")
        tenant.delete_contact(*gone.split(":", 1))
        assert not sync.cycle(as_of=AS_OF).failed
        view = ledger_view(engine)
        assert view.contacts == set(truth.contacts) - {gone}

        # Graph drops the delta tokens; a deletion and a new contact happen meanwhile.
        tenant.expire_delta_links()
        tenant.delete_contact(*gone_while_expired.split(":", 1))
        box = tenant.mailboxes[SALES]
        added = tenant.add_contact(
            box, {"displayName": "New Person", "emailAddresses": [{"address": "new@x.test"}]}
        )
        outcome = sync.cycle(as_of=AS_OF)
        assert not outcome.failed, outcome
        view = ledger_view(engine)
        expected = set(truth.contacts) - {gone, gone_while_expired} | {f"{SALES}:{added}"}
        assert view.contacts == expected
        assert view.messages == truth.messages  # read again, not doubled
        by_email = {
            email: [i.replies for i in items] for email, items in truth.incidents_by_email().items()
        }
        assert view.incidents == _expected_incidents(by_email)
        row = contact_row(engine, renamed)
        assert (row.company, row.notes) == ("Renamed Ltd", USER_NOTES.strip())  # ledger trims


def test_throttled_tenant_rejects_nothing_in_steady_state(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
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


def test_injected_faults_still_end_in_the_right_ledger(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    tenant, truth = tenant_from_business(SPEC)
    faults = Faults(
        server_error=0.08, throttle=0.08, stall=0.02, stall_seconds=1.5, retry_after=0.05, seed=5
    )
    with GraphServer(tenant, faults=faults) as server:
        app = app_config(tmp_path, server)
        sync = service(app, engine)
        source = next(s for s in app.sources if isinstance(s, GraphSource))
        connector = GraphConnector(source, FAST_RETRY, now=lambda: AS_OF, timeout=(1.0, 1.0))
        sync._connectors[source.name] = connector
        for _ in range(3):  # a cycle that gave up part-way is completed by the next
            if not sync.cycle(as_of=AS_OF).failed:
                break
        assert sum(server.stats.faults.values()) > 0
        view = ledger_view(engine)
        assert view.contacts == set(truth.contacts)
        assert view.messages == truth.messages
        for _key, contact in tenant.live_contacts():
            assert property_id("clm_orders") in contact.extended


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
