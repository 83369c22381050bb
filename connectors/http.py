"""HTTP plumbing every connector shares: one retry policy, a client-side limiter, a client.

The retry policy is the one DESIGN.md names: connection errors, timeouts, HTTP 5xx and 429 are
retried with exponential back-off (honouring ``Retry-After``); 4xx validation errors never are.
The limiter keeps us under a remote's published throttle *before* it rejects anything: at most
``max_requests`` request starts in any ``window`` seconds and ``max_concurrent`` in flight, and
a ``Retry-After`` the server sends pauses every thread that shares the limiter, not just the one
that was told.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from connectors.errors import AuthError, ConnectorError, RetryableError, SourceError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class HttpError(ConnectorError):
    """The remote answered with a 4xx that retrying cannot fix (usually a validation fault).

    ``body`` is the response text, for a quarantine entry or an error message.
    """

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How hard to try: attempts in all, first and longest wait between them (seconds)."""

    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 60.0

    def single_attempt(self) -> RetrySettings:
        """These settings without retries, for an :class:`HttpClient` whose caller retries.

        A caller that retries a whole exchange (re-checking a cost budget, re-parsing a body)
        must own every attempt; an inner retry loop would send attempts it never sees and
        multiply the attempts of the two loops.
        """
        return replace(self, attempts=1)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RateLimiter:
    """Request starts per sliding window, requests in flight, and shared pauses.

    Thread-safe; one instance per remote throttle scope (a QuickBooks company, a mailbox).
    ``cost`` lets one call count as several (a Graph ``$batch`` of 20 counts 20).

    A request occupies its place in the window from the moment it is sent until ``window``
    seconds after its answer came back. The server saw it somewhere in between, so however
    slow the network, the server never counts more than ``max_requests`` in any window.
    """

    def __init__(
        self,
        max_requests: int,
        window: float,
        max_concurrent: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or max_concurrent < 1 or window <= 0:
            raise ValueError("a limiter needs at least one request per positive window")
        self.max_requests = max_requests
        self.window = window
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._sleep = sleep
        self._finished: deque[float] = deque()
        self._in_flight = 0
        self._in_flight_cost = 0
        self._paused_until = 0.0
        self._lock = threading.Condition()

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (the server asked us to wait)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _wait_time(self, cost: int) -> float | None:
        """Seconds to sleep before a request of ``cost`` may start; None: wait for a finish."""
        now = self._clock()
        while self._finished and self._finished[0] <= now - self.window:
            self._finished.popleft()
        if now < self._paused_until:
            return self._paused_until - now
        if self._in_flight >= self.max_concurrent:
            return None
        excess = len(self._finished) + self._in_flight_cost + cost - self.max_requests
        if excess <= 0:
            return 0.0
        if excess > len(self._finished):
            return None
        return self._finished[excess - 1] + self.window - now

    @contextmanager
    def slot(self, cost: int = 1) -> Iterator[None]:
        """Wait until a request of ``cost`` may start, and count it in flight meanwhile."""
        cost = min(max(cost, 1), self.max_requests)
        with self._lock:
            while (wait := self._wait_time(cost)) != 0.0:
                if wait is None:
                    self._lock.wait()
                    continue
                self._lock.release()
                try:
                    self._sleep(wait)
                finally:
                    self._lock.acquire()
            self._in_flight += 1
            self._in_flight_cost += cost
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._in_flight_cost -= cost
                self._finished.extend([self._clock()] * cost)
                self._lock.notify_all()


def _wait_for(settings: RetrySettings) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential_jitter(multiplier=settings.initial_wait, max=settings.max_wait)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return min(error.retry_after, settings.max_wait)
        return backoff(state)

    return wait


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("attempt %d failed (%s); retrying in %.1fs", state.attempt_number, error, wait)


def retrying(settings: RetrySettings) -> Retrying:
    """The shared retry policy: only :class:`RetryableError` is retried; the last one is raised."""
    return Retrying(
        retry=retry_if_exception_type(RetryableError),
        stop=stop_after_attempt(settings.attempts),
        wait=_wait_for(settings),
        before_sleep=_log_retry,
        reraise=True,
    )


def require_https(url: str, what: str) -> None:
    """Refuse plain HTTP except to this machine (the sandbox, a local proxy)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS):
        return
    raise SourceError(
        f"{what} {url!r} must start with https:// (plain http is only allowed to 127.0.0.1); "
        "credentials would otherwise travel unencrypted"
    )


def _short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    url: str
    params: Mapping[str, Any] | None
    json_body: Any
    data: str | bytes | None
    headers: Mapping[str, str] | None
    cost: int
    stream: bool = False


class HttpClient:
    """A ``requests`` session behind the limiter and the retry policy.

    ``auth_headers`` is called before every attempt (so a refreshed token is used on retry);
    ``on_unauthorized`` is called once when the remote answers 401 and returns True if it
    renewed the credentials (then the request is tried again), False to give up with an
    :class:`AuthError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        system: str,
        limiter: RateLimiter | None = None,
        retry: RetrySettings = RetrySettings(),
        timeout: tuple[float, float] = (10.0, 60.0),
        auth_headers: Callable[[], Mapping[str, str]] | None = None,
        on_unauthorized: Callable[[], bool] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.system = system
        self.limiter = limiter
        self.retry = retry
        self.timeout = timeout
        self.auth_headers = auth_headers
        self.on_unauthorized = on_unauthorized
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "clm-sync")

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        cost: int = 1,
        stream: bool = False,
    ) -> requests.Response:
        """Send with retries; return a 2xx/3xx response or raise a :class:`ConnectorError`.

        With ``stream`` the body is read as it is consumed; close the response when done.
        """
        call = _Call(method, self.url(path), params, json_body, data, headers, cost, stream)
        for attempt in retrying(self.retry):
            with attempt:
                return self._attempt(call)
        raise AssertionError("unreachable: retrying re-raises the last error")

    def lines(self, path: str, chunk_size: int = 65_536) -> Iterator[bytes]:
        """GET ``path`` and yield its body line by line as it arrives (a large export file).

        Only the opening request goes through the retry policy; a connection lost while the
        body streams raises :class:`RetryableError`, and the caller decides where to resume.
        """
        response = self.request("GET", path, stream=True)
        with response:
            try:
                yield from response.iter_lines(chunk_size=chunk_size)
            except requests.RequestException as error:
                raise RetryableError(
                    f"{self.system}: GET {urlsplit(response.url).path} was cut off while "
                    f"streaming: {type(error).__name__}"
                ) from error

    def json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        cost: int = 1,
    ) -> Any:
        """:meth:`request` and decode JSON; a cut-off or garbled body is retried like a 5xx."""
        call = _Call(method, self.url(path), params, json_body, data, headers, cost)
        for attempt in retrying(self.retry):
            with attempt:
                response = self._attempt(call)
                try:
                    return response.json()
                except ValueError:
                    raise RetryableError(
                        f"{self.system}: {method} {urlsplit(call.url).path} returned malformed "
                        f"JSON ({len(response.content):,} bytes): {_short(response.text, 120)!r}"
                    ) from None
        raise AssertionError("unreachable: retrying re-raises the last error")

    def _attempt(self, call: _Call) -> requests.Response:
        response = self._send(call)
        if response.status_code == 401 and self.on_unauthorized and self.on_unauthorized():
            response = self._send(call)
        self._raise_for(response, call.method, call.url)
        return response

    def _send(self, call: _Call) -> requests.Response:
        headers = dict(self.auth_headers() if self.auth_headers else {})
        headers.update(call.headers or {})
        slot = self.limiter.slot(call.cost) if self.limiter else nullcontext()
        try:
            with slot:
                return self.session.request(
                    call.method,
                    call.url,
                    params=call.params,
                    json=call.json_body,
                    data=call.data,
                    headers=headers,
                    timeout=self.timeout,
                    stream=call.stream,
                )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as error:
            raise RetryableError(
                f"{self.system}: {call.method} {urlsplit(call.url).path} failed: "
                f"{type(error).__name__}"
            ) from error

    def _raise_for(self, response: requests.Response, method: str, url: str) -> None:
        status = response.status_code
        if status < 400:
            return
        where = f"{self.system}: {method} {urlsplit(url).path}"
        if status in RETRYABLE_STATUS:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and self.limiter is not None:
                self.limiter.pause(retry_after)
            raise RetryableError(f"{where} answered HTTP {status}", retry_after)
        if status == 401:
            raise AuthError(
                f"{where} refused our credentials (HTTP 401); check the source's credentials "
                f"or run `clm-sync auth {self.system}` again"
            )
        if status == 403:
            raise AuthError(
                f"{where} is forbidden (HTTP 403): the app lacks a permission or scope. "
                f"Server said: {_short(response.text, 300)}"
            )
        raise HttpError(
            f"{where} answered HTTP {status}: {_short(response.text)}", status, response.text
        )
