"""Developer tool: write a new migration from the difference between the models and the schema.

``python -m sync.make_migration "add merge log"`` upgrades a scratch SQLite ledger to the
newest revision, compares it with ``sync/ledger.py`` and writes the revision file. Review it
before committing; a test fails while models and migrations disagree.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from sync.db import alembic_config, create_ledger_engine, migrate


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_ledger_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        if any((Path(__file__).parent / "migrations" / "versions").glob("*.py")):
            migrate(engine)
        command.revision(alembic_config(engine), message=message, autogenerate=True)


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "schema change")
