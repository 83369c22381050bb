"""The ledger schema (sync/db.py, sync/migrations): migrations match the models on both
databases, an outdated ledger is refused with the fix, a new SQLite file is private and WAL."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

import sync.db
from sync.db import (
    LedgerError,
    create_ledger_engine,
    current_revision,
    ensure_current_schema,
    head_revision,
    migrate,
)
from tests.conftest import clm_sync, write_config

NEXT_REVISION = '''"""a later schema, for tests

Revision ID: {revision}
Revises: {down}
"""

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


@pytest.fixture
def fresh_engine(ledger_url: str) -> Iterator[Engine]:
    """An engine on the empty ledger database, schema untouched."""
    engine = create_ledger_engine(ledger_url)
    yield engine
    engine.dispose()


def test_clm_sync_migrate_builds_exactly_the_models_schema(
    tmp_path: Path, ledger_url: str, fresh_engine: Engine
) -> None:
    config = write_config(tmp_path, ledger_url)

    first = clm_sync("migrate", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert f"Ledger migrated from empty to {head_revision()}." in first.stdout
    again = clm_sync("migrate", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert f"already at revision {head_revision()}" in again.stdout

    assert current_revision(fresh_engine) == head_revision()
    assert schema_differences(fresh_engine) == []
    tables = set(inspect(fresh_engine).get_table_names())
    assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}


def test_a_new_empty_ledger_is_created_at_the_newest_revision(fresh_engine: Engine) -> None:
    assert current_revision(fresh_engine) is None
    ensure_current_schema(fresh_engine)
    assert current_revision(fresh_engine) == head_revision()
    assert schema_differences(fresh_engine) == []
    ensure_current_schema(fresh_engine)  # a current ledger is accepted as it is
    assert migrate(fresh_engine) == (head_revision(), head_revision())


@pytest.fixture
def newer_clm_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make this clm-sync one schema revision newer than the ledgers the tests create."""
    copy = tmp_path / "migrations"
    shutil.copytree(
        sync.db.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    head = head_revision()
    later = f"{head}_later"
    (copy / "versions" / f"{later}.py").write_text(
        NEXT_REVISION.format(revision=later, down=head), encoding="utf-8"
    )
    monkeypatch.setattr(sync.db, "MIGRATIONS_DIR", copy)
    assert head_revision() == later
    return later


def test_an_older_ledger_is_refused_until_migrated(engine: Engine, newer_clm_sync: str) -> None:
    old = current_revision(engine)
    assert old is not None and old != newer_clm_sync

    with pytest.raises(LedgerError) as raised:
        ensure_current_schema(engine)

    message = str(raised.value)
    assert f"at revision {old}" in message
    assert f"needs {newer_clm_sync}" in message
    assert "back up the ledger, then run `clm-sync migrate`" in message
    assert current_revision(engine) == old, "the check changed the ledger"

    assert migrate(engine) == (old, newer_clm_sync)
    ensure_current_schema(engine)
    assert schema_differences(engine) == []


def set_version(engine: Engine, revision: str | None) -> None:
    with engine.begin() as connection:
        if revision is None:
            connection.execute(text("DROP TABLE alembic_version"))
        else:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})


def test_a_ledger_whose_version_table_is_gone_is_refused_not_rebuilt(engine: Engine) -> None:
    set_version(engine, None)

    with pytest.raises(LedgerError) as raised:
        ensure_current_schema(engine)

    # `clm-sync migrate` would try to create tables that exist: the message must not send the
    # admin there, but name what is wrong.
    assert "holds tables but no clm-sync schema version" in str(raised.value)
    assert current_revision(engine) is None
    assert "ledger_customer" in inspect(engine).get_table_names()


def test_a_ledger_from_a_newer_clm_sync_is_refused_without_advising_migrate(
    engine: Engine,
) -> None:
    set_version(engine, "9999")

    with pytest.raises(LedgerError) as raised:
        ensure_current_schema(engine)

    message = str(raised.value)
    assert "at revision 9999" in message
    assert "a newer clm-sync wrote it" in message
    assert "clm-sync migrate" not in message


def test_a_new_sqlite_ledger_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "ledger.db"
    previous_umask = os.umask(0)  # what SQLite alone would create: rw for everyone
    try:
        engine = create_ledger_engine(f"sqlite:///{path}")
        ensure_current_schema(engine)
        with engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
            connection.execute(text("SELECT count(*) FROM ledger_customer")).scalar_one()
            companions = [p for p in path.parent.iterdir() if p.name.startswith("ledger.db-")]
            companion_modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in companions}
    finally:
        os.umask(previous_umask)
    engine.dispose()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert mode == "wal"
    # SQLite gives its -wal and -shm files the permissions of the database file.
    assert "ledger.db-wal" in companion_modes
    assert set(companion_modes.values()) == {0o600}, companion_modes
    with sqlite3.connect(path) as plain:  # WAL is a property of the file, not the engine
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
