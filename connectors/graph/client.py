"""Microsoft Graph session: app-only tokens from MSAL, one limiter per mailbox, JSON batches.

Tokens come from MSAL's ``ConfidentialClientApplication`` with the client-credentials grant
(no user, no refresh token: MSAL keeps the access token in memory and asks for a new one when
it expires, so nothing goes into the token vault). Graph throttles Outlook resources per app
and mailbox (4 concurrent requests, 10,000 per 10 minutes), so every mailbox gets its own
:class:`~connectors.http.RateLimiter` and :class:`~connectors.http.HttpClient`. A ``$batch``
counts as one request per request inside it, and a 429 inside a batch pauses that mailbox's
limiter for the ``Retry-After`` the sub-response carries before only the throttled requests
are sent again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import msal
import requests

from config.models import GRAPH_BATCH_SIZE, GraphSource, parse_duration
from connectors.errors import AuthError, RetryableError, SourceError
from connectors.http import (
    LOCAL_HOSTS,
    RETRYABLE_STATUS,
    HttpClient,
    RateLimiter,
    RetrySettings,
    parse_retry_after,
    require_https,
)

log = logging.getLogger(__name__)

SYSTEM_LABEL = "Microsoft Graph"
PS_PUBLIC_STRINGS = "{00020329-0000-0000-C000-000000000046}"
"""The MAPI property set of Outlook's user-defined fields ([MS-OXPROPS] PS_PUBLIC_STRINGS)."""
DEFAULT_TIMEOUT = (10.0, 60.0)
"""Seconds to connect and to wait for an answer."""
IMMUTABLE_IDS = 'IdType="ImmutableId"'
"""Ask for ids that survive a move between folders (Graph "immutable identifiers")."""
DELTA_GONE = 410
"""Graph answers an expired delta or next link with 410 Gone (``syncStateNotFound``)."""


def property_id(name: str) -> str:
    """The Graph id of a named string property in PS_PUBLIC_STRINGS, as Outlook shows it."""
    return f"String {PS_PUBLIC_STRINGS} Name {name}"


def mailbox_path(mailbox: str) -> str:
    return f"/users/{quote(mailbox, safe='@.')}"


class LoopbackSession(requests.Session):
    """MSAL only accepts https authorities; a stand-in on 127.0.0.1 speaks plain http.

    Used only when the configured authority host is a loopback http URL: requests MSAL
    addresses to ``https://127.0.0.1:PORT`` go to ``http://127.0.0.1:PORT``. Any other host is
    untouched (and :func:`require_https` refuses plain http to it in the first place).
    """

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname in LOCAL_HOSTS:
            url = urlunsplit(parts._replace(scheme="http"))
        return super().request(method, url, *args, **kwargs)


class GraphAuth:
    """Client-credentials tokens for one app registration, thread-safe."""

    def __init__(self, source: GraphSource) -> None:
        require_https(source.authority_host, "authority_host")
        host = urlsplit(source.authority_host)
        self._loopback = host.scheme == "http"
        self._authority = urlunsplit(host._replace(scheme="https")).rstrip("/")
        self._authority += f"/{source.tenant_id}"
        graph = urlsplit(source.graph_url)
        self.scope = f"{graph.scheme}://{graph.netloc}/.default"
        self._source = source
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            try:
                self._app = msal.ConfidentialClientApplication(
                    self._source.client_id,
                    client_credential=self._source.client_secret,
                    authority=self._authority,
                    # A single-tenant authority needs no instance discovery; off, MSAL reads
                    # only the tenant's OpenID configuration (and works with the stand-in).
                    validate_authority=not self._loopback,
                    instance_discovery=not self._loopback,
                    http_client=LoopbackSession() if self._loopback else None,
                )
            except requests.RequestException as error:
                raise RetryableError(
                    f"{SYSTEM_LABEL}: cannot reach {self._authority}: {type(error).__name__}"
                ) from error
            except ValueError as error:
                raise AuthError(
                    f"{SYSTEM_LABEL}: the tenant {self._source.tenant_id!r} is unknown at "
                    f"{self._source.authority_host}: {error}. Check `tenant_id` (the Directory "
                    "(tenant) ID on the app registration's overview page)"
                ) from error
        return self._app

    def headers(self) -> Mapping[str, str]:
        with self._lock:
            try:
                result = self._application().acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as error:
                raise RetryableError(
                    f"{SYSTEM_LABEL}: token request failed: {type(error).__name__}"
                ) from error
        answer: dict[str, Any] = result if isinstance(result, dict) else {}
        token = answer.get("access_token")
        if not token:
            description = str(answer.get("error_description") or "")
            first_line = description.splitlines()[0] if description else ""
            raise AuthError(
                f"{SYSTEM_LABEL}: no token for client {self._source.client_id}: "
                f"{answer.get('error')}: "
                f"{first_line}. Check `client_id` and `client_secret` (a secret expires; make a "
                "new one under Certificates & secrets) and that admin consent was granted"
            )
        return {"Authorization": f"Bearer {token}"}

    def renew(self) -> bool:
        """Drop the cached token (Graph refused it); the next request fetches a new one."""
        with self._lock:
            self._app = None
        return True


