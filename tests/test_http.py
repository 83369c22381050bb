"""The shared HTTP plumbing against a real stand-in server: retries, limits, errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectors.errors import AuthError, RetryableError, SourceError
from connectors.http import (
    HttpClient,
    HttpError,
    RateLimiter,
    RetrySettings,
    parse_retry_after,
    require_https,
)
from sandbox.http import Faults, Request, Response, SandboxServer, Throttle

FAST = RetrySettings(attempts=8, initial_wait=0.01, max_wait=0.2)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    stand_in = SandboxServer()

    @stand_in.route("GET", r"/items/(?P<item>\w+)")
    def item(request: Request) -> Response:
        return Response.json({"item": request.params["item"], "page": request.arg("page")})

    @stand_in.route("POST", r"/items")
    def create(request: Request) -> Response:
        body = request.json()
        if not body.get("name"):
            return Response.json({"Fault": {"Error": [{"Message": "name is required"}]}}, 400)
        return Response.json({"created": body["name"]}, 201)

    with stand_in:
        yield stand_in


def client(
    server: SandboxServer, retry: RetrySettings = FAST, limiter: RateLimiter | None = None
) -> HttpClient:
    return HttpClient(server.url, system="test", retry=retry, timeout=(1.0, 0.5), limiter=limiter)


def test_injected_failures_are_retried_until_the_answer_is_right(server: SandboxServer) -> None:
    server.faults = Faults(server_error=0.2, throttle=0.1, truncate=0.1, retry_after=0.01, seed=3)
    http = client(server)

    answers = [http.json("GET", f"/items/a{n}", params={"page": n}) for n in range(40)]

    assert answers == [{"item": f"a{n}", "page": str(n)} for n in range(40)]
    assert sum(server.stats.faults.values()) >= 8, server.stats.faults


def test_a_stalled_request_times_out_and_is_retried(server: SandboxServer) -> None:
    server.faults = Faults(stall=1.0, stall_seconds=1.0)
    http = client(server, retry=RetrySettings(attempts=2, initial_wait=0.01, max_wait=0.01))

    with pytest.raises(RetryableError, match="ReadTimeout"):
        http.json("GET", "/items/x")
    assert server.stats.faults["stall"] == 2


def test_validation_faults_are_not_retried(server: SandboxServer) -> None:
    http = client(server)

    with pytest.raises(HttpError) as raised:
        http.json("POST", "/items", json_body={"name": ""})

    assert raised.value.status == 400 and "name is required" in raised.value.body
    assert server.stats.requests == 1
    assert http.json("POST", "/items", json_body={"name": "ok"}) == {"created": "ok"}


def test_a_dead_server_gives_a_retryable_error_naming_the_call() -> None:
    dead = SandboxServer()
    url = dead.url
    dead.stop()
    http = HttpClient(url, system="shop", retry=RetrySettings(attempts=2, initial_wait=0.01))

    with pytest.raises(RetryableError, match=r"shop: GET /items/a failed: ConnectionError"):
        http.json("GET", "/items/a")


def test_401_renews_credentials_once_then_gives_up_clearly() -> None:
    stand_in = SandboxServer()
    tokens = {"current": "old"}

    @stand_in.route("GET", r"/me")
    def me(request: Request) -> Response:
        if request.header("Authorization") != "Bearer fresh":
            return Response.json({"error": "invalid_token"}, 401)
        return Response.json({"me": 1})

    def renew() -> bool:
        tokens["current"] = "fresh"
        return True

    with stand_in:
        renewing = HttpClient(
            stand_in.url,
            system="graph",
            retry=FAST,
            auth_headers=lambda: {"Authorization": f"Bearer {tokens['current']}"},
            on_unauthorized=renew,
        )
        assert renewing.json("GET", "/me") == {"me": 1}

        refusing = HttpClient(stand_in.url, system="graph", retry=FAST)
        with pytest.raises(AuthError, match="clm-sync auth graph"):
            refusing.json("GET", "/me")


def test_the_limiter_keeps_a_burst_under_the_servers_throttle(server: SandboxServer) -> None:
    server.throttle = Throttle(max_requests=10, window=0.5, max_concurrent=2)
    http = client(server, limiter=RateLimiter(10, 0.5, 2))
    errors: list[BaseException] = []

    def worker(start: int) -> None:
        try:
            for n in range(start, start + 10):
                http.json("GET", f"/items/b{n}")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n * 10,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert server.stats.requests == 40
    assert server.throttle.rejected == 0
    assert server.throttle.peak_concurrent <= 2


def test_without_the_limiter_the_same_burst_is_throttled(server: SandboxServer) -> None:
    """The check above can fail: the stand-in does reject a client that ignores the limit."""
    server.throttle = Throttle(max_requests=10, window=0.5, retry_after=0.1)
    http = client(server)

    for n in range(30):
        http.json("GET", f"/items/c{n}")

    assert server.throttle.rejected > 0


def test_retry_after_pauses_every_caller_of_the_limiter() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(100, 60, 4, clock=lambda: now[0], sleep=sleep)
    limiter.pause(3.0)
    with limiter.slot():
        pass

    assert slept == [3.0]


def test_retry_after_header_forms() -> None:
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 25 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://shop.example.com", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080", True),
        ("http://shop.example.com", False),
        ("ftp://shop.example.com", False),
    ],
)
def test_plain_http_only_to_this_machine(url: str, allowed: bool) -> None:
    if allowed:
        require_https(url, "url")
    else:
        with pytest.raises(SourceError, match="must start with https://"):
            require_https(url, "url")
