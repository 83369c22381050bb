"""Ingest runs with a higher garbage-collector threshold and puts the old one back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from sync.ingest import INGEST_GC_THRESHOLD, fewer_collections


@pytest.fixture(autouse=True)
def known_thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_the_threshold_is_raised_while_ingest_runs_and_restored_after() -> None:
    with fewer_collections():
        assert gc.get_threshold() == (INGEST_GC_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_ingests_restore_the_thresholds_once_the_last_ends() -> None:
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold() == (INGEST_GC_THRESHOLD, 10, 10)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_the_thresholds_come_back_when_ingest_fails() -> None:
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the source broke")
    assert gc.get_threshold() == (700, 10, 10)
