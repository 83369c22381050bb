"""One writer per ledger (sync/lock.py): a file lock on SQLite, an advisory lock on PostgreSQL.

The holder is a real second process, so the test sees what the kernel and the server do when
it dies without cleaning up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sync.db import create_ledger_engine, sqlite_path
from sync.lock import LedgerBusyError, ledger_lock
from tests.conftest import ROOT

HOLDER = """
import sys, time
from sync.db import create_ledger_engine
from sync.lock import ledger_lock

with ledger_lock(create_ledger_engine(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(300)
"""
# A killed client's session ends when the server notices the closed socket: soon, not at once.
RELEASE_TIMEOUT_S = 15


@pytest.fixture
def lock_engine(ledger_url: str) -> Iterator[Engine]:
    engine = create_ledger_engine(ledger_url)
    yield engine
    engine.dispose()


@pytest.fixture
def holder(ledger_url: str) -> Iterator[subprocess.Popen[str]]:
    """A second process that holds the ledger lock until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, ledger_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "locked":
            process.kill()
            _, errors = process.communicate(timeout=10)
            pytest.fail(f"the holder did not take the lock: {line!r} {errors}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def busy_message(engine: Engine) -> str:
    with pytest.raises(LedgerBusyError) as raised, ledger_lock(engine):
        pytest.fail("took a lock another process holds")
    return str(raised.value)


def take_when_released(engine: Engine) -> float:
    """Take and release the lock as soon as it is free; returns the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            with ledger_lock(engine):
                return time.monotonic() - started
        except LedgerBusyError:
            if time.monotonic() - started > RELEASE_TIMEOUT_S:
                raise
            time.sleep(0.05)


def test_a_held_ledger_refuses_a_second_holder_and_names_the_first(
    lock_engine: Engine, holder: subprocess.Popen[str], ledger_url: str
) -> None:
    started = time.monotonic()
    message = busy_message(lock_engine)
    assert time.monotonic() - started < 5, "the second acquisition waited instead of failing"

    host = socket.gethostname()
    if sqlite_path(ledger_url) is not None:
        assert f"in use by clm-sync process {holder.pid} on {host} (since " in message
    else:
        assert f"in use by {f'clm-sync pid {holder.pid} on {host}'[:63]} (server pid " in message
    assert "stop that" in message
    assert holder.poll() is None, "the holder died; the test proves nothing"


def test_a_killed_holder_releases_the_ledger(
    lock_engine: Engine, holder: subprocess.Popen[str], ledger_url: str
) -> None:
    busy_message(lock_engine)

    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)

    assert take_when_released(lock_engine) < RELEASE_TIMEOUT_S
    path = sqlite_path(ledger_url)
    with ledger_lock(lock_engine):
        if path is not None:
            lock_file = Path(f"{path}.lock")
            assert json.loads(lock_file.read_text(encoding="utf-8"))["pid"] == os.getpid()


def test_a_released_lock_can_be_taken_again_and_then_blocks_other_processes(
    lock_engine: Engine, ledger_url: str
) -> None:
    with ledger_lock(lock_engine):
        pass
    with ledger_lock(lock_engine):
        blocked = subprocess.run(
            [sys.executable, "-c", HOLDER, ledger_url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert blocked.returncode != 0
    assert "LedgerBusyError" in blocked.stderr
    assert str(os.getpid()) in blocked.stderr
