"""Outlook end to end against the sandbox tenant, through Graph and through EWS.

The same tenant (three mailboxes built from the synthetic business) is served by the Graph
stand-in and by the EWS SOAP stand-in; every test here that is not about one protocol runs
through both back-ends.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from config.models import GraphSource
from connectors.graph import GraphConnector
from connectors.graph.client import property_id
from connectors.notes_block import split_notes
from sandbox.graph import OWN_DOMAIN, SALES, GraphServer, tenant_from_business
from sandbox.http import Faults
from tests.outlook_fixtures import (
    AS_OF,
    BACKENDS,
    CATEGORIES,
    FAST_RETRY,
    FIELDS,
    INCIDENT_COST,
    REPLY_COST,
    SPEC,
    app_config,
    contact_row,
    ledger_view,
    serve,
    service,
    sqlite_ledger,
)

USER_NOTES = "Met at the fair.\r\nPrefers e-mail — café at 9:00 ✓\n\n  trailing spaces  "


def _expected_incidents(truth_incidents: dict[str, list[int]]) -> dict[str, list[Decimal]]:
    return {
        email: sorted(INCIDENT_COST + REPLY_COST * replies for replies in replies_list)
        for email, replies_list in truth_incidents.items()
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_cycles_match_the_tenant_and_a_second_cycle_writes_nothing(
    backend: str, engine: Engine, tmp_path: Path
) -> None:
    tenant, truth = tenant_from_business(SPEC)
    noted = list(truth.contacts)[:5]
    for key in noted:
        mailbox, contact_id = key.split(":", 1)
        tenant.edit_contact(mailbox, contact_id, personalNotes=USER_NOTES)
    with serve(tenant, backend) as server:
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
        if backend == "graph":  # EWS has no call for the master category list
            master = {c["displayName"]: c["color"] for c in tenant.mailboxes[SALES].categories}
            assert master == {c["name"]: c["color"] for c in CATEGORIES.values()}

        # A second cycle has nothing to write, and the pushed changes read back as unchanged.
        patches = tenant.patches
        second = sync.cycle(as_of=AS_OF)
        assert not second.failed
        assert tenant.patches == patches
        assert second.step is not None
        assert [(p.system, p.pushed) for p in second.step.pushes] == [("outlook", 0)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_edits_deletions_and_expired_sync_states(backend: str, tmp_path: Path) -> None:
    engine = sqlite_ledger(tmp_path)
    tenant, truth = tenant_from_business(SPEC)
    with serve(tenant, backend) as server:
        sync = service(app_config(tmp_path, server), engine)
        assert not sync.cycle(as_of=AS_OF).failed
        keys = sorted(truth.contacts)
        renamed, gone, gone_while_expired = keys[0], keys[1], keys[2]
        mailbox, contact_id = renamed.split(":", 1)
        ours = tenant.contact(renamed).body["personalNotes"]
        tenant.edit_contact(mailbox, contact_id, personalNotes=USER_NOTES + "\n\n" + ours)
        tenant.edit_contact(mailbox, contact_id, companyName="Renamed Ltd")
        tenant.delete_contact(*gone.split(":", 1))
        box = tenant.mailboxes[SALES]
        message = next(i for i in box.messages.values() if not i.deleted)
        tenant.delete_message(SALES, message.id)
        assert not sync.cycle(as_of=AS_OF).failed
        view = ledger_view(engine)
        assert view.contacts == set(truth.contacts) - {gone}
        assert view.messages == truth.messages - 1

        # The server drops its sync states; a deletion and a new contact happen meanwhile.
        tenant.expire_delta_links()
        tenant.delete_contact(*gone_while_expired.split(":", 1))
        other = next(i for i in box.messages.values() if not i.deleted)
        tenant.delete_message(SALES, other.id)
        added = tenant.add_contact(
            box, {"displayName": "New Person", "emailAddresses": [{"address": "new@x.test"}]}
        )
        outcome = sync.cycle(as_of=AS_OF)
        assert not outcome.failed, outcome
        view = ledger_view(engine)
        expected = set(truth.contacts) - {gone, gone_while_expired} | {f"{SALES}:{added}"}
        assert view.contacts == expected
        assert view.messages == truth.messages - 2  # read again: not doubled, deletion seen
        by_email = {
            email: [i.replies for i in items] for email, items in truth.incidents_by_email().items()
        }
        assert view.incidents == _expected_incidents(by_email)
        row = contact_row(engine, renamed)
        assert (row.company, row.notes) == ("Renamed Ltd", USER_NOTES.strip())  # ledger trims


def test_injected_graph_faults_still_end_in_the_right_ledger(tmp_path: Path) -> None:
    engine = sqlite_ledger(tmp_path)
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


def test_exchange_busy_back_off_is_honoured(tmp_path: Path) -> None:
    """ErrorServerBusy carries BackOffMilliseconds; exchangelib waits it out and goes on."""
    engine = sqlite_ledger(tmp_path)
    tenant, truth = tenant_from_business(SPEC)
    faults = Faults(throttle=0.1, retry_after=0.05, seed=3)
    with serve(tenant, "ews", faults=faults) as server:
        sync = service(app_config(tmp_path, server), engine)
        assert not sync.cycle(as_of=AS_OF).failed
        assert server.stats.faults.get("throttle", 0) > 0
        view = ledger_view(engine)
        assert view.contacts == set(truth.contacts)
        assert view.messages == truth.messages
        for _key, contact in tenant.live_contacts():
            assert property_id("clm_orders") in contact.extended


@pytest.mark.parametrize("backend", BACKENDS)
def test_contacts_are_created_once_for_customers_outlook_does_not_know(
    backend: str, tmp_path: Path
) -> None:
    engine = sqlite_ledger(tmp_path)
    tenant, truth = tenant_from_business(SPEC)
    owner_emails = {e for k, e in truth.contacts.items() if not k.startswith(SALES)}
    removed = [k for k in sorted(truth.contacts) if k.startswith(SALES)][:8]
    unknown = {truth.contacts[k] for k in removed} - owner_emails
    for key in removed:
        tenant.delete_contact(*key.split(":", 1))
    push = {
        "fields": FIELDS,
        "categories": {"field": "clm_customer_since", "values": CATEGORIES},
        "create_contacts": {"mailbox": SALES, "folder": "Contacts"},
    }
    with serve(tenant, backend) as server:
        sync = service(app_config(tmp_path, server, push=push), engine)
        first = sync.cycle(as_of=AS_OF)
        assert not first.failed, first
        assert first.step is not None and first.step.pushes[0].created == tenant.created
        made = {
            contact.body["emailAddresses"][0]["address"]: contact
            for key, contact in tenant.live_contacts()
            if key.split(":", 1)[1] not in {k.split(":", 1)[1] for k in truth.contacts}
        }
        assert unknown and unknown <= made.keys()
        for contact in made.values():
            assert property_id("clm_lifetime_revenue") in contact.extended
            assert split_notes(contact.body["personalNotes"]).block is not None

        # The next cycles read the new contacts back, link them, and write nothing more.
        patches, created = tenant.patches, tenant.created
        for _ in range(2):
            outcome = sync.cycle(as_of=AS_OF)
            assert not outcome.failed, outcome
        assert (tenant.patches, tenant.created) == (patches, created)
    assert {key for key, _ in tenant.live_contacts()} <= ledger_view(engine).contacts
