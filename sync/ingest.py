"""Ingest: store what a stream yields, page by page, so that a crash loses nothing.

For every page, in ONE transaction: new records are inserted, changed ones (by content hash)
updated, unchanged ones left alone, tombstones flag their row deleted, invalid records go to
quarantine with the reason and the raw payload, and the stream's cursor moves past the page.
A crash anywhere therefore re-pulls at most the page in flight, and memory is bounded by the
page size. For full-refresh streams, and for the pages of an incremental stream marked
``full_pass``, the ids of the running pass are kept in ``ingest_seen``; when the pass completes
every live row it did not see is flagged deleted (never erased). A full-refresh stream's id seen
twice in a pass is quarantined; an incremental stream's is stored again (pages may overlap).
A pass that begins with no row of its stream in the table (a first import) keeps only a marker
and the ids it does not store there: every row the table holds was then stored by this pass,
so the table itself says what was seen, and nothing is left to sweep.

A stream whose pages mix several kinds of record (``connectors.base.MultiKindStream``) has one
:class:`_KindIngest` per kind, each with its own ledger table and stream name; the page's parts
and the stream's cursor still commit in one transaction.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Table, and_, bindparam, delete, insert, select, update

from connectors.base import Cursor, Origin, Page, Stream, ledger_streams
from connectors.records import Record, RecordKind, Rejected
from sync.bulk import among_ids, ids_parameter, insert_ids, insert_rows
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
_INTO_EMPTY = ""
"""The ``ingest_seen`` id marking a pass into an empty stream; no record has an empty id."""
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


class _Candidate(NamedTuple):
    """A record that passed the ledger's checks: its row values, their hash, its position.

    The position finds the record's origin only when it is quarantined after all: building
    an origin per record (file, line, raw text) costs a stream more than the check itself.
    """

    record: Record
    values: dict[str, Any]
    digest: str
    position: int


@dataclass(slots=True)
class _Checked:
    """A page after the checks that need no database, which the fetch thread does ahead."""

    page: Page
    candidates: dict[str, _Candidate]
    refused: list[Rejected]


@dataclass(slots=True)
class _CheckedPage:
    """A page's checked parts, one per record kind, and the cursor that follows the page."""

    cursor: Cursor
    parts: dict[RecordKind, _Checked]


def _origin(page: Page, position: int) -> Origin | None:
    return page.origins[position] if page.origins else None


class StreamIngest:
    """Applies the pages of one stream of one system to the ledger."""

    def __init__(self, engine: Engine, system: str, stream: Stream, context: RowContext) -> None:
        self.engine = engine
        self.system = system
        self.stream = stream
        self.context = context
        self.kinds = {
            kind: _KindIngest(engine, system, name, kind, stream.full_refresh, context)
            for kind, name in ledger_streams(stream).items()
        }
        if stream.record_kind not in self.kinds:
            raise ValueError(f"stream {stream.name!r} stores no records of its own kind")

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
            for kind in self.kinds.values():
                kind.resume_pass(connection)
        checked_pages = self._checked(self.stream.pages(cursor))
        fetching = Prefetched(checked_pages, f"fetch {self.system}/{self.stream.name}")
        with fewer_collections(), fetching as pages:
            for checked in pages:
                counts = self._apply(checked, run_id)
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
        tables = ", ".join(kind.table.name for kind in self.kinds.values())
        with self.engine.begin() as connection:
            connection.exec_driver_sql(f"ANALYZE {tables}, {_SEEN.name}")

    def apply(self, page: Page, run_id: int | None) -> IngestCounts:
        """Store one page (every kind on it) and its cursor in one transaction."""
        return self._apply(self._check(page), run_id)

    def _apply(self, checked: _CheckedPage, run_id: int | None) -> IngestCounts:
        now = datetime.now(UTC)
        counts = IngestCounts()
        with self.engine.begin() as connection:
            for kind, part in checked.parts.items():
                counts.add(self.kinds[kind].store(connection, part, run_id, now))
            _save_cursor(connection, self.system, self.stream.name, checked.cursor, now)
        counts.pages = 1
        return counts

    def _checked(self, pages: Iterator[Page]) -> Iterator[_CheckedPage]:
        """The stream's pages, checked; run in the fetch thread, ahead of the writes.

        Row values and content hashes are pure Python work; done here, they overlap with the
        time the writing thread waits on the database instead of adding to it.
        """
        try:
            for page in pages:
                yield self._check(page)
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def _check(self, page: Page) -> _CheckedPage:
        parts = self._parts(page)
        return _CheckedPage(
            page.cursor, {kind: self.kinds[kind].check(part) for kind, part in parts.items()}
        )

    def _parts(self, page: Page) -> dict[RecordKind, Page]:
        """The page split by record kind; every declared kind gets a part, if only empty.

        An empty part still carries the page's pass flags, so a complete pass ends for every
        kind. Rejected items, and records of a kind the stream did not declare, go to the
        stream's own kind.
        """
        own = self.stream.record_kind
        if len(self.kinds) == 1 and all(record.kind is own for record in page.records):
            return {own: page}
        records: dict[RecordKind, list[Record]] = {kind: [] for kind in self.kinds}
        origins: dict[RecordKind, list[Origin]] = {kind: [] for kind in self.kinds}
        rejected = list(page.rejected)
        for index, record in enumerate(page.records):
            origin = page.origins[index] if page.origins else None
            if record.kind not in records:
                reason = f"a {record.kind} record from a stream of {', '.join(self.kinds)}"
                rejected.append(_rejected(reason, record, origin))
                continue
            records[record.kind].append(record)
            if origin is not None:
                origins[record.kind].append(origin)
        return {
            kind: replace(
                page,
                records=records[kind],
                origins=origins[kind],
                rejected=rejected if kind is own else (),
            )
            for kind in self.kinds
        }


