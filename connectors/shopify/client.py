"""The Shopify GraphQL Admin API: one endpoint, a token header, calculated query costs.

Shopify limits an app per store by *query cost*, a leaky bucket whose size and restore rate
depend on the plan (100, 200, 1,000 or 2,000 points a second; see
https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits). Every answer reports
the bucket in ``extensions.cost.throttleStatus``; :class:`CostBudget` keeps a copy, refills
it with the elapsed time and waits before a query whose estimated cost the bucket would not
hold, so the shop does not have to refuse it. A ``THROTTLED`` answer that still happens (the
first query, another app's share) is retried after the wait the bucket implies.

GraphQL reports most failures with HTTP 200 and an ``errors`` list; they are mapped to the
connector errors here: ``THROTTLED`` retryable, ``ACCESS_DENIED`` an :class:`AuthError` naming
the missing scope or the protected-customer-data approval, anything else a
:class:`SourceError`.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from config.models import ShopifySource
from connectors.errors import AuthError, ConnectorError, RetryableError, SourceError
from connectors.http import HttpClient, RetrySettings, require_https, retrying

log = logging.getLogger(__name__)

MAX_QUERY_COST = 1000
"""Shopify refuses any single query whose requested cost is above this."""
CONNECTION_BASE_COST = 2
FIRST_PAGE = 50
"""Page size of a connection's first query, before its cost per node is known."""
REQUIRED_SCOPES = ("read_customers", "read_orders", "read_all_orders")
PUSH_SCOPES = ("write_customers",)
_SCOPE_HINTS = {
    "read_all_orders": (
        "without it Shopify shows only the last 60 days of orders and every lifetime figure "
        "would be wrong; request 'read all orders' access for the app (Partner Dashboard, or "
        "the custom app's configuration) and add the scope"
    ),
}
_PROTECTED = "protected customer data"
_SCOPE_IN_MESSAGE = re.compile(r"`(\w+)`")

INSTALLATION_QUERY = "query Scopes { currentAppInstallation { accessScopes { handle } } }"


class QueryTooCostly(ConnectorError):
    """A query asked for more than :data:`MAX_QUERY_COST` points; ask for fewer nodes."""

    def __init__(self, message: str, requested: int) -> None:
        super().__init__(message)
        self.requested = requested


