"""One cycle: pull every source, then reconcile, compute metrics and push.

Failures are contained: a source that fails (remote down, bad credentials, a missing file, a
database hiccup) is recorded in its run row with the error and the cycle goes on with the
other sources; the reconcile-metrics-push step runs on whatever the ledger holds. Nothing
here ever lets an exception escape into the scheduler.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from config.models import AppConfig, SourceConfig
from connectors.base import Connector, ConnectorContext, Listening
from connectors.errors import ConnectorError
from connectors.registry import build_connector
from sync.figures import FiguresResult, compute_figures
from sync.ingest import IngestCounts, StreamIngest
from sync.push import PushConfigError, PushResult, mapping_problems, push_system
from sync.reconcile import ReconcileResult, reconcile
from sync.rows import RowContext
from sync.runs import RunStatus, finish_run, start_run
from sync.tokens import TokenStore

log = logging.getLogger(__name__)


class Progress(Protocol):
    """Where a cycle reports what it is doing (the command line draws bars from this)."""

    def page_done(self, source: str, stream: str, counts: IngestCounts) -> None: ...

    def step(self, message: str) -> None: ...


class QuietProgress:
    def page_done(self, source: str, stream: str, counts: IngestCounts) -> None:
        pass

    def step(self, message: str) -> None:
        log.debug("%s", message)


@dataclass(slots=True)
class SourceOutcome:
    source: str
    run_id: int | None
    status: str
    counts: IngestCounts
    error: str | None = None


@dataclass(slots=True)
class StepOutcome:
    run_id: int | None
    status: str
    reconciled: ReconcileResult | None = None
    figures: FiguresResult | None = None
    pushes: list[PushResult] = field(default_factory=list)
    error: str | None = None


@dataclass(slots=True)
class CycleOutcome:
    sources: list[SourceOutcome]
    step: StepOutcome | None

    @property
    def failed(self) -> bool:
        step_failed = self.step is not None and self.step.status in {
            RunStatus.FAILED,
            RunStatus.PARTIAL,
        }
        return step_failed or any(s.status == RunStatus.FAILED for s in self.sources)


def _describe_error(error: BaseException) -> str:
    if isinstance(error, ConnectorError | PushConfigError):
        return str(error)
    if isinstance(error, SQLAlchemyError):
        # Driver messages can be long and carry SQL; the first line says what happened.
        detail = str(getattr(error, "orig", None) or error).strip()
        first_line = detail.splitlines()[0] if detail else type(error).__name__
        return f"ledger database error: {first_line}"
    return f"unexpected {type(error).__name__}: {error}"


class SyncService:
    """Runs pulls and the post-pull step against one ledger for one configuration."""

    def __init__(
        self,
        app: AppConfig,
        engine: Engine,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        self.stop = stop or threading.Event()
        self.progress: Progress = progress or QuietProgress()
        self.context = RowContext(app.home_currency, app.phone_region)
        self._connectors: dict[str, Connector] = {}
        self._building = threading.Lock()
        """Connectors are built by the cycle and by the webhook listener's thread."""

    def connector(self, source: SourceConfig) -> Connector:
        with self._building:
            if source.name not in self._connectors:
                context = ConnectorContext(tokens=TokenStore(self.engine))
                self._connectors[source.name] = build_connector(source, self.app, context)
            return self._connectors[source.name]

    def heard(self, source_name: str, topic: str) -> None:
        """Pass a verified webhook's topic to its source's connector, if it acts on topics."""
        try:
            connector = self.connector(self.app.source(source_name))
        except ConnectorError as error:
            log.warning("webhook for %s not passed on: %s", source_name, error)
            return
        if isinstance(connector, Listening):
            connector.heard(topic)

    def pull(self, source_name: str) -> SourceOutcome:
        """Ingest every stream of one source; never raises for a source's failure."""
        counts = IngestCounts()
        try:
            run_id = start_run(self.engine, source_name)
        except SQLAlchemyError as error:
            log.error("cannot record a run for %s: %s", source_name, _describe_error(error))
            return SourceOutcome(
                source_name, None, RunStatus.FAILED, counts, _describe_error(error)
            )
        status, error_text = RunStatus.OK, None
        try:
            connector = self.connector(self.app.source(source_name))
            for stream in connector.streams():
                if self.stop.is_set():
                    break
                self.progress.step(f"{source_name}: reading {stream.name}")
                ingest = StreamIngest(self.engine, connector.system, stream, self.context)

                def on_page(page: IngestCounts, stream_name: str = stream.name) -> None:
                    self.progress.page_done(source_name, stream_name, page)

                counts.add(ingest.run(run_id, self.stop, on_page))
            if self.stop.is_set():
                status = RunStatus.STOPPED
        except Exception as error:
            status, error_text = RunStatus.FAILED, _describe_error(error)
            if isinstance(error, ConnectorError):
                log.error("source %s failed: %s", source_name, error_text)
            else:
                log.exception("source %s failed: %s", source_name, error_text)
        self._finish(run_id, status, error_text, counts)
        return SourceOutcome(source_name, run_id, status, counts, error_text)

    def _finish(self, run_id: int, status: str, error: str | None, counts: IngestCounts) -> None:
        try:
            finish_run(
                self.engine,
                run_id,
                status,
                error,
                records_in=counts.records_in,
                records_new=counts.new,
                records_changed=counts.changed,
                records_unchanged=counts.unchanged,
                records_deleted=counts.deleted,
                quarantined=counts.quarantined,
            )
        except SQLAlchemyError as db_error:
            log.error("cannot record the end of run %s: %s", run_id, _describe_error(db_error))

    def post_pull(self, as_of: datetime | None = None, *, push: bool = True) -> StepOutcome:
        """Reconcile, compute metrics, push; recorded as a run without a source."""
        as_of = as_of or datetime.now(UTC)
        try:
            run_id = start_run(self.engine, None)
        except SQLAlchemyError as error:
            return StepOutcome(None, RunStatus.FAILED, error=_describe_error(error))
        outcome = StepOutcome(run_id, RunStatus.OK)
        try:
            self.progress.step("matching customers across sources")
            outcome.reconciled = reconcile(self.engine, datetime.now(UTC), self.app.reconcile)
            self.progress.step("computing metrics")
            outcome.figures = compute_figures(self.engine, as_of, self.app.metrics)
            if push:
                outcome.pushes = self.push(dry_run=False)
        except Exception as error:
            outcome.status, outcome.error = RunStatus.FAILED, _describe_error(error)
            log.exception("reconcile/metrics/push failed: %s", outcome.error)
        if any(result.failed for result in outcome.pushes) and outcome.error is None:
            outcome.status = RunStatus.PARTIAL
            outcome.error = "; ".join(
                f"push to {r.system}: {r.failed} updates failed, first: {r.errors[0]}"
                for r in outcome.pushes
                if r.errors
            )
        try:
            finish_run(
                self.engine,
                run_id,
                outcome.status,
                outcome.error,
                pushed=sum(r.pushed for r in outcome.pushes),
                push_failed=sum(r.failed for r in outcome.pushes),
            )
        except SQLAlchemyError as error:
            log.error("cannot record the end of run %s: %s", run_id, _describe_error(error))
        return outcome

    def push(self, *, dry_run: bool) -> list[PushResult]:
        """Push (or plan) the changed values of every source that has a writer and a mapping."""
        problems = mapping_problems(self.app)
        if problems:
            raise PushConfigError("; ".join(problems))
        results: list[PushResult] = []
        now = datetime.now(UTC)
        for source in self.app.sources:
            if not source.push.enabled or not source.push.fields:
                continue
            writer = self.connector(source).writer()
            if writer is None:
                continue
            self.progress.step(f"{source.name}: {'planning' if dry_run else 'pushing'} updates")
            results.append(
                push_system(
                    self.engine, source.name, writer, source.push.fields, now, dry_run=dry_run
                )
            )
        return results

    def cycle(
        self, sources: Sequence[str] | None = None, as_of: datetime | None = None
    ) -> CycleOutcome:
        """Pull the given sources (all by default), then reconcile, compute and push."""
        names = list(sources) if sources is not None else [s.name for s in self.app.sources]
        pulled: list[SourceOutcome] = []
        for name in names:
            if self.stop.is_set():
                break
            pulled.append(self.pull(name))
        step = None if self.stop.is_set() else self.post_pull(as_of)
        return CycleOutcome(pulled, step)