class _KindIngest:
    """Applies one kind of a stream's records to its ledger table under its stream name."""

    def __init__(
        self,
        engine: Engine,
        system: str,
        name: str,
        kind: RecordKind,
        full_refresh: bool,
        context: RowContext,
    ) -> None:
        self.engine = engine
        self.system = system
        self.name = name
        self.full_refresh = full_refresh
        self.context = context
        self.table: Table = SOURCE_TABLES[kind].__table__  # type: ignore[attr-defined]
        self.pass_in_seen: str | None = None
        self.pass_into_empty = False
        """The running pass began with no row of this stream in the table (see the module)."""
        self.seen_beyond_marker = False
        """A pass into an empty stream has put ids next to its marker: look them up."""
        table, dialect = self.table, engine.dialect
        # built once: the per-page lookups differ only in their ids parameter
        self._find_existing = select(
            table.c.external_id, table.c.id, table.c.content_hash, table.c.deleted
        ).where(
            table.c.system == system,
            table.c.stream == name,
            among_ids(table.c.external_id, dialect),
        )
        self._find_seen = select(_SEEN.c.external_id).where(
            _SEEN.c.system == system,
            _SEEN.c.stream == name,
            among_ids(_SEEN.c.external_id, dialect),
        )

    def store(
        self, connection: Connection, checked: _Checked, run_id: int | None, now: datetime
    ) -> IngestCounts:
        """Plan and write one checked page of this kind inside the caller's transaction."""
        plan = self._plan(connection, checked)
        self._write(connection, plan, checked.page, run_id, now)
        return plan.counts

    # -- checking: what needs no database -----------------------------------------------------

    def check(self, page: Page) -> _Checked:
        valid: dict[str, _Candidate] = {}
        refused: list[Rejected] = []
        context = self.context
        for position, record in enumerate(page.records):
            try:
                external_id = checked_external_id(record)
                values = {} if record.deleted else record_values(record, context)
            except InvalidRecord as invalid:
                refused.append(_rejected(str(invalid), record, _origin(page, position)))
                continue
            if external_id in valid:
                reason = f"id {external_id!r} occurs twice in one page"
                refused.append(_rejected(reason, record, _origin(page, position)))
                continue
            digest = "" if record.deleted else content_hash(values)
            valid[external_id] = _Candidate(record, values, digest, position)
        return _Checked(page, valid, refused)

    # -- planning: what to do with each record ------------------------------------------------

    def _plan(self, connection: Connection, checked: _Checked) -> _PagePlan:
        page, candidates = checked.page, checked.candidates
        plan = _PagePlan()
        plan.counts.records_in = len(page.records) + len(page.rejected)
        plan.quarantine.extend(page.rejected)
        plan.quarantine.extend(checked.refused)
        existing = None
        if self._tracks_pass(page):
            existing = self._track_pass(connection, page, candidates, plan)
        if existing is None:
            existing = self._existing(connection, list(candidates))
        for external_id, candidate in candidates.items():
            self._plan_one(plan, external_id, candidate, existing.get(external_id))
        return plan

    def _tracks_pass(self, page: Page) -> bool:
        """Whether the page belongs to a pass over every live record (see the docstring)."""
        return self.full_refresh or page.full_pass

    def _track_pass(
        self,
        connection: Connection,
        page: Page,
        candidates: dict[str, _Candidate],
        plan: _PagePlan,
    ) -> dict[str, tuple[int, str, bool]] | None:
        """Remember the page's ids as seen in this pass; quarantine repeats of a full refresh.

        Ids of quarantined records count as seen too: a record that turned invalid keeps its
        last good version in the ledger instead of being flagged deleted. An incremental
        stream's full pass repeats ids where its pages overlap; those are simply stored again.
        The page's bare ids (``Page.seen``, an id-only pass) count as seen. In a pass into an
        empty stream this looks up the remaining candidates' rows and returns them.
        """
        pass_id = page.pass_id
        if pass_id != self.pass_in_seen:
            connection.execute(
                delete(_SEEN).where(_SEEN.c.system == self.system, _SEEN.c.stream == self.name)
            )
            self.pass_in_seen = pass_id
            self._start_pass(connection, pass_id)
        rejected_ids = {r.external_id for r in plan.quarantine if r.external_id}
        if self.pass_into_empty:
            return self._track_pass_into_empty(connection, page, candidates, plan, rejected_ids)
        ids = list(dict.fromkeys([*candidates, *rejected_ids, *page.seen]))
        already: set[str] = set()
        if ids:
            parameter = ids_parameter(connection.dialect, ids)
            already.update(connection.execute(self._find_seen, parameter).scalars())
        repeats = already.intersection(candidates) if self.full_refresh else set()
        for external_id in repeats:
            candidate = candidates.pop(external_id)
            plan.quarantine.append(
                _rejected(
                    f"id {external_id!r} occurs twice in the source; the first one was kept",
                    candidate.record,
                    _origin(page, candidate.position),
                )
            )
        plan.seen = [external_id for external_id in ids if external_id not in already]
        return None

    def _start_pass(self, connection: Connection, pass_id: str) -> None:
        """Mark a pass that begins with no row of this stream in the table."""
        table = self.table
        any_row = select(table.c.id).where(
            table.c.system == self.system, table.c.stream == self.name
        )
        self.pass_into_empty = connection.execute(any_row.limit(1)).first() is None
        self.seen_beyond_marker = False
        if self.pass_into_empty:
            connection.execute(
                insert(_SEEN).values(
                    system=self.system, stream=self.name, external_id=_INTO_EMPTY, pass_id=pass_id
                )
            )

    def _track_pass_into_empty(
        self,
        connection: Connection,
        page: Page,
        candidates: dict[str, _Candidate],
        plan: _PagePlan,
        rejected_ids: set[str],
    ) -> dict[str, tuple[int, str, bool]]:
        """:meth:`_track_pass` where every row of the stream was stored by this pass.

        Seen are the ids with a row and the ids in ``ingest_seen``, which holds only those not
        stored as a row (tombstones, quarantined records, ``Page.seen``): the seen ids of a
        first import cost no row and no lookup of their own.
        """
        existing = self._existing(connection, list(candidates))
        already: set[str] = set()
        if self.seen_beyond_marker:
            ids = list(dict.fromkeys([*candidates, *rejected_ids, *page.seen]))
            parameter = ids_parameter(connection.dialect, ids)
            already.update(connection.execute(self._find_seen, parameter).scalars())
        if self.full_refresh:
            repeats = already.union(existing).intersection(candidates)
            for external_id in repeats:
                candidate = candidates.pop(external_id)
                plan.quarantine.append(
                    _rejected(
                        f"id {external_id!r} occurs twice in the source; the first one was kept",
                        candidate.record,
                        _origin(page, candidate.position),
                    )
                )
        not_stored = [key for key, candidate in candidates.items() if candidate.record.deleted]
        unstored = dict.fromkeys([*not_stored, *rejected_ids, *page.seen])
        plan.seen = [external_id for external_id in unstored if external_id not in already]
        if plan.seen:
            self.seen_beyond_marker = True
        return {key: row for key, row in existing.items() if key in candidates}

    def _existing(
        self, connection: Connection, ids: Sequence[str]
    ) -> dict[str, tuple[int, str, bool]]:
        if not ids:
            return {}
        rows = connection.execute(self._find_existing, ids_parameter(connection.dialect, ids))
        return {
            external_id: (row_id, digest, deleted) for external_id, row_id, digest, deleted in rows
        }

    def _plan_one(
        self,
        plan: _PagePlan,
        external_id: str,
        candidate: _Candidate,
        existing: tuple[int, str, bool] | None,
    ) -> None:
        if candidate.record.deleted:
            if existing is not None and not existing[2]:
                plan.updates.append({"row_id": existing[0], "deleted": True})
                plan.counts.deleted += 1
            else:
                plan.counts.unchanged += 1
            return
        values, digest = candidate.values, candidate.digest
        # the values are this record's own fresh dict: completed in place, not copied
        if existing is None:
            values["external_id"] = external_id
            values["content_hash"] = digest
            plan.inserts.append(values)
            plan.counts.new += 1
        elif existing[1] != digest or existing[2]:
            values["row_id"] = existing[0]
            values["content_hash"] = digest
            values["deleted"] = False
            plan.updates.append(values)
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
            stamp: dict[str, Any] = {"system": self.system, "stream": self.name}
            stamp |= {"deleted": False, "first_seen_at": now, "updated_at": now}
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
            insert_ids(
                connection,
                _SEEN,
                "external_id",
                plan.seen,
                same_for_all={
                    "system": self.system,
                    "stream": self.name,
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
            "stream": self.name,
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
        if self.pass_into_empty:
            connection.execute(
                delete(_SEEN).where(_SEEN.c.system == self.system, _SEEN.c.stream == self.name)
            )
            self.pass_in_seen, self.pass_into_empty = None, False
            return 0
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
                    table.c.stream == self.name,
                    table.c.deleted.is_(False),
                    ~seen,
                )
            )
            .values(deleted=True, updated_at=now)
        )
        connection.execute(
            delete(_SEEN).where(_SEEN.c.system == self.system, _SEEN.c.stream == self.name)
        )
        self.pass_in_seen = None
        return result.rowcount

    def resume_pass(self, connection: Connection) -> None:
        """Take up the pass whose ids ``ingest_seen`` holds, if any (after a crash or a stop)."""
        rows = connection.execute(
            select(_SEEN.c.pass_id, _SEEN.c.external_id)
            .where(
                _SEEN.c.system == self.system,
                _SEEN.c.stream == self.name,
                _SEEN.c.external_id == _INTO_EMPTY,
            )
            .limit(1)
        ).all()
        if rows:
            self.pass_in_seen, self.pass_into_empty = rows[0][0], True
            self.seen_beyond_marker = True  # unknown: look the ids up
            return
        self.pass_in_seen = connection.execute(
            select(_SEEN.c.pass_id)
            .where(_SEEN.c.system == self.system, _SEEN.c.stream == self.name)
            .limit(1)
        ).scalar_one_or_none()
        self.pass_into_empty = False


