"""Fetch a stream's next page while the current one is written to the ledger.

A connector spends its time waiting (on HTTP, on the disk) and parsing; the ledger spends its
time in the database driver, which releases the interpreter lock. Running the stream's
generator in a helper thread one page ahead lets the two overlap. Nothing about crash safety
changes: a page counts only once ingest has committed it with its cursor, so a page fetched
ahead and never written is simply fetched again by the next run. At most two pages wait
(one queued, one being fetched), so memory stays bounded by the page size.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")

# How long closing waits for a fetch in flight before leaving the (daemon) thread behind,
# so a stop request is never held up by a slow remote.
CLOSE_WAIT_SECONDS = 2.0
_POLL_SECONDS = 0.1


class _End:
    """The producer finished: normally (``error`` None) or with an exception."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Prefetched(Generic[Item]):
    """Iterate ``items`` one item ahead in a helper thread; use as a context manager."""

    def __init__(self, items: Iterator[Item], name: str) -> None:
        self._items = items
        self._queue: queue.Queue[Item | _End] = queue.Queue(maxsize=1)
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> Iterator[Item]:
        self._thread.start()
        return self._consume()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._cancelled.set()
        self._thread.join(CLOSE_WAIT_SECONDS)
        if self._thread.is_alive():
            log.info("%s: left a fetch in flight behind", self._thread.name)

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put(_End(error))
        else:
            self._put(_End())
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _put(self, item: Item | _End) -> bool:
        while not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def _consume(self) -> Iterator[Item]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
