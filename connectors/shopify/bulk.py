"""Shopify bulk operations: the whole order history as one JSONL file, no query cost.

``bulkOperationRunQuery`` starts the export, ``currentBulkOperation`` is polled until it is
``COMPLETED``, and the file behind its ``url`` holds one JSON object per line (a nested
connection's children would follow their parent with a ``__parentId``; the order query here
selects none). The URL is a signed link to cloud storage: it is fetched without the shop's
access token, and it stays valid for seven days, so an interrupted backfill resumes from the
line it reached (see https://shopify.dev/docs/api/usage/bulk-operations/queries).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from connectors.errors import RetryableError, SourceError
from connectors.http import HttpClient, retrying
from connectors.shopify.client import ShopifyClient

RUN_BULK = (
    "mutation RunBulk($query: String!) { bulkOperationRunQuery(query: $query) { "
    "bulkOperation { id status } userErrors { field message } } }"
)
CURRENT_BULK = (
    "query CurrentBulk { currentBulkOperation(type: QUERY) { "
    "id status errorCode objectCount url } }"
)
DEFAULT_POLL_INTERVAL = 2.0
_IN_PROGRESS = "already in progress"
_FAILED = frozenset({"FAILED", "CANCELED", "EXPIRED", "CANCELING"})


class BulkReader:
    """Runs one bulk query at a time and reads its result file."""

    def __init__(
        self,
        client: ShopifyClient,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.poll_interval = poll_interval
        self.sleep = sleep
        self.files = HttpClient(
            client.store_url,
            system=client.source.name,
            retry=client.retry.single_attempt(),
            timeout=client.http.timeout,
        )

    def run(self, query: str) -> tuple[str, int]:
        """Start the bulk query and wait for it: its file's URL ("" if empty) and line count."""
        name = self.client.source.name
        answer = self.client.query(RUN_BULK, {"query": query}, estimate=10)
        started = answer.data.get("bulkOperationRunQuery") or {}
        errors = started.get("userErrors") or []
        # A start whose answer was lost is retried and then refused as "in progress": the
        # operation running is then ours, so wait for it (only clm-sync runs bulk queries
        # with this app's token).
        if errors and not all(_IN_PROGRESS in str(error.get("message")) for error in errors):
            messages = "; ".join(str(error.get("message")) for error in errors)
            raise SourceError(f"{name}: Shopify refused the bulk order export: {messages}")
        while True:
            current = self.client.query(CURRENT_BULK, {}, estimate=1).data
            operation: dict[str, Any] = current.get("currentBulkOperation") or {}
            status = str(operation.get("status"))
            if status == "COMPLETED":
                return str(operation.get("url") or ""), int(operation.get("objectCount") or 0)
            if status in _FAILED:
                raise SourceError(
                    f"{name}: Shopify's bulk order export ended {status} "
                    f"({operation.get('errorCode')}); the next cycle starts it again"
                )
            self.sleep(self.poll_interval)

    def nodes(self, url: str, count: int, skip: int = 0) -> Iterator[dict[str, Any]]:
        """The objects of the result file after the first ``skip`` lines.

        A file with fewer than ``count`` whole lines (a cut-off download) is fetched again.
        """
        if not url:
            return
        for attempt in retrying(self.client.retry):
            with attempt:
                lines = self._lines(url, count)
        for line in lines[skip:]:
            node = json.loads(line)
            if isinstance(node, dict) and "__parentId" not in node:
                yield node

    def _lines(self, url: str, count: int) -> list[str]:
        text = self.files.request("GET", url).text
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            for line in lines:
                json.loads(line)
        except ValueError:
            lines = []
        if len(lines) < count:
            raise RetryableError(
                f"{self.client.source.name}: the bulk export file was cut off "
                f"({len(lines):,} of {count:,} lines)"
            )
        return lines