# Allocations between two young-generation collections while ingest runs (Python: 700).
INGEST_GC_THRESHOLD = 10_000
_collections_lock = threading.Lock()
_ingests_running = 0
_threshold_before: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Let the garbage collector run less often while ingest runs.

    Ingest allocates several objects per record, almost all freed by reference counting;
    at Python's default threshold the collector still runs every few dozen records and,
    every few thousand, walks every object the process holds (SQLAlchemy's and pydantic's
    models, the loaded modules): a fifth of a CSV ingest's time. A higher first threshold
    keeps the same collections but makes them rarer; cyclic garbage waits for at most
    ``INGEST_GC_THRESHOLD`` allocations. Concurrent ingests share it; the last one to finish
    puts the old thresholds back.
    """
    global _ingests_running, _threshold_before
    with _collections_lock:
        if _ingests_running == 0:
            _threshold_before = gc.get_threshold()
            gc.set_threshold(INGEST_GC_THRESHOLD, *_threshold_before[1:])
        _ingests_running += 1
    try:
        yield
    finally:
        with _collections_lock:
            _ingests_running -= 1
            if _ingests_running == 0:
                gc.set_threshold(*_threshold_before)


def _is_power_of_two(number: int) -> bool:
    return number > 0 and number & (number - 1) == 0


def _group_by_columns(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """executemany needs one statement per set of columns (tombstones update fewer)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return groups
