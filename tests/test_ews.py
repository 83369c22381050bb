"""Exchange's throttling budgets: the stand-in enforces them, the EWS back-end stays inside.

Exchange charges EWS requests to a budget (the service account's under delegate access, the
impersonated mailbox's under ApplicationImpersonation) and answers an over-budget request with
``ErrorServerBusy`` and ``BackOffMilliseconds``. The back-end takes a slot of the YAML
``limits:`` around every HTTP request, so in steady state the server has nothing to refuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.models import EwsSource, OutlookLimits
from connectors.ews import EwsConnector
from connectors.ews.client import Budgets
from connectors.graph.client import property_id
from sandbox.ews import USERNAME, EwsServer
from sandbox.graph import SALES, SUPPORT, tenant_from_business
from sandbox.http import Faults, Request, Throttle
from tests.outlook_fixtures import AS_OF, SPEC, app_config, ledger_view, service, sqlite_ledger

WINDOW_REQUESTS = 40
"""The stand-in's budget a 1-second window: a backfill (about 120 requests) needs several."""


def _budget() -> Throttle:
    return Throttle(max_requests=WINDOW_REQUESTS, window=1.0, max_concurrent=4, retry_after=0.05)


def _limits(max_requests: int) -> dict[str, Any]:
    return {"max_concurrent": 4, "max_requests": max_requests, "window": "1s"}


def test_throttled_exchange_rejects_nothing_in_steady_state(tmp_path: Path) -> None:
    engine = sqlite_ledger(tmp_path)
    tenant, truth = tenant_from_business(SPEC)
    with EwsServer(tenant, throttle=_budget()) as server:
        sync = service(app_config(tmp_path, server, limits=_limits(WINDOW_REQUESTS)), engine)
        first = sync.cycle(as_of=AS_OF)  # backfill and push
        assert not first.failed, first
        keys = sorted(truth.contacts)
        mailbox, contact_id = keys[0].split(":", 1)
        tenant.edit_contact(mailbox, contact_id, companyName="Renamed Ltd")
        tenant.delete_contact(*keys[1].split(":", 1))
        second = sync.cycle(as_of=AS_OF)  # incremental, nothing new to push
        assert not second.failed, second

        assert server.stats.requests > 2 * WINDOW_REQUESTS  # the window limit did bind
        assert server.throttle.rejected == 0
        assert server.throttle.peak_concurrent <= 4
        view = ledger_view(engine)
        assert view.contacts == set(truth.contacts) - {keys[1]}
        assert view.messages == truth.messages
        for _key, contact in tenant.live_contacts():
            assert property_id("clm_orders") in contact.extended
        assert second.step is not None
        assert [(p.system, p.pushed) for p in second.step.pushes] == [("outlook", 0)]


def test_without_the_limiter_exchange_says_busy_and_the_ledger_still_holds(
    tmp_path: Path,
) -> None:
    """The same budget with a client allowed far more: refused, backed off, still right."""
    engine = sqlite_ledger(tmp_path)
    tenant, truth = tenant_from_business(SPEC)
    with EwsServer(tenant, throttle=_budget()) as server:
        sync = service(app_config(tmp_path, server, limits=_limits(100_000)), engine)
        outcome = sync.cycle(as_of=AS_OF)
        assert not outcome.failed, outcome
        assert server.throttle.rejected > 0
        view = ledger_view(engine)
        assert view.contacts == set(truth.contacts)
        assert view.messages == truth.messages
        for _key, contact in tenant.live_contacts():
            assert property_id("clm_orders") in contact.extended


def _soap(header: str = "") -> Request:
    body = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        f"<s:Header>{header}</s:Header><s:Body><m:GetFolder><m:FolderIds>"
        f'<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>{SUPPORT}'
        "</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>"
        "</s:Body></s:Envelope>"
    )
    return Request("POST", "/EWS/Exchange.asmx", {}, {}, body.encode())


def test_budgets_are_the_account_or_the_impersonated_mailbox() -> None:
    """Delegate access: one budget for every mailbox; impersonation: one per mailbox."""
    impersonating = (
        "<t:ExchangeImpersonation><t:ConnectingSID>"
        f"<t:PrimarySmtpAddress>{SALES.upper()}</t:PrimarySmtpAddress>"
        "</t:ConnectingSID></t:ExchangeImpersonation>"
    )
    assert EwsServer._throttle_key(_soap()) == USERNAME
    assert EwsServer._throttle_key(_soap(impersonating)) == SALES

    delegate = Budgets(OutlookLimits(), per_mailbox=False)
    assert delegate.limiter(SALES) is delegate.limiter(SUPPORT) is delegate.limiter(None)
    impersonation = Budgets(OutlookLimits(), per_mailbox=True)
    assert impersonation.limiter(SALES) is impersonation.limiter(SALES.upper())
    assert impersonation.limiter(SALES) is not impersonation.limiter(SUPPORT)


def test_injected_exchange_faults_still_end_in_the_right_ledger(tmp_path: Path) -> None:
    """Busy answers, 503s and requests stalled past the timeout, under the client's limits."""
    engine = sqlite_ledger(tmp_path)
    tenant, truth = tenant_from_business(SPEC)
    faults = Faults(
        server_error=0.04, throttle=0.04, stall=0.02, stall_seconds=1.5, retry_after=0.05, seed=7
    )
    with EwsServer(tenant, throttle=_budget(), faults=faults) as server:
        app = app_config(tmp_path, server, limits=_limits(WINDOW_REQUESTS))
        sync = service(app, engine)
        source = next(s for s in app.sources if isinstance(s, EwsSource))
        sync._connectors[source.name] = EwsConnector(
            source, now=lambda: AS_OF, timeout=1.0, retry_wait=0.05
        )
        for _ in range(3):  # a cycle that gave up part-way is completed by the next
            if not sync.cycle(as_of=AS_OF).failed:
                break
        assert {"server_error", "throttle", "stall"} <= server.stats.faults.keys()
        assert server.throttle.rejected == 0
        view = ledger_view(engine)
        assert view.contacts == set(truth.contacts)
        assert view.messages == truth.messages
        for _key, contact in tenant.live_contacts():
            assert property_id("clm_orders") in contact.extended