class CostBudget:
    """Our copy of the shop's cost bucket, refilled with the time since the last answer."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.maximum: float | None = None
        self.restore_rate: float | None = None
        self._available = 0.0
        self._at = 0.0
        self._in_flight = False
        self.waited = 0.0

    def available(self) -> float | None:
        if self.maximum is None or self.restore_rate is None:
            return None
        elapsed = self._clock() - self._at
        return min(self.maximum, self._available + elapsed * self.restore_rate)

    def wait_for(self, cost: int) -> None:
        """Sleep until the bucket holds ``cost`` points (at most the bucket's size)."""
        available = self.available()
        if available is None or self.restore_rate is None or self.maximum is None:
            return
        needed = min(float(cost), self.maximum) - available
        if needed > 0:
            seconds = needed / self.restore_rate
            self.waited += seconds
            self._sleep(seconds)

    def reserve(self, cost: int) -> None:
        """Count ``cost`` as spent when a query is sent, until an answer says otherwise.

        An answer cut off on the way (or a 5xx after the shop ran the query) leaves no bucket
        status to learn from although the shop may have charged the query; without this the
        next query would be sent against points that are already gone.
        """
        available = self.available()
        if available is None or self.maximum is None:
            return
        self._available = available - min(float(cost), self.maximum)
        self._at = self._clock()
        self._in_flight = True

    def unanswered(self) -> None:
        """A query sent after :meth:`reserve` ended without a bucket status.

        The shop charged it (if at all) at some moment while it was in flight, and refills only
        from then on; crediting the refill since it was sent would overstate the bucket by up to
        the flight time times the restore rate. So the refill starts counting now.
        """
        if self._in_flight:
            self._at = self._clock()
            self._in_flight = False

    def update(self, status: Mapping[str, Any]) -> None:
        """Take the bucket as the last answer reported it."""
        try:
            self.maximum = float(status["maximumAvailable"])
            self.restore_rate = float(status["restoreRate"])
            self._available = float(status["currentlyAvailable"])
        except (KeyError, TypeError, ValueError):
            return
        self._at = self._clock()
        self._in_flight = False

    def seconds_until(self, cost: int) -> float:
        available = self.available()
        if available is None or not self.restore_rate:
            return 1.0
        return max(0.0, (cost - available) / self.restore_rate)


@dataclass(frozen=True, slots=True)
class Answer:
    data: dict[str, Any]
    requested_cost: int | None


class ShopifyClient:
    """GraphQL queries against one store, within its cost budget, with the retry policy."""

    def __init__(
        self,
        source: ShopifySource,
        *,
        retry: RetrySettings = RetrySettings(),
        budget: CostBudget | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        store = source.store_url.rstrip("/")
        if "://" not in store:
            store = "https://" + store
        require_https(store, f"Shopify store_url of source {source.name!r}")
        self.source = source
        self.store_url = store
        self.retry = retry
        self.budget = budget or CostBudget()
        self.endpoint = f"admin/api/{source.api_version}/graphql.json"
        self.http = HttpClient(
            store,
            system=source.name,
            retry=retry.single_attempt(),
            timeout=timeout,
            auth_headers=lambda: {"X-Shopify-Access-Token": source.access_token},
        )
        self._scopes_checked = False

    def query(self, document: str, variables: Mapping[str, Any], estimate: int = 10) -> Answer:
        """Run one query or mutation; ``estimate`` is its expected cost in points."""
        for attempt in retrying(self.retry):
            with attempt:
                self.budget.wait_for(estimate)
                self.budget.reserve(estimate)
                try:
                    return self._read(self._post(document, variables))
                finally:
                    self.budget.unanswered()
        raise AssertionError("unreachable: retrying re-raises the last error")

    def _post(self, document: str, variables: Mapping[str, Any]) -> Any:
        try:
            return self.http.json(
                "POST",
                self.endpoint,
                json_body={"query": document, "variables": dict(variables)},
            )
        except AuthError as refused:
            raise AuthError(
                f"{self.source.name}: Shopify refused the access token ({refused}); "
                "check access_token (the Admin API access token of the store's app, "
                "shpat_...) and that the app is still installed"
            ) from None

    def _read(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            raise RetryableError(f"{self.source.name}: Shopify answered {type(body).__name__}")
        cost = (
            body.get("extensions", {}).get("cost")
            if isinstance(body.get("extensions"), dict)
            else None
        )
        requested: int | None = None
        if isinstance(cost, dict):
            status = cost.get("throttleStatus")
            if isinstance(status, dict):
                self.budget.update(status)
            if isinstance(cost.get("requestedQueryCost"), int | float):
                requested = int(cost["requestedQueryCost"])
        errors = body.get("errors")
        if errors:
            raise self._error(errors, requested)
        data = body.get("data")
        if not isinstance(data, dict):
            raise RetryableError(f"{self.source.name}: Shopify answered without data")
        return Answer(data, requested)

    def _error(self, errors: Any, requested: int | None) -> ConnectorError:
        first = errors[0] if isinstance(errors, list) and errors else {"message": str(errors)}
        message = str(first.get("message", first)) if isinstance(first, dict) else str(first)
        extensions = first.get("extensions") if isinstance(first, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        where = f"{self.source.name}: Shopify"
        if code == "THROTTLED":
            wait = self.budget.seconds_until(requested or MAX_QUERY_COST)
            return RetryableError(f"{where} throttled the query", retry_after=wait)
        if code == "MAX_COST_EXCEEDED":
            return QueryTooCostly(f"{where}: {message}", requested or MAX_QUERY_COST + 1)
        if code == "ACCESS_DENIED":
            return AuthError(self._access_hint(message))
        if code == "INTERNAL_SERVER_ERROR":
            return RetryableError(f"{where} had an internal error: {message}")
        return SourceError(f"{where} refused the query: {message}")

    def _access_hint(self, message: str) -> str:
        where = f"{self.source.name}: Shopify denied access"
        if "protected-customer-data" in message or "not approved to access the Customer" in (
            message
        ):
            return (
                f"{where} to customers: the app is not approved for {_PROTECTED} (name, "
                "e-mail, phone, address). Request access under 'Protected customer data "
                "access' in the app's settings (Partner Dashboard or the custom app), with the "
                f"name, email, phone and address fields. Shopify said: {message}"
            )
        scope = _SCOPE_IN_MESSAGE.search(message)
        named = f" the `{scope.group(1)}` scope" if scope else " a scope"
        return (
            f"{where}: the access token lacks{named}. Add it to the app's Admin API access "
            f"scopes and reinstall (or update) the app. Shopify said: {message}"
        )

    def check_scopes(self, push: bool) -> None:
        """Fail clearly, once per process, when a scope the sync needs is missing."""
        if self._scopes_checked:
            return
        answer = self.query(INSTALLATION_QUERY, {}, estimate=2)
        installation = answer.data.get("currentAppInstallation") or {}
        granted = {
            str(scope.get("handle"))
            for scope in installation.get("accessScopes") or []
            if isinstance(scope, dict)
        }
        needed = REQUIRED_SCOPES + (PUSH_SCOPES if push else ())
        missing = [scope for scope in needed if scope not in granted]
        if missing:
            reasons = "; ".join(
                f"`{scope}`: {_SCOPE_HINTS.get(scope, 'add it to the app and reinstall it')}"
                for scope in missing
            )
            raise AuthError(
                f"{self.source.name}: the Shopify access token lacks "
                f"{', '.join(missing)}. {reasons}"
            )
        self._scopes_checked = True


class PageSizer:
    """How many nodes a connection page may ask for without passing the single-query cap.

    The first page asks for :data:`FIRST_PAGE` and, its cost being unknown, waits for a
    bucket that could pay the most any query may cost; its requested cost gives the cost per
    node, from which the largest page under :data:`MAX_QUERY_COST` and its exact cost follow.
    Share one sizer per connection between the streams that read it.
    """

    def __init__(self, limit: int, first_page: int = FIRST_PAGE) -> None:
        self.limit = limit
        self.first_page = first_page
        """Nodes of the first page; fewer where a node holds a nested connection."""
        self.node_cost: float | None = None

    @property
    def first(self) -> int:
        if self.node_cost is None:
            return min(self.limit, self.first_page)
        fits = math.floor((MAX_QUERY_COST - CONNECTION_BASE_COST) / self.node_cost)
        return max(1, min(self.limit, fits))

    def estimate(self) -> int:
        if self.node_cost is None:
            return MAX_QUERY_COST
        return math.ceil(CONNECTION_BASE_COST + self.first * self.node_cost)

    def learn(self, first: int, requested: int | None) -> None:
        if requested is not None and first > 0:
            self.node_cost = max(1.0, (requested - CONNECTION_BASE_COST) / first)
