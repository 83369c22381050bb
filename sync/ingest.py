"""Ingest: store what a stream yields, page by page, so that a crash loses nothing.

For every page, in ONE transaction: new records are inserted, changed ones (by content hash)
updated, unchanged ones left alone, tombstones flag their row deleted, invalid records go to
quarantine with the reason and the raw payload, and the stream's cursor moves past the page.
A crash anywhere therefore re-pulls at most the page in flight, and memory is bounded by the
page size. For full-refresh streams, and for the pages of an incremental stream marked
``full_pass``, the ids of the running pass are kept in ``ingest_seen``; when the pass completes
every live row it did not see is flagged deleted (never erased). A full-refresh stream's id seen
twice in a pass is quarantined; an incremental stream's is stored again (pages may overlap).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, bindparam, delete, insert, select, update

from connectors.base import Cursor, Origin, Page, Stream
from connectors.records import Record, Rejected
from sync.bulk import id_filters, insert_rows
from sync.ledger import SOURCE_TABLES, IngestSeen, QuarantineRow, StreamCursor
from sync.prefetch import Prefetched
from sync.rows import (
    InvalidRecord,
    RowContext,
    checked_external_id,
    content_hash,
    record_values,
)

# Quarantine keeps the payload as received, up to this size; the location says where the rest is.
MAX_RAW_CHARS = 1_000_000

_SEEN = IngestSeen.__table__  # type: ignore[attr-defined]
_QUARANTINE = QuarantineRow.__table__  # type: ignore[attr-defined]
_CURSOR = StreamCursor.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class IngestCounts:
    records_in: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    pages: int = 0

    def add(self, other: IngestCounts) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class _PagePlan:
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[Rejected] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    counts: IngestCounts = field(default_factory=IngestCounts)


def load_cursor(connection: Connection, system: str, stream: str) -> Cursor:
    row = connection.execute(
        select(_CURSOR.c.cursor).where(_CURSOR.c.system == system, _CURSOR.c.stream == stream)
    ).scalar_one_or_none()
    return {} if row is None else dict(json.loads(row))


def _save_cursor(
    connection: Connection, system: str, stream: str, cursor: Cursor, now: datetime
) -> None:
    text = json.dumps(dict(cursor), sort_keys=True)
    done = connection.execute(
        update(_CURSOR)
        .where(_CURSOR.c.system == system, _CURSOR.c.stream == stream)
        .values(cursor=text, updated_at=now)
    )
    if done.rowcount == 0:
        connection.execute(
            insert(_CURSOR).values(system=system, stream=stream, cursor=text, updated_at=now)
        )


def _safe_text(text: str) -> str:
    """Text any database accepts: NUL and lone surrogates escaped, size capped."""
    if len(text) > MAX_RAW_CHARS:
        text = text[:MAX_RAW_CHARS] + f"... [{len(text) - MAX_RAW_CHARS:,} more characters]"
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _rejected(reason: str, record: Record, origin: Origin | None) -> Rejected:
    """A refused record, with the payload as received when the stream gave it."""
    if origin is None:
        return Rejected(reason, repr(record), record.external_id)
    return Rejected(reason, origin.raw, record.external_id, origin.location)


@dataclass(frozen=True, slots=True)
class _Candidate:
    record: Record
    values: dict[str, Any]
    origin: Origin | None


class StreamIngest:
    """Applies the pages of one stream of one system to the ledger."""

    def __init__(self, engine: Engine, system: str, stream: Stream, context: RowContext) -> None:
        self.engine = engine
        self.system = system
        self.stream = stream
        self.context = context
        self.table: Table = SOURCE_TABLES[stream.record_kind].__table__  # type: ignore[attr-defined]
        self._pass_in_seen: str | None = None

    def run(
        self,
        run_id: int | None,
        stop: threading.Event | None = None,
        on_page: Callable[[IngestCounts], None] | None = None,
    ) -> IngestCounts:
        """Pull and store pages until the stream ends or ``stop`` is set (checked per page)."""
        total = IngestCounts()
        with self.engine.connect() as connection:
            cursor = load_cursor(connection, self.system, self.stream.name)
            self._pass_in_seen = self._current_seen_pass(connection)
        fetching = Prefetched(self.stream.pages(cursor), f"fetch {self.system}/{self.stream.name}")
        with fetching as pages:
            for page in pages:
                counts = self.apply(page, run_id)
                total.add(counts)
                if _is_power_of_two(total.pages):
                    self._refresh_statistics()
                if on_page is not None:
                    on_page(counts)
                if stop is not None and stop.is_set():
                    break
        return total

    def _refresh_statistics(self) -> None:
        """Let PostgreSQL's planner see how the tables grew during this run.

        Without statistics (a new ledger, a first big pull) the planner takes the tables for
        tiny and filters the per-page id lookups instead of using the key index, which makes
        every page slower than the last. ANALYZE after pages 1, 2, 4, 8, ... keeps it right
        at a logarithmic cost.
        """
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.begin() as connection:
            connection.exec_driver_sql(f"ANALYZE {self.table.name}, {_SEEN.name}")

    def apply(self, page: Page, run_id: int | None) -> IngestCounts:
        """Store one page and its cursor in one transaction."""
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            plan = self._plan(connection, page)
            self._write(connection, plan, page, run_id, now)
            _save_cursor(connection, self.system, self.stream.name, page.cursor, now)
        plan.counts.pages = 1
        return plan.counts

    # -- planning: what to do with each record ------------------------------------------------

    def _plan(self, connection: Connection, page: Page) -> _PagePlan:
        plan = _PagePlan()
        plan.counts.records_in = len(page.records) + len(page.rejected)
        plan.quarantine.extend(page.rejected)
        candidates = self._valid_records(page, plan)
        if self._tracks_pass(page):
            self._track_pass(connection, page, candidates, plan)
        existing = self._existing(connection, list(candidates))
        for external_id, candidate in candidates.items():
            self._plan_one(
                plan, external_id, candidate.record, candidate.values, existing.get(external_id)
            )
        return plan

    def _valid_records(self, page: Page, plan: _PagePlan) -> dict[str, _Candidate]:
        valid: dict[str, _Candidate] = {}
        origins: Sequence[Origin | None] = page.origins or [None] * len(page.records)
        for record, origin in zip(page.records, origins, strict=True):
            try:
                external_id = checked_external_id(record)
                values = {} if record.deleted else record_values(record, self.context)
            except InvalidRecord as invalid:
                plan.quarantine.append(_rejected(str(invalid), record, origin))
                continue
            if external_id in valid:
                plan.quarantine.append(
                    _rejected(f"id {external_id!r} occurs twice in one page", record, origin)
                )
                continue
            valid[external_id] = _Candidate(record, values, origin)
        return valid

    def _tracks_pass(self, page: Page) -> bool:
        """Whether the page belongs to a pass over every live record (see the docstring)."""
        return self.stream.full_refresh or page.full_pass

    def _track_pass(
        self,
        connection: Connection,
        page: Page,
        candidates: dict[str, _Candidate],
        plan: _PagePlan,
    ) -> None:
        """Remember the page's ids as seen in this pass; quarantine repeats of a full refresh.

        Ids of quarantined records count as seen too: a record that turned invalid keeps its
        last good version in the ledger instead of being flagged deleted. An incremental
        stream's full pass repeats ids where its pages overlap; those are simply stored again.
        The page's bare ids (``Page.seen``, an id-only pass) count as seen.
        """
        pass_id = page.pass_id
        if pass_id != self._pass_in_seen:
            connection.execute(
                delete(_SEEN).where(
                    _SEEN.c.system == self.system, _SEEN.c.stream == self.stream.name
                )
            )
            self._pass_in_seen = pass_id
        rejected_ids = {r.external_id for r in plan.quarantine if r.external_id}
        ids = list(dict.fromkeys([*candidates, *rejected_ids, *page.seen]))
        already: set[str] = set()
        for among_ids in id_filters(connection, _SEEN.c.external_id, ids):
            already.update(
                connection.execute(
                    select(_SEEN.c.external_id).where(
                        _SEEN.c.system == self.system,
                        _SEEN.c.stream == self.stream.name,
                        among_ids,
                    )
                ).scalars()
            )
        repeats = already.intersection(candidates) if self.stream.full_refresh else set()
        for external_id in repeats:
            candidate = candidates.pop(external_id)
            plan.quarantine.append(
                _rejected(
                    f"id {external_id!r} occurs twice in the source; the first one was kept",
                    candidate.record,
                    candidate.origin,
                )
            )
        plan.seen = [external_id for external_id in ids if external_id not in already]

    def _existing(
        self, connection: Connection, ids: Sequence[str]
    ) -> dict[str, tuple[int, str, bool]]:
        table = self.table
        found: dict[str, tuple[int, str, bool]] = {}
        for among_ids in id_filters(connection, table.c.external_id, ids):
            rows = connection.execute(
                select(
                    table.c.external_id, table.c.id, table.c.content_hash, table.c.deleted
                ).where(
                    table.c.system == self.system,
                    table.c.stream == self.stream.name,
                    among_ids,
                )
            )
            for external_id, row_id, digest, deleted in rows:
                found[external_id] = (row_id, digest, deleted)
        return found

    def _plan_one(
        self,
        plan: _PagePlan,
        external_id: str,
        record: Record,
        values: dict[str, Any],
        existing: tuple[int, str, bool] | None,
    ) -> None:
        if record.deleted:
            if existing is not None and not existing[2]:
                plan.updates.append({"row_id": existing[0], "deleted": True})
                plan.counts.deleted += 1
            else:
                plan.counts.unchanged += 1
            return
        digest = content_hash(values)
        if existing is None:
            plan.inserts.append(
                {**values, "external_id": external_id, "content_hash": digest, "deleted": False}
            )
            plan.counts.new += 1
        elif existing[1] != digest or existing[2]:
            plan.updates.append(
                {**values, "row_id": existing[0], "content_hash": digest, "deleted": False}
            )
            plan.counts.changed += 1
        else:
            plan.counts.unchanged += 1

    # -- writing ------------------------------------------------------------------------------

    def _write(
        self,
        connection: Connection,
        plan: _PagePlan,
        page: Page,
        run_id: int | None,
        now: datetime,
    ) -> None:
        table = self.table
        if plan.inserts:
            stamp: dict[str, Any] = {"system": self.system, "stream": self.stream.name}
            stamp |= {"first_seen_at": now, "updated_at": now}
            insert_rows(connection, table, plan.inserts, same_for_all=stamp)
        for columns, rows in _group_by_columns(plan.updates).items():
            statement = (
                update(table)
                .where(table.c.id == bindparam("row_id"))
                .values({name: bindparam(name) for name in columns if name != "row_id"})
                .values(updated_at=now)
            )
            connection.execute(statement, rows)
        if plan.seen:
            insert_rows(
                connection,
                _SEEN,
                [{"external_id": external_id} for external_id in plan.seen],
                same_for_all={
                    "system": self.system,
                    "stream": self.stream.name,
                    "pass_id": page.pass_id,
                },
            )
        if plan.quarantine:
            insert_rows(
                connection,
                _QUARANTINE,
                [self._quarantine_row(rejected, run_id, now) for rejected in plan.quarantine],
            )
            plan.counts.quarantined = len(plan.quarantine)
        if self._tracks_pass(page) and page.pass_complete:
            plan.counts.deleted += self._sweep_unseen(connection, now)

    def _quarantine_row(
        self, rejected: Rejected, run_id: int | None, now: datetime
    ) -> dict[str, Any]:
        external_id = rejected.external_id
        return {
            "run_id": run_id,
            "system": self.system,
            "stream": self.stream.name,
            "external_id": None if external_id is None else _safe_text(external_id[:255]),
            "reason": _safe_text(rejected.reason),
            "location": None if rejected.location is None else _safe_text(rejected.location),
            "raw": _safe_text(rejected.raw),
            "created_at": now,
        }

    def _sweep_unseen(self, connection: Connection, now: datetime) -> int:
        """Flag live rows a complete pass did not see as deleted, then forget the pass.

        NOT EXISTS, not NOT IN: PostgreSQL runs ``NOT IN (subquery)`` as a nested loop once the
        subquery outgrows work_mem (quadratic: a million-row pass ran for most of an hour),
        while NOT EXISTS is a hash anti-join on both databases.
        """
        table = self.table
        seen = (
            select(_SEEN.c.external_id)
            .where(
                _SEEN.c.system == table.c.system,
                _SEEN.c.stream == table.c.stream,
                _SEEN.c.external_id == table.c.external_id,
            )
            .exists()
        )
        result = connection.execute(
            update(table)
            .where(
                and_(
                    table.c.system == self.system,
                    table.c.stream == self.stream.name,
                    table.c.deleted.is_(False),
                    ~seen,
                )
            )
            .values(deleted=True, updated_at=now)
        )
        connection.execute(
            delete(_SEEN).where(_SEEN.c.system == self.system, _SEEN.c.stream == self.stream.name)
        )
        self._pass_in_seen = None
        return result.rowcount

    def _current_seen_pass(self, connection: Connection) -> str | None:
        return connection.execute(
            select(_SEEN.c.pass_id)
            .where(_SEEN.c.system == self.system, _SEEN.c.stream == self.stream.name)
            .limit(1)
        ).scalar_one_or_none()


def _is_power_of_two(number: int) -> bool:
    return number > 0 and number & (number - 1) == 0


def _group_by_columns(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """executemany needs one statement per set of columns (tombstones update fewer)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return groups
