"""The QuickBooks Online calls the connector makes, behind the shared limiter and retry policy.

Why ``HttpClient`` and not ``python-quickbooks`` for the data calls: the library's base URL is
a class attribute an instance may override (so it *could* talk to the stand-in), but its one
transport, ``QuickBooks.make_request``, sends without a timeout, drops the HTTP status and the
``Retry-After`` header, and sorts faults by code range, which files ThrottleExceeded (code
003001) under ``ValidationException`` next to real validation faults. The shared policy needs
exactly what it throws away (429 and 5xx retried after ``Retry-After``, 4xx never), and once
its transport is replaced nothing of it is left but URL formatting. It has no App Foundations
GraphQL (custom-field definitions) either. OAuth goes through ``intuit-oauth`` (see
:mod:`connectors.quickbooks.auth`).

Limits (``throttle`` in the YAML, Intuit's published figures by default): 500 requests a minute
and 10 at once per company, and batch calls 40 a minute on top, counted in both allowances.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from config.models import QuickBooksSource
from connectors.errors import SourceError
from connectors.http import HttpClient, HttpError, RateLimiter, RetrySettings, require_https
from connectors.quickbooks.auth import QuickBooksAuth

WINDOW = 60.0
DEFAULT_TIMEOUT = (10.0, 60.0)
"""Connect and read timeouts (seconds); a 1000-object page takes a few seconds to serve."""
STALE_OBJECT = "5010"
"""Fault code of an update sent with an outdated ``SyncToken``."""
CUSTOM_FIELDS = "enhancedAllCustomFields"


@dataclass(frozen=True, slots=True)
class Fault:
    """A QuickBooks ``Fault`` body: ``{"Fault": {"Error": [...], "type": ...}}``."""

    type: str
    code: str
    message: str
    detail: str

    def __str__(self) -> str:
        text = f"{self.type} {self.code}: {self.message}"
        return f"{text} ({self.detail})" if self.detail and self.detail != self.message else text


def fault_of(body: Any) -> Fault | None:
    """The first error of a ``Fault`` object (or of a body holding one), if any."""
    if isinstance(body, Mapping) and "Fault" in body:
        body = body["Fault"]
    if not isinstance(body, Mapping) or "Error" not in body:
        return None
    errors = body.get("Error") or [{}]
    first = errors[0] if isinstance(errors[0], Mapping) else {}
    return Fault(
        type=str(body.get("type", "")),
        code=str(first.get("code", "")).lstrip("0"),
        message=str(first.get("Message", "")),
        detail=str(first.get("Detail", "")),
    )


def parse_time(text: str) -> datetime:
    """A QuickBooks timestamp (``2015-07-13T10:54:29.522-07:00``) as aware UTC."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


class NestedLimiter(RateLimiter):
    """A smaller allowance inside a larger one: QuickBooks' batch calls count in both."""

    def __init__(self, max_requests: int, window: float, outer: RateLimiter) -> None:
        super().__init__(max_requests, window, outer.max_concurrent)
        self.outer = outer

    @contextmanager
    def slot(self, cost: int = 1) -> Iterator[None]:
        with super().slot(cost), self.outer.slot(cost):
            yield

    def pause(self, seconds: float) -> None:
        super().pause(seconds)
        self.outer.pause(seconds)


@dataclass(frozen=True, slots=True)
class Answer:
    """Objects of one entity from a query or CDC call, and the server's time of the answer."""

    objects: list[dict[str, Any]]
    time: datetime


