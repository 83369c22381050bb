"""Backfill of a QuickBooks stand-in company under the throttle: wall time against its bound.

The stand-in enforces QuickBooks' throttle shape (``--limit`` requests per ``--window``
seconds, 10 at once; the real one is 500 per 60 s, scale the window down to keep runs short)
and counts every request it rejects with 429. The connector's limiter gets the same figures.
For R requests the throttle allows no faster finish than ``floor((R - 1) / limit) * window``
seconds. The same backfill without any throttle, in the same run, gives the time the
connector and the stand-in need anyway; the larger of the two is the lower bound the wall time
is compared with (target: within 1.2x, and no 429 at all).

    python bench/quickbooks.py --customers 10000 --transactions 100000
    python bench/quickbooks.py --customers 2000 --transactions 20000 --page-size 100 \\
        --limit 50 --window 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from config.models import AppConfig, QuickBooksSource
from connectors.base import ConnectorContext
from connectors.http import RetrySettings
from connectors.quickbooks import QuickBooksConnector
from sandbox.http import Throttle
from sandbox.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM_ID, QuickBooksStandIn
from sandbox.synthetic import BusinessSpec, spec_for_transactions
from sync.db import create_ledger_engine, ensure_current_schema
from sync.ingest import StreamIngest
from sync.rows import RowContext
from sync.tokens import TokenStore


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    requests: int
    rejected: int
    records: int


def backfill(spec: BusinessSpec, page_size: int, limit: int | None, window: float) -> Run:
    throttle = Throttle(max_requests=limit, window=window, max_concurrent=10)
    with QuickBooksStandIn(spec, throttle=throttle) as stand_in, tempfile.TemporaryDirectory() as d:
        engine = create_ledger_engine(f"sqlite:///{Path(d) / 'ledger.db'}")
        ensure_current_schema(engine)
        source = QuickBooksSource.model_validate(
            {
                "type": "quickbooks",
                "name": "qbo",
                "realm_id": REALM_ID,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "api_url": stand_in.url,
                "graphql_url": stand_in.graphql_url,
                "discovery_url": stand_in.discovery_url,
                "page_size": page_size,
                "marketing_accounts": stand_in.company.marketing_accounts(),
                "throttle": {"requests_per_minute": limit or 10_000},
            }
        )
        app = AppConfig(ledger="sqlite:///unused.db", sources=[source])
        context = ConnectorContext(TokenStore(engine, Fernet(Fernet.generate_key())))
        connector = QuickBooksConnector(
            source, app, context, RetrySettings(), stand_in.company.now, window=window
        )
        connector.auth.complete(stand_in.consent(connector.auth.consent_url()))
        before = _api_requests(stand_in)
        started = time.perf_counter()
        records = 0
        for stream in connector.streams():
            ingest = StreamIngest(engine, "qbo", stream, RowContext("USD", "US"))
            records += ingest.run(None).records_in
        seconds = time.perf_counter() - started
        engine.dispose()
        return Run(seconds, _api_requests(stand_in) - before, throttle.rejected, records)


def _api_requests(stand_in: QuickBooksStandIn) -> int:
    routes = stand_in.server.stats.by_route
    return sum(count for route, count in routes.items() if route.startswith("/v3/"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=500, help="requests per window")
    parser.add_argument("--window", type=float, default=6.0, help="seconds (real: 60)")
    args = parser.parse_args()
    spec = spec_for_transactions(args.customers, args.transactions)

    free = backfill(spec, args.page_size, None, args.window)
    throttled = backfill(spec, args.page_size, args.limit, args.window)
    throttle_bound = (throttled.requests - 1) // args.limit * args.window
    bound = max(throttle_bound, free.seconds)
    print(f"company: {args.customers:,} customers, {throttled.records:,} records pulled")
    print(f"requests: {throttled.requests:,} (page size {args.page_size})")
    print(f"throttle: {args.limit} per {args.window:g} s")
    print(f"unthrottled backfill:   {free.seconds:8.2f} s")
    print(f"throttle's lower bound: {throttle_bound:8.2f} s")
    print(f"throttled backfill:     {throttled.seconds:8.2f} s")
    print(f"ratio to the lower bound (the larger of the two): {throttled.seconds / bound:.2f}x")
    print(f"429 answers: {throttled.rejected}")


if __name__ == "__main__":
    main()
