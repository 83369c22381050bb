"""Alembic environment: runs on the engine clm-sync hands over (never reads alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import sync.ledger  # noqa: F401  (registers the tables)

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    context.run_migrations()