class QuickBooksClient:
    """``window`` is the throttle's window in seconds (60: the per-minute limits); tests and
    the benchmark scale it down together with the stand-in's."""

    def __init__(
        self,
        source: QuickBooksSource,
        auth: QuickBooksAuth,
        retry: RetrySettings = RetrySettings(),
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        window: float = WINDOW,
    ) -> None:
        require_https(source.api_url, "api_url")
        require_https(source.graphql_url, "graphql_url")
        self.source = source
        self.auth = auth
        throttle = source.throttle
        self.limiter = RateLimiter(throttle.requests_per_minute, window, throttle.concurrent)
        self.batch_limiter = NestedLimiter(throttle.batches_per_minute, window, self.limiter)
        base = f"{source.api_url.rstrip('/')}/v3/company/{source.realm_id}/"
        common: dict[str, Any] = {
            "system": source.name,
            "retry": retry,
            "timeout": timeout,
            "auth_headers": auth.headers,
            "on_unauthorized": auth.renew,
        }
        self.http = HttpClient(base, limiter=self.limiter, **common)
        self.batch_http = HttpClient(base, limiter=self.batch_limiter, **common)
        self.graphql_http = HttpClient(source.graphql_url, limiter=self.limiter, **common)
        self.params = {"minorversion": str(source.minor_version)}

    def _failed(self, what: str, error: HttpError) -> SourceError:
        fault = fault_of(_json_or_none(error.body))
        reason = str(fault) if fault else f"HTTP {error.status}"
        return SourceError(f"{self.source.name}: QuickBooks refused {what}: {reason}")

    def query(self, entity: str, statement: str, *, custom_fields: bool = False) -> Answer:
        """One page of a query (``SELECT * FROM Entity ... MAXRESULTS n``)."""
        params = dict(self.params)
        if custom_fields:
            params["include"] = CUSTOM_FIELDS
        try:
            body = self.http.json(
                "POST",
                "query",
                params=params,
                data=statement.encode("utf-8"),
                headers={"Content-Type": "application/text", "Accept": "application/json"},
            )
        except HttpError as error:
            raise self._failed(f"the query {statement!r}", error) from None
        response = self._expect(body, "QueryResponse", f"the query {statement!r}") or {}
        return Answer(list(response.get(entity) or []), _server_time(body))

    def _expect(self, body: Any, key: str, what: str) -> Any:
        """``body[key]``; an answer without it is never taken for an empty page."""
        if not isinstance(body, Mapping) or key not in body:
            fault = fault_of(body)
            detail = str(fault) if fault else f"no {key} in {str(body)[:200]!r}"
            raise SourceError(f"{self.source.name}: QuickBooks answered {what} oddly: {detail}")
        return body[key]

    def cdc(self, entity: str, since: datetime) -> Answer:
        """Objects of ``entity`` changed since ``since`` (deleted ones as ``status: Deleted``).

        Raises :class:`HttpError` when QuickBooks refuses the request (a ``changedSince``
        beyond the look-back window, for one), so the caller can fall back to a query.
        """
        params = {**self.params, "entities": entity, "changedSince": since.isoformat()}
        body = self.http.json("GET", "cdc", params=params, headers={"Accept": "application/json"})
        objects: list[dict[str, Any]] = []
        for block in self._expect(body, "CDCResponse", "a CDC request") or []:
            for response in block.get("QueryResponse") or []:
                objects.extend(response.get(entity) or [])
        return Answer(objects, _server_time(body))

    def customers(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current state of customers by id (with their custom fields), for an update."""
        quoted = ", ".join("'" + customer_id.replace("'", "\\'") + "'" for customer_id in ids)
        statement = (  # the QuickBooks query language, not SQL; ids quoted above
            f"SELECT * FROM Customer WHERE Active IN (true, false) AND Id IN ({quoted}) "  # noqa: S608
            f"MAXRESULTS {max(len(ids), 1)}"
        )
        answer = self.query("Customer", statement, custom_fields=True)
        return {str(customer["Id"]): customer for customer in answer.objects}

    def batch(self, items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """One batch request; each item's answer (an object or a ``Fault``) by its ``bId``."""
        params = {**self.params, "include": CUSTOM_FIELDS}
        try:
            body = self.batch_http.json(
                "POST",
                "batch",
                params=params,
                json_body={"BatchItemRequest": list(items)},
                headers={"Accept": "application/json"},
            )
        except HttpError as error:
            raise self._failed("a batch update", error) from None
        return {str(item.get("bId")): item for item in body.get("BatchItemResponse") or []}

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One App Foundations GraphQL call; GraphQL errors become a :class:`SourceError`."""
        try:
            body = self.graphql_http.json(
                "POST",
                self.source.graphql_url,
                json_body={"query": query, "variables": dict(variables or {})},
                headers={"Accept": "application/json"},
            )
        except HttpError as error:
            raise SourceError(
                f"{self.source.name}: the custom-field definitions API refused the call "
                f"(HTTP {error.status}): {error.body[:300]}"
            ) from None
        if body.get("errors"):
            messages = "; ".join(str(e.get("message", e)) for e in body["errors"])
            raise SourceError(
                f"{self.source.name}: the custom-field definitions API said: {messages}"
            )
        return dict(body.get("data") or {})


def _server_time(body: Mapping[str, Any]) -> datetime:
    text = body.get("time")
    return parse_time(str(text)) if text else datetime.now(UTC)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
