"""The CSV source's writer: appends changed metric values to ``clm-sync-updates.csv``.

A folder of exports has no custom fields to write into, so the "remote" is a file next to the
exports that the tool which produced them (or a person) can import. Rows are only ever
appended, one per changed value, with the previous value, so the file is also an audit log.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import WriteResult
from connectors.records import FieldUpdate

UPDATES_FILENAME = "clm-sync-updates.csv"
UPDATES_HEADER = ("written_at", "customer_id", "field", "value", "previous")


class CsvUpdatesWriter:
    """Appends each batch to the updates file and flushes it to disk before reporting success."""

    def __init__(self, folder: Path, max_batch: int) -> None:
        self.path = folder / UPDATES_FILENAME
        self.max_batch = max_batch

    def write(self, updates: Sequence[FieldUpdate]) -> Sequence[WriteResult]:
        written_at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            new_file = not self.path.exists() or self.path.stat().st_size == 0
            with self.path.open("a", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)
                if new_file:
                    writer.writerow(UPDATES_HEADER)
                for update in updates:
                    writer.writerow(
                        (
                            written_at,
                            update.external_id,
                            update.field,
                            update.value,
                            update.previous or "",
                        )
                    )
        except OSError as error:
            reason = f"cannot append to {self.path}: {error.strerror or error}"
            return [WriteResult(update, reason) for update in updates]
        return [WriteResult(update) for update in updates]
