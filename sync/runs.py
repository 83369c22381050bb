"""Run history: one row per source pull and per reconcile-metrics-push step.

A run row is written when the work starts (status ``running``) and completed when it ends, so
a crash leaves a visible ``running`` row that the next start marks ``interrupted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from sync.ledger import SOURCE_TABLES, LedgerCustomer, PushState, QuarantineRow, RunRecord

_RUN = RunRecord.__table__  # type: ignore[attr-defined]
_QUARANTINE = QuarantineRow.__table__  # type: ignore[attr-defined]

MAX_ERROR_CHARS = 4_000


class RunStatus:
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    PARTIAL = "partial"
    """The work finished but some updates were refused; the error says which."""
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"


def start_run(engine: Engine, source: str | None) -> int:
    with engine.begin() as connection:
        run_id = connection.execute(
            insert(_RUN)
            .values(source=source, started_at=datetime.now(UTC), status=RunStatus.RUNNING)
            .returning(_RUN.c.id)
        ).scalar_one()
    return int(run_id)


def finish_run(
    engine: Engine, run_id: int, status: str, error: str | None = None, **counts: int
) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": datetime.now(UTC), **counts}
    if error is not None:
        values["error"] = error[:MAX_ERROR_CHARS]
    with engine.begin() as connection:
        connection.execute(update(_RUN).where(_RUN.c.id == run_id).values(values))


def mark_interrupted(engine: Engine) -> int:
    """Runs left ``running`` by a process that died; called under the ledger lock."""
    with engine.begin() as connection:
        return connection.execute(
            update(_RUN)
            .where(_RUN.c.status == RunStatus.RUNNING)
            .values(
                status=RunStatus.INTERRUPTED,
                finished_at=datetime.now(UTC),
                error="the process ended before the run finished (killed or crashed); the "
                "next run resumed from the last committed page",
            )
        ).rowcount


@dataclass(frozen=True, slots=True)
class RunSummary:
    id: int
    source: str | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    records_in: int
    records_new: int
    records_changed: int
    records_unchanged: int
    records_deleted: int
    quarantined: int
    pushed: int
    push_failed: int
    error: str | None


def recent_runs(engine: Engine, limit: int = 20) -> list[RunSummary]:
    with engine.connect() as connection:
        rows = connection.execute(select(_RUN).order_by(_RUN.c.id.desc()).limit(limit)).mappings()
        return [RunSummary(**row) for row in rows]


def last_run(engine: Engine, source: str | None) -> RunSummary | None:
    with engine.connect() as connection:
        row = (
            connection.execute(
                select(_RUN)
                .where(_RUN.c.source.is_(None) if source is None else _RUN.c.source == source)
                .order_by(_RUN.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return None if row is None else RunSummary(**row)


def last_error(engine: Engine, source: str) -> RunSummary | None:
    with engine.connect() as connection:
        row = (
            connection.execute(
                select(_RUN)
                .where(_RUN.c.source == source, _RUN.c.error.is_not(None))
                .order_by(_RUN.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return None if row is None else RunSummary(**row)


def quarantine_counts(engine: Engine) -> dict[tuple[str, str], int]:
    """Quarantined records by (system, stream)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_QUARANTINE.c.system, _QUARANTINE.c.stream, func.count()).group_by(
                _QUARANTINE.c.system, _QUARANTINE.c.stream
            )
        )
        return {(system, stream): count for system, stream, count in rows}


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    ledger_customers: int
    retired_customers: int
    source_rows: dict[str, tuple[int, int]]
    """Per source table: (live rows, rows flagged deleted)."""
    quarantined: int
    pushed_values: int


def ledger_totals(engine: Engine) -> LedgerTotals:
    customer = LedgerCustomer.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        live, retired = connection.execute(
            select(
                func.count().filter(customer.c.retired_at.is_(None)),
                func.count().filter(customer.c.retired_at.is_not(None)),
            )
        ).one()
        source_rows: dict[str, tuple[int, int]] = {}
        for kind, model in SOURCE_TABLES.items():
            table = model.__table__  # type: ignore[attr-defined]
            live_rows, deleted_rows = connection.execute(
                select(
                    func.count().filter(table.c.deleted.is_(False)),
                    func.count().filter(table.c.deleted.is_(True)),
                )
            ).one()
            source_rows[kind.value] = (live_rows, deleted_rows)
        quarantined = connection.execute(select(func.count()).select_from(_QUARANTINE)).scalar_one()
        pushed = connection.execute(
            select(func.count()).select_from(PushState.__table__)  # type: ignore[attr-defined]
        ).scalar_one()
    return LedgerTotals(live, retired, source_rows, quarantined, pushed)
