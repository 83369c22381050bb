"""Shopify bulk operations: the whole order history as one JSONL file, no query cost.

``bulkOperationRunQuery`` starts the export, ``currentBulkOperation`` is polled until it is
``COMPLETED``, and the file behind its ``url`` holds one JSON object per line; the children
of a nested connection (an order's line items) are lines of their own with a ``__parentId``,
right below their parent since the query asks for ``groupObjects: true`` (the default until
API version 2026-01). The file is streamed, never held whole. The URL is a signed link to
cloud storage: it is fetched without the shop's access token, and it stays valid for seven
days, so an interrupted backfill resumes from the line it reached (see https://shopify.dev/docs/api/usage/bulk-operations/queries).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from connectors.errors import RetryableError, SourceError
from connectors.http import HttpClient
from connectors.shopify.client import ShopifyClient

log = logging.getLogger(__name__)
Node = dict[str, Any]

RUN_BULK = (
    "mutation RunBulk($query: String!) { "
    "bulkOperationRunQuery(query: $query, groupObjects: true) { "
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

    def nodes(
        self,
        url: str,
        count: int,
        skip: int = 0,
        children: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[Node, int]]:
        """The top-level objects of the result file after its first ``skip`` lines.

        Each comes with the number of lines read up to and including its children, the place to
        resume after it. ``children`` maps a child's type (``LineItem`` in its id) to the
        connection it is gathered under (``{"lineItems": {"nodes": [...]}}``), the shape a paged
        query gives. The file streams: memory holds one object and its children. A download
        cut off (fewer whole lines than ``count``, a broken line, a lost connection) is fetched
        again from the start and skipped up to the last object already handed out, so nothing
        is yielded twice.
        """
        if not url:
            return
        position, failures = skip, 0
        while True:
            start = position
            try:
                for node, after in self._objects(url, count, position, children or {}):
                    position = after
                    yield node, after
                return
            except RetryableError as error:
                # A download that got further than the last one starts the count anew.
                failures = 1 if position > start else failures + 1
                if failures >= self.client.retry.attempts:
                    raise
                wait = min(
                    self.client.retry.max_wait,
                    self.client.retry.initial_wait * 2 ** (failures - 1),
                )
                log.warning("%s; reading it again from line %d in %.1fs", error, position, wait)
                self.sleep(wait)

    def _objects(
        self, url: str, count: int, skip: int, children: Mapping[str, str]
    ) -> Iterator[tuple[Node, int]]:
        """One download: each top-level object once its children have all been read.

        ``groupObjects: true`` puts children right below their parent, so an object is
        complete when the next top-level line (or the end of a whole file) arrives.
        """
        name = self.client.source.name
        parent: Node | None = None
        read = 0
        for raw in self.files.lines(url):
            if not raw.strip():
                continue
            read += 1
            if read <= skip:
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                raise RetryableError(f"{name}: the bulk export file has a broken line") from None
            if not isinstance(item, dict):
                raise SourceError(f"{name}: the bulk export file has a line that is no object")
            parent_id = item.pop("__parentId", None)
            if parent_id is None:
                if parent is not None:
                    yield parent, read - 1
                parent = item
                continue
            if parent is None or parent_id != parent.get("id"):
                raise SourceError(
                    f"{name}: a child line of the bulk export does not follow its parent "
                    f"{parent_id!r}; was groupObjects turned off?"
                )
            field = children.get(_gid_type(item.get("id")))
            if field is None:
                raise SourceError(f"{name}: the bulk export has an unexpected child {item!r}")
            parent.setdefault(field, {"nodes": []})["nodes"].append(item)
        if read < count:
            raise RetryableError(
                f"{name}: the bulk export file was cut off ({read:,} of {count:,} lines)"
            )
        if parent is not None:
            yield parent, read


def _gid_type(gid: Any) -> str:
    """``gid://shopify/LineItem/1`` to ``LineItem``."""
    parts = str(gid).split("/")
    return parts[-2] if len(parts) >= 2 else ""