@dataclass(frozen=True, slots=True)
class SubResponse:
    """One answer inside a ``$batch`` response."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_text(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict):
            return f"HTTP {self.status} {error.get('code')}: {error.get('message')}"
        return f"HTTP {self.status}"


class GraphClient:
    """All Graph calls of one source: per-mailbox HTTP clients sharing one token."""

    def __init__(
        self,
        source: GraphSource,
        retry: RetrySettings = RetrySettings(),
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        require_https(source.graph_url, "graph_url")
        self.source = source
        self.timeout = timeout
        self.auth = GraphAuth(source)
        self.retry = retry
        self._session = requests.Session()
        self._clients: dict[str, HttpClient] = {}
        self._lock = threading.Lock()

    def mailbox(self, address: str) -> HttpClient:
        """The HTTP client whose limiter counts requests against ``address``."""
        key = address.lower()
        with self._lock:
            if key not in self._clients:
                limits = self.source.limits
                limiter = RateLimiter(
                    limits.max_requests,
                    parse_duration(limits.window).total_seconds(),
                    limits.max_concurrent,
                )
                self._clients[key] = HttpClient(
                    self.source.graph_url,
                    system=SYSTEM_LABEL,
                    limiter=limiter,
                    retry=self.retry,
                    timeout=self.timeout,
                    auth_headers=self.auth.headers,
                    on_unauthorized=self.auth.renew,
                    session=self._session,
                )
            return self._clients[key]

    def prefer(self) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={self.source.page_size}, {IMMUTABLE_IDS}"}

    def get(self, mailbox: str, url: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.mailbox(mailbox).json("GET", url, params=params, headers=self.prefer())

    def folder_ids(self, mailbox: str, kind: str) -> dict[str, str]:
        """Display name (lower-case) -> id of a mailbox's contact or mail folders."""
        url = f"{mailbox_path(mailbox)}/{kind}".lstrip("/")
        found: dict[str, str] = {}
        while url:
            data = self.get(mailbox, url)
            for folder in data.get("value", []):
                found[str(folder.get("displayName", "")).lower()] = str(folder["id"])
            url = data.get("@odata.nextLink") or ""
        return found

    def batch(self, mailbox: str, requests_: Sequence[Mapping[str, Any]]) -> dict[str, SubResponse]:
        """Send requests to one mailbox in JSON batches of at most 20; answers by request id.

        Throttled (429) or unavailable (503) sub-requests are sent again after the
        ``Retry-After`` they carry, within the retry budget; what is still refused then is
        returned as it was answered.
        """
        client = self.mailbox(mailbox)
        answers: dict[str, SubResponse] = {}
        # Every request in a batch counts against the mailbox: a batch larger than the window
        # allows would be partly refused however long the limiter waited.
        size = min(GRAPH_BATCH_SIZE, self.source.limits.max_requests)
        for start in range(0, len(requests_), size):
            pending = list(requests_[start : start + size])
            for attempt in range(self.retry.attempts):
                data = client.json(
                    "POST", "$batch", json_body={"requests": pending}, cost=len(pending)
                )
                again, wait = self._sort_answers(data, answers)
                if not again:
                    break
                pending = [request for request in pending if request["id"] in again]
                if attempt + 1 < self.retry.attempts and client.limiter is not None:
                    client.limiter.pause(min(wait, self.retry.max_wait))
        return answers

    @staticmethod
    def _sort_answers(data: Any, answers: dict[str, SubResponse]) -> tuple[set[str], float]:
        if not isinstance(data, dict) or not isinstance(data.get("responses"), list):
            raise RetryableError(f"{SYSTEM_LABEL}: $batch answered without `responses`")
        again: set[str] = set()
        wait = 0.0
        for item in data["responses"]:
            headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
            answer = SubResponse(int(item.get("status", 500)), item.get("body"), headers)
            answers[str(item.get("id"))] = answer
            if answer.status in RETRYABLE_STATUS:
                again.add(str(item.get("id")))
                retry_after = parse_retry_after(
                    next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
                )
                wait = max(wait, retry_after if retry_after is not None else 1.0)
        return again, wait


def delta_pages(
    client: GraphClient, mailbox: str, first: str, link: str | None
) -> Iterator[tuple[list[dict[str, Any]], str | None, str | None]]:
    """Pages of a delta query: (items, next link, delta link); exactly one link is set.

    Starts at ``link`` (a stored next or delta link) or, without one, at ``first``. A next
    link that comes back unchanged would page forever: that is refused.
    """
    url = link or first
    while True:
        data = client.get(mailbox, url)
        if not isinstance(data, dict):
            raise RetryableError(f"{SYSTEM_LABEL}: a delta page was not a JSON object")
        following = data.get("@odata.nextLink")
        delta = data.get("@odata.deltaLink")
        values = [item for item in data.get("value", []) if isinstance(item, dict)]
        if following == url:
            raise SourceError(
                f"{SYSTEM_LABEL}: {mailbox} returned the same next link twice (loop detected)"
            )
        if not following and not delta:
            raise RetryableError(f"{SYSTEM_LABEL}: a delta page had neither next nor delta link")
        yield values, following, delta
        if not following:
            return
        url = following
