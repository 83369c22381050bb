"""The base of every stand-in server: real HTTP on 127.0.0.1, routes, faults and a throttle.

Each vendor stand-in (QuickBooks, Graph, EWS, Shopify, WooCommerce) registers its routes on a
:class:`SandboxServer` and answers in the vendor's own JSON or XML. The server adds what real
services do to a client: latency, throttling with ``Retry-After`` when a published limit is
exceeded (counted, so tests can assert that a well-behaved client is never rejected), and, on
demand, injected failures (5xx, 429, stalls past the client's timeout, cut-off bodies).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    """Named groups of the route pattern that matched."""

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter (names compared case-insensitively)."""
        for key, values in self.query.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return default

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Response:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json", **headers})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode("utf-8"), {"Content-Type": f"{content_type}; charset=utf-8"})


Handler = Callable[[Request], Response]


@dataclass(slots=True)
class Faults:
    """Injected failures, each a fraction of requests (0 to 1), drawn from a seeded generator.

    ``stall`` sleeps ``stall_seconds`` (longer than the client's timeout) before answering;
    ``truncate`` cuts the body in half so the JSON does not parse.
    """

    server_error: float = 0.0
    throttle: float = 0.0
    stall: float = 0.0
    truncate: float = 0.0
    latency: float = 0.0
    stall_seconds: float = 2.0
    retry_after: float = 1.0
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def draw(self) -> str | None:
        """Which fault (if any) hits the next request."""
        roll = self._random.random()
        for name in ("server_error", "throttle", "stall", "truncate"):
            share = float(getattr(self, name))
            if roll < share:
                return name
            roll -= share
        return None


@dataclass(slots=True)
class Throttle:
    """A vendor's published limit, enforced per key (company, mailbox, shop).

    At most ``max_requests`` per ``window`` seconds and ``max_concurrent`` at once; a request
    over either limit is rejected with the vendor's 429 and counted in ``rejected``.
    """

    max_requests: int | None = None
    window: float = 60.0
    max_concurrent: int | None = None
    retry_after: float = 1.0
    rejected: int = 0
    peak_concurrent: int = 0
    _starts: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _in_flight: dict[str, int] = field(default_factory=dict, repr=False)

    def admit(self, key: str, now: float) -> bool:
        starts = self._starts.setdefault(key, deque())
        while starts and starts[0] <= now - self.window:
            starts.popleft()
        in_flight = self._in_flight.get(key, 0)
        if (self.max_requests is not None and len(starts) >= self.max_requests) or (
            self.max_concurrent is not None and in_flight >= self.max_concurrent
        ):
            self.rejected += 1
            return False
        starts.append(now)
        self._in_flight[key] = in_flight + 1
        self.peak_concurrent = max(self.peak_concurrent, in_flight + 1)
        return True

    def release(self, key: str) -> None:
        self._in_flight[key] -= 1


@dataclass(slots=True)
class Stats:
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    by_route: dict[str, int] = field(default_factory=dict)


class SandboxServer:
    """A threaded HTTP server on 127.0.0.1 with regex routes; use as a context manager.

    ``throttle_key`` maps a request to its throttle scope; ``fault_response`` builds the
    vendor-shaped body of an injected or throttled failure (status 429 or 503).
    """

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        throttle: Throttle | None = None,
        throttle_key: Callable[[Request], str] | None = None,
        fault_response: Callable[[int, float], Response] | None = None,
        port: int = 0,
    ) -> None:
        self.faults = faults or Faults()
        self.throttle = throttle or Throttle()
        self.throttle_key = throttle_key or _one_scope
        self.fault_response = fault_response or _plain_fault
        self.stats = Stats()
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Register ``handler`` for ``method`` and a full-match path regex (named groups)."""

        def register(handler: Handler) -> Handler:
            self._routes.append((method.upper(), re.compile(pattern), pattern, handler))
            return handler

        return register

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def handle(self, request: Request) -> tuple[Response, str | None]:
        """Answer one request; the second item is the fault injected, if any."""
        found = self._find(request)
        if found is None:
            missing = f"no route for {request.method} {request.path}"
            return Response.json({"error": missing}, 404), None
        name, handler, match = found
        key = self.throttle_key(request)
        with self._lock:
            self.stats.requests += 1
            self.stats.by_route[name] = self.stats.by_route.get(name, 0) + 1
            admitted = self.throttle.admit(key, time.monotonic())
            fault = self.faults.draw() if admitted else "throttled"
            if fault:
                self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
        if not admitted:
            return self.fault_response(429, self.throttle.retry_after), fault
        try:
            if self.faults.latency:
                time.sleep(self.faults.latency)
            if fault == "stall":
                time.sleep(self.faults.stall_seconds)
            if fault == "server_error":
                return self.fault_response(503, self.faults.retry_after), fault
            if fault == "throttle":
                return self.fault_response(429, self.faults.retry_after), fault
            response = handler(dataclasses.replace(request, params=match.groupdict()))
        finally:
            with self._lock:
                self.throttle.release(key)
        if fault == "truncate":
            response.body = response.body[: len(response.body) // 2]
        return response, fault

    def _find(self, request: Request) -> tuple[str, Handler, re.Match[str]] | None:
        for method, pattern, name, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                return name, handler, match
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm the body
            # waits for the client's delayed ACK, ~40 ms per keep-alive request.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                try:
                    response, _ = server.handle(request)
                except Exception as error:  # a stand-in bug must show, not hang the client
                    response = Response.json({"error": f"sandbox failure: {error!r}"}, 500)
                try:
                    self.send_response(response.status)
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(response.body)))
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a stalled request)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 (stdlib names)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests and the demo print their own progress."""

        return _Handler


def _one_scope(_request: Request) -> str:
    return ""


def _plain_fault(status: int, retry_after: float) -> Response:
    return Response.json(
        {"error": "throttled" if status == 429 else "unavailable"},
        status,
        **{"Retry-After": f"{retry_after:g}"},
    )
