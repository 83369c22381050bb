"""One writer per ledger: a second ``run`` or ``once`` on the same ledger refuses to start.

SQLite: an exclusive ``flock`` on ``<ledger>.lock``, which the kernel releases when the
process dies, however it dies; the file names the holder. PostgreSQL: a session advisory lock,
released when the connection closes; the holder is found in ``pg_stat_activity``. A standby
daemon could wait on the same lock to take over (see DESIGN.md, "Growing past one machine").
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text

from sync.db import sqlite_path

# An arbitrary, fixed 64-bit key: "clm-sync" as ASCII.
ADVISORY_LOCK_KEY = 0x636C6D2D73796E63
APPLICATION_NAME = "clm-sync"


class LedgerBusyError(Exception):
    """Another clm-sync process holds the ledger; the message names it."""


def holder_description() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _describe(holder: dict[str, object]) -> str:
    return f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = lock_path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                holder = {}
            raise LedgerBusyError(
                f"the ledger {path} is in use by clm-sync {_describe(holder)}; stop that "
                "process first (systemctl stop clm-sync) or point this one at another ledger"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder_description()))
        handle.flush()
        yield
    finally:
        handle.close()


def _pg_holder(connection: Connection) -> str:
    row = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr, a.backend_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
        ),
        {"key": ADVISORY_LOCK_KEY},
    ).first()
    if row is None:
        return "another session"
    pid, application, address, since = row
    origin = address or "local socket"
    name = application or "a session"
    return f"{name} (server pid {pid}, from {origin}, since {since:%Y-%m-%d %H:%M})"


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    with engine.connect() as connection:
        connection.execute(
            text("SELECT set_config('application_name', :name, false)"),
            {"name": f"{APPLICATION_NAME} pid {os.getpid()} on {socket.gethostname()}"[:63]},
        )
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        ).scalar_one()
        connection.commit()
        if not got:
            raise LedgerBusyError(
                f"the ledger database is in use by {_pg_holder(connection)}; stop that "
                "clm-sync first or point this one at another ledger"
            )
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()


@contextmanager
def ledger_lock(engine: Engine) -> Iterator[None]:
    """Hold the ledger for this process, or raise :class:`LedgerBusyError` naming the holder."""
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is not None:
        with _file_lock(path):
            yield
    elif engine.dialect.name == "postgresql":
        with _advisory_lock(engine):
            yield
    else:
        yield
