"""The ledger database: engine, SQLite hardening, and schema migrations (alembic).

SQLite by default (one file, created with mode 0600, WAL journal so readers such as
``status`` never block the daemon); PostgreSQL by URL. The schema is owned by alembic: a
new, empty ledger is created at its newest revision; an older one must be upgraded by
``clm-sync migrate`` (after a backup) and nothing else runs until it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

import sync.ledger  # noqa: F401  (registers the tables on SQLModel.metadata)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_FILE_MODE = 0o600
SQLITE_BUSY_TIMEOUT_MS = 30_000


class LedgerError(Exception):
    """The ledger cannot be used as it is; the message says what to do."""


def sqlalchemy_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for other databases and ``:memory:``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _create_private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only, before SQLite creates it 0644.

    SQLite gives its -wal and -shm files the permissions of the database file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, SQLITE_FILE_MODE)
    os.close(fd)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is crash-safe in WAL mode: a crash can only lose whole, uncommitted transactions.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def create_ledger_engine(url: str) -> Engine:
    """An engine for the ledger at ``url``; does not touch the schema."""
    url = sqlalchemy_url(url)
    path = sqlite_path(url)
    if path is not None:
        if not path.exists():
            _create_private_file(path)
        engine = create_engine(url)
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's configuration, built in code: clm-sync ships no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "sync/migrations has no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the ledger to the newest schema; returns (revision before, revision after)."""
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    return before, head_revision()


def _is_empty(engine: Engine) -> bool:
    return not inspect(engine).get_table_names()


def ensure_current_schema(engine: Engine) -> None:
    """Create a brand-new ledger; refuse an outdated one with the command that fixes it."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None and _is_empty(engine):
        migrate(engine)
        return
    if current is None:
        raise LedgerError(
            "the ledger database holds tables but no clm-sync schema version; point `ledger:` "
            "at an empty database or at an existing clm-sync ledger"
        )
    if not _is_known(current):
        # `clm-sync migrate` cannot help here: it cannot go back to a schema it does not know.
        raise LedgerError(
            f"the ledger schema is at revision {current}, which this clm-sync (schema {head}) "
            "does not know: a newer clm-sync wrote it; install that version again, or restore "
            "the ledger backup taken before it was migrated"
        )
    raise LedgerError(
        f"the ledger schema is at revision {current}, this clm-sync needs {head}; back up the "
        "ledger, then run `clm-sync migrate`"
    )


def _is_known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False
