"""The page prefetcher: same items in the same order, errors passed on, early stops clean."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sync.prefetch import Prefetched


def test_items_arrive_in_order() -> None:
    with Prefetched(iter(range(100)), "numbers") as items:
        assert list(items) == list(range(100))


def test_an_error_in_the_producer_reaches_the_consumer_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("remote said no")

    seen: list[int] = []
    with pytest.raises(ValueError, match="remote said no"), Prefetched(failing(), "f") as items:
        seen.extend(items)
    assert seen == [1, 2]


def test_the_producer_runs_at_most_two_items_ahead_and_stops_when_the_consumer_does() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def counting() -> Iterator[int]:
        try:
            for number in range(1_000):
                produced.append(number)
                yield number
        finally:
            closed.set()

    with Prefetched(counting(), "counting") as items:
        first = next(items)
        # let the producer run as far ahead as it can
        for _ in range(50):
            if len(produced) >= 3:
                break
            threading.Event().wait(0.01)
    assert first == 0
    assert closed.wait(5), "the generator was not closed after the consumer stopped"
    # one handed out, one in the queue, one waiting to be queued
    assert len(produced) <= 3
