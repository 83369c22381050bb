"""clm-sync's command line and scheduler wiring; no business logic lives here.

``clm-sync run`` is the service: one APScheduler job per source, each pulling its source and
then running reconcile -> metrics -> push. Everything else is a one-shot command an admin
runs by hand. ``python daemon.py ...`` is the same as the installed ``clm-sync`` command.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn, TypeVar

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from config import (
    AppConfig,
    ConfigError,
    config_json_schema,
    find_config_path,
    load_config,
    parse_duration,
)
from config.models import LoggingConfig, SourceConfig
from connectors.base import Authorizing, Reporting, SettingUp
from connectors.errors import ConnectorError
from sync.baselines import BaselineError, Report, compare_with_baseline, create_baseline, report
from sync.cycle import CycleOutcome, SyncService
from sync.db import (
    LedgerError,
    create_ledger_engine,
    ensure_current_schema,
    migrate,
)
from sync.export import export_customers
from sync.figures import compute_figures
from sync.html_report import render_html
from sync.identity.admin import (
    AdminError,
    explain_pair,
    merge,
    merge_log,
    review_decision,
    review_queue,
    undo,
    unmerge,
)
from sync.ingest import IngestCounts
from sync.lock import LedgerBusyError, ledger_lock
from sync.push import mapping_problems
from sync.reconcile import reconcile
from sync.runs import (
    last_error,
    last_run,
    ledger_totals,
    mark_interrupted,
    quarantine_counts,
)
from sync.tokens import TokenKeyError, generate_key

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
STOP_TIMEOUT_SECONDS = 10

T = TypeVar("T")
log = logging.getLogger("clm_sync")
console = Console()
errors = Console(stderr=True)

app = typer.Typer(
    name="clm-sync",
    help="Customer-lifecycle sync: pull QuickBooks, Outlook and the web shop into one ledger, "
    "compute customer metrics and write them back as custom fields.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
export_app = typer.Typer(help="Write ledger contents to files.", no_args_is_help=True)
app.add_typer(export_app, name="export")
baseline_app = typer.Typer(
    help="Freeze every figure under a name, and compare later figures with it.",
    no_args_is_help=True,
)
app.add_typer(baseline_app, name="baseline")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="The YAML file [default: $CLM_SYNC_CONFIG or ./clm-sync.yaml].",
        show_default=False,
    ),
]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load(config_path: Path | None) -> AppConfig:
    """The configuration, or exit 2 listing every problem with its place and fix."""
    try:
        settings = load_config(find_config_path(config_path))
    except ConfigError as error:
        for problem in error.problems:
            errors.print(str(problem), highlight=False, soft_wrap=True, markup=False)
        fail(
            f"the configuration has {len(error.problems)} problem(s); fix them and run "
            "`clm-sync validate-config`",
            EXIT_CONFIG,
        )
    problems = mapping_problems(settings)
    if problems:
        for mapping_problem in problems:
            errors.print(mapping_problem, highlight=False, soft_wrap=True, markup=False)
        fail("the push mapping names unknown metrics", EXIT_CONFIG)
    return settings


def setup_logging(settings: LoggingConfig) -> None:
    handler: logging.Handler = (
        logging.FileHandler(settings.file, encoding="utf-8")
        if settings.file
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # APScheduler logs every job start and end at INFO; keep the journal readable.
    for chatty in ("apscheduler", "alembic"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


def open_ledger(settings: AppConfig) -> Engine:
    """The ledger at its current schema, or exit with what to do."""
    try:
        engine = create_ledger_engine(settings.ledger)
        ensure_current_schema(engine)
    except LedgerError as error:
        fail(str(error))
    except (SQLAlchemyError, OSError) as error:
        fail(f"cannot open the ledger: {_first_line(error)}; check `ledger:` in the config")
    return engine


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    return str(orig or error).strip().splitlines()[0] if str(orig or error).strip() else repr(error)


@contextlib.contextmanager
def held_ledger(engine: Engine) -> Iterator[None]:
    try:
        with ledger_lock(engine):
            mark_interrupted(engine)
            yield
    except LedgerBusyError as error:
        fail(str(error))


class ConsoleProgress:
    """Draws one line per stream (records read so far) on standard error."""

    def __init__(self, progress: Progress) -> None:
        self.bars = progress
        self.tasks: dict[tuple[str, str], TaskID] = {}
        self.records: dict[tuple[str, str], int] = {}
        self.status = progress.add_task("starting", total=None, records=0)

    def page_done(self, source: str, stream: str, counts: IngestCounts) -> None:
        key = (source, stream)
        if key not in self.tasks:
            self.tasks[key] = self.bars.add_task(f"{source}/{stream}", total=None, records=0)
        self.records[key] = self.records.get(key, 0) + counts.records_in
        self.bars.update(self.tasks[key], records=self.records[key])

    def step(self, message: str) -> None:
        self.bars.update(self.status, description=message)


@contextlib.contextmanager
def console_progress() -> Iterator[ConsoleProgress]:
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[records]:>10,} records"),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
    )
    with bars:
        yield ConsoleProgress(bars)


def print_outcome(outcome: CycleOutcome) -> None:
    table = Table(title="Pulled")
    table.add_column("source")
    table.add_column("status")
    for column in ("read", "new", "changed", "same", "deleted", "quarantined"):
        table.add_column(column, justify="right")
    for pulled in outcome.sources:
        c = pulled.counts
        table.add_row(
            pulled.source,
            pulled.status,
            *(f"{n:,}" for n in (c.records_in, c.new, c.changed, c.unchanged, c.deleted)),
            f"{c.quarantined:,}",
        )
    console.print(table)
    for pulled in outcome.sources:
        if pulled.error:
            errors.print(f"{pulled.source} failed: {pulled.error}", highlight=False, markup=False)
    step = outcome.step
    if step is None:
        console.print("Stopped before reconcile, metrics and push.")
        return
    if step.reconciled is not None:
        r = step.reconciled
        console.print(
            f"Customers: {r.source_customers:,} source records -> {r.ledger_customers:,} ledger "
            f"customers ({r.new_customers:,} new, {r.links_changed:,} records linked anew, "
            f"{r.retired:,} retired); {r.compared_records:,} new or changed records compared "
            f"in {r.compared_pairs:,} pairs"
        )
        if r.transactions_matched:
            console.print(f"Sales booked in two systems, counted once: {r.transactions_matched:,}")
    if step.figures is not None:
        console.print(
            f"Metrics: {step.figures.changed:,} of {step.figures.customers:,} customers changed"
        )
        for message in step.figures.messages:
            console.print(f"Metrics: {message}", highlight=False, markup=False)
    for pushed in step.pushes:
        console.print(
            f"Push to {pushed.system}: {pushed.pushed:,} values written, {pushed.failed:,} failed"
            + (f", {pushed.guests_skipped:,} guests skipped" if pushed.guests_skipped else "")
        )
    if step.error:
        errors.print(f"[red]{step.status}:[/] {step.error}", highlight=False, markup=True)


def parse_as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"--as-of {value!r} is not a date like 2025-12-31 or 2025-12-31T18:00:00+01:00",
            EXIT_CONFIG,
        )
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command()
def once(
    config: ConfigOption = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", "-s", help="Pull only this source (repeatable).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Compute metrics as of this date or time (UTC if no zone) [default: now]."
        ),
    ] = None,
) -> None:
    """Run one full cycle (pull every source, reconcile, metrics, push) and exit.

    Exits 1 if a source or the push failed; the run history (`status`) says why.
    """
    settings = load(config)
    setup_logging(settings.logging)
    moment = parse_as_of(as_of)
    for name in source or []:
        try:
            settings.source(name)
        except KeyError as error:
            fail(str(error.args[0]), EXIT_CONFIG)
    engine = open_ledger(settings)
    stop = threading.Event()
    with held_ledger(engine), stop_on_signals(stop), console_progress() as progress:
        outcome = SyncService(settings, engine, stop, progress).cycle(source, moment)
    print_outcome(outcome)
    if outcome.failed:
        raise typer.Exit(EXIT_FAILED)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop``: the current page is finished and committed, then exit."""

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.warning(
                "%s received: finishing the current page, then stopping",
                signal.Signals(signum).name,
            )
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _trigger_arguments(source: SourceConfig) -> dict[str, object]:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    schedule = source.schedule
    if schedule.cron:
        return {"trigger": CronTrigger.from_crontab(schedule.cron, timezone=schedule.timezone)}
    interval = schedule.interval or timedelta(hours=1)
    return {
        "trigger": IntervalTrigger(seconds=int(interval.total_seconds()), timezone=UTC),
        "next_run_time": datetime.now(UTC),
    }


@app.command()
def run(
    config: ConfigOption = None,
    webhook_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Listen for shop webhooks on this port (daemon.webhooks)."
        ),
    ] = None,
) -> None:
    """Run as a service: pull each source on its schedule, then reconcile, compute and push.

    SIGTERM or SIGINT finish the current page, commit it and exit 0. A verified shop webhook
    starts its source's cycle early.
    """
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    settings = load(config)
    setup_logging(settings.logging)
    engine = open_ledger(settings)
    stop = threading.Event()
    with held_ledger(engine), stop_on_signals(stop):
        service = SyncService(settings, engine, stop)
        cycle_lock = threading.Lock()

        def pull_and_process(source_name: str) -> None:
            # One cycle at a time across all sources: reconcile and push see a whole ledger.
            with cycle_lock:
                if stop.is_set():
                    return
                outcome = service.cycle([source_name])
                for pulled in outcome.sources:
                    log.info(
                        "pulled %s: %s, %d records in, %d new, %d changed, %d quarantined",
                        pulled.source,
                        pulled.status,
                        pulled.counts.records_in,
                        pulled.counts.new,
                        pulled.counts.changed,
                        pulled.counts.quarantined,
                    )

        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={
                "max_instances": 1,
                "coalesce": True,
                "misfire_grace_time": int(
                    parse_duration(settings.daemon.misfire_grace).total_seconds()
                ),
            },
            timezone=UTC,
        )
        for source in settings.sources:
            scheduler.add_job(
                pull_and_process,
                args=[source.name],
                id=source.name,
                name=f"pull {source.name}",
                **_trigger_arguments(source),
            )
        scheduler.start()
        log.info(
            "clm-sync running with %d source(s); SIGTERM or Ctrl-C stops it", len(settings.sources)
        )
        listening = settings.daemon.webhooks
        port = webhook_port or listening.port
        with contextlib.ExitStack() as listener:
            if port:
                from sync.webhooks import WebhookListener

                def run_now(source_name: str) -> None:
                    # A one-off job of its own: moving the scheduled job would be skipped
                    # while that job runs (max_instances); this one waits for the worker.
                    scheduler.add_job(
                        pull_and_process,
                        trigger="date",
                        args=[source_name],
                        id=f"{source_name}:webhook",
                        name=f"pull {source_name} (webhook)",
                        replace_existing=True,
                    )

                listener.enter_context(
                    WebhookListener(settings, listening.host, port, run_now, service.heard)
                )
            while not stop.wait(1.0):
                pass
        log.info("stopping: waiting for the current page to be committed")
        scheduler.shutdown(wait=True)
    log.info("clm-sync stopped")


@app.command()
def status(config: ConfigOption = None) -> None:
    """Show, per source, the last run, its figures, the last error and the next run."""
    settings = load(config)
    engine = open_ledger(settings)
    quarantined = quarantine_counts(engine)
    for source in settings.sources:
        run = last_run(engine, source.name)
        failure = last_error(engine, source.name)
        held = sum(count for (system, _), count in quarantined.items() if system == source.name)
        table = Table(title=f"Source {source.name}", show_header=False, title_justify="left")
        table.add_column("what", style="bold")
        table.add_column("value")
        if run is None:
            table.add_row("last run", "never")
        else:
            table.add_row("last run", f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC, {run.status}")
            table.add_row(
                "records",
                f"{run.records_in:,} in, {run.records_new:,} new, {run.records_changed:,} "
                f"changed, {run.records_unchanged:,} unchanged, {run.records_deleted:,} deleted",
            )
            table.add_row("quarantined", f"{run.quarantined:,} in the last run, {held:,} in all")
        table.add_row(
            "last error",
            "none"
            if failure is None
            else f"{failure.started_at:%Y-%m-%d %H:%M} UTC: {failure.error}",
        )
        table.add_row("next run", _next_run(source, None if run is None else run.started_at))
        for note in _status_notes(settings, engine, source):
            table.add_row("[yellow]warning[/]", note)
        console.print(table)
    step = last_run(engine, None)
    if step is not None:
        console.print(
            f"Last reconcile/metrics/push: {step.started_at:%Y-%m-%d %H:%M:%S} UTC, {step.status}, "
            f"{step.pushed:,} values pushed, {step.push_failed:,} failed"
            + (f" ({step.error})" if step.error else ""),
            highlight=False,
        )
    totals = ledger_totals(engine)
    summary = Table(title="Ledger")
    summary.add_column("what")
    summary.add_column("live", justify="right")
    summary.add_column("deleted / retired", justify="right")
    summary.add_row("customers", f"{totals.ledger_customers:,}", f"{totals.retired_customers:,}")
    for kind, (live, deleted) in totals.source_rows.items():
        summary.add_row(f"source {kind} records", f"{live:,}", f"{deleted:,}")
    summary.add_row("quarantined records", f"{totals.quarantined:,}", "")
    summary.add_row("pushed field values", f"{totals.pushed_values:,}", "")
    console.print(summary)


def _status_notes(settings: AppConfig, engine: Engine, source: SourceConfig) -> list[str]:
    """The connector's own warnings (an expiring grant ...); a broken one is a warning too."""
    try:
        connector = SyncService(settings, engine).connector(source)
        return list(connector.status_notes()) if isinstance(connector, Reporting) else []
    except (ConnectorError, TokenKeyError) as error:
        return [_first_line(error)]


def _next_run(source: SourceConfig, last_started: datetime | None) -> str:
    from apscheduler.triggers.cron import CronTrigger

    now = datetime.now(UTC)
    if source.schedule.cron:
        trigger = CronTrigger.from_crontab(source.schedule.cron, timezone=source.schedule.timezone)
        upcoming = trigger.get_next_fire_time(None, now)
        return "" if upcoming is None else f"{upcoming:%Y-%m-%d %H:%M %Z}"
    interval = source.schedule.interval or timedelta(hours=1)
    if last_started is None:
        return "when the service starts"
    return f"{max(last_started + interval, now):%Y-%m-%d %H:%M:%S} UTC (if the service runs)"


@app.command("validate-config")
def validate_config(config: ConfigOption = None) -> None:
    """Check the YAML file; exit 0 if it is valid, 2 with every problem if not."""
    settings = load(config)
    names = ", ".join(source.name for source in settings.sources)
    console.print(
        f"{find_config_path(config)} is valid: {len(settings.sources)} source(s) ({names})"
    )


@app.command("config-schema")
def config_schema() -> None:
    """Print the JSON Schema of the YAML file (for editor completion and checks)."""
    import json

    sys.stdout.write(json.dumps(config_json_schema(), indent=2) + "\n")


@app.command("migrate")
def migrate_command(config: ConfigOption = None) -> None:
    """Upgrade the ledger to this version's schema (back it up first)."""
    settings = load(config)
    try:
        engine = create_ledger_engine(settings.ledger)
        # The lock only: marking interrupted runs needs the `run` table, which an empty or
        # outdated ledger may not have (yet, or in this shape).
        with ledger_lock(engine):
            before, after = migrate(engine)
    except LedgerBusyError as error:
        fail(str(error))
    except (SQLAlchemyError, OSError) as error:
        fail(f"cannot migrate the ledger: {_first_line(error)}")
    if before == after:
        console.print(f"The ledger is already at revision {after}.")
    else:
        console.print(f"Ledger migrated from {before or 'empty'} to {after}.")


AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Figures as they stood at this date or time (UTC if no zone) [default: now].",
    ),
]


def _table(title: str, frame: pl.DataFrame) -> Table:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column, justify="left" if frame[column].dtype == pl.String else "right")
    for row in frame.iter_rows():
        table.add_row(*("" if value is None else str(value) for value in row))
    return table


def print_report(figures: Report) -> None:
    console.print(f"Figures as of {figures.as_of.isoformat()}", highlight=False)
    summary = Table(title="Business")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for name, value in figures.business.summary.items():
        summary.add_row(name.replace("_", " "), "" if value is None else f"{value:,}")
    console.print(summary)
    for name, frame in figures.business.tables.items():
        if name != "cohort_retention":
            console.print(_table(name.replace("_", " "), frame))
    cohorts = figures.business.tables["cohort_retention"]
    if cohorts.height:
        console.print(
            _table(
                "cohort retention (share of each month's new buyers buying k months later)",
                cohorts.pivot("months_since", index="cohort", values="retention"),
            )
        )
    fits = figures.result.fits
    if fits.bgnbd is not None:
        m = fits.bgnbd
        console.print(
            f"BG/NBD: r={m.r:.4g} alpha={m.alpha:.4g} a={m.a:.4g} b={m.b:.4g} "
            f"(log-likelihood {m.log_likelihood:.1f}, {m.customers:,} customers)"
        )
    if fits.gamma_gamma is not None:
        g = fits.gamma_gamma
        console.print(f"Gamma-Gamma: p={g.p:.4g} q={g.q:.4g} gamma={g.v:.4g}")
    for message in fits.messages:
        console.print(message, highlight=False, markup=False)


@app.command("report")
def report_command(
    config: ConfigOption = None,
    as_of: AsOfOption = None,
    html: Annotated[
        Path | None,
        typer.Option(help="Also write a self-contained HTML page with charts to this file."),
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="Compare with this baseline in the HTML page.")
    ] = None,
) -> None:
    """Business figures: customers by stage, acquired and lost per month, revenue per
    customer, CAC by channel, cohort retention, evangelists, loss reasons, the models."""
    settings = load(config)
    engine = open_ledger(settings)
    moment = parse_as_of(as_of) or datetime.now(UTC)
    figures = report(engine, moment, settings.metrics)
    print_report(figures)
    if html is None:
        return
    comparison = None
    if baseline is not None:
        try:
            comparison = compare_with_baseline(engine, baseline, moment, settings.metrics)
        except BaselineError as error:
            fail(str(error))
    html.write_text(render_html(figures, comparison, baseline or ""), encoding="utf-8")
    console.print(f"Wrote the report to {html}", highlight=False)


@baseline_app.command("create")
def baseline_create(
    name: Annotated[str, typer.Argument(help="A name for the frozen figures.")],
    config: ConfigOption = None,
    as_of: AsOfOption = None,
) -> None:
    """Freeze every figure (per customer and for the business) under NAME, for good."""
    settings = load(config)
    engine = open_ledger(settings)
    moment = parse_as_of(as_of) or datetime.now(UTC)
    try:
        frozen = create_baseline(engine, name, moment, settings.metrics, datetime.now(UTC))
    except BaselineError as error:
        fail(str(error))
    console.print(
        f"Baseline {name!r} frozen as of {moment.isoformat()}: "
        f"{frozen.result.table.height:,} customers.",
        highlight=False,
    )


@baseline_app.command("compare")
def baseline_compare(
    name: Annotated[str, typer.Argument(help="The baseline to compare with.")],
    config: ConfigOption = None,
    as_of: AsOfOption = None,
) -> None:
    """Figures now (or at --as-of) against baseline NAME: % change and a bootstrap interval.

    Exits 1 without figures while it is too early for a comparison to mean anything.
    """
    settings = load(config)
    engine = open_ledger(settings)
    moment = parse_as_of(as_of) or datetime.now(UTC)
    try:
        comparison = compare_with_baseline(engine, name, moment, settings.metrics)
    except BaselineError as error:
        fail(str(error))
    if comparison.status == "too_early":
        fail(comparison.message)
    confidence = f"{settings.metrics.baseline.confidence:.0%}"
    table = Table(title=f"Now against baseline {name!r} ({comparison.status})")
    for column in ("figure", "baseline", "now", "change", f"{confidence} interval"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for change in comparison.changes:
        table.add_row(
            change.figure.replace("_", " "),
            "" if change.baseline is None else f"{change.baseline:,.2f}",
            "" if change.now is None else f"{change.now:,.2f}",
            "" if change.change is None else f"{change.change:+.1%}",
            ""
            if change.low is None or change.high is None
            else f"{change.low:+.1%} to {change.high:+.1%}",
        )
    console.print(table)
    if comparison.status == "preliminary":
        console.print(comparison.message, highlight=False)


@export_app.command("customers")
def export_customers_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write.")],
    config: ConfigOption = None,
    as_of: AsOfOption = None,
) -> None:
    """One row per ledger customer: customer_id, sources, then every metric (from the last
    run, or computed as they stood at --as-of)."""
    settings = load(config)
    engine = open_ledger(settings)
    count = export_customers(engine, out, parse_as_of(as_of), settings.metrics)
    console.print(f"Wrote {count:,} customers to {out}")


@app.command()
def push(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; write nothing.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Rows of the plan to show.")] = 50,
) -> None:
    """Push changed metric values now (without pulling); --dry-run prints the plan."""
    settings = load(config)
    setup_logging(settings.logging)
    engine = open_ledger(settings)
    with held_ledger(engine):
        service = SyncService(settings, engine)
        if dry_run:
            results = service.push(dry_run=True)
        else:
            outcome = service.post_pull(push=True)
            results = outcome.pushes
            if outcome.error:
                errors.print(f"[red]{outcome.status}:[/] {outcome.error}", highlight=False)
    if not results:
        console.print("No source has push enabled with fields; see `push:` in config/example.yaml.")
        return
    if dry_run and not any(result.planned for result in results):
        console.print("Nothing to push: every remote field already shows the current value.")
    elif dry_run:
        table = Table(title="Push plan (dry run: nothing written)")
        for column in ("system", "record", "field", "now", "would become"):
            table.add_column(column)
        shown = 0
        for result in results:
            for update in result.sample:
                if shown >= limit:
                    break
                table.add_row(
                    result.system,
                    update.external_id,
                    update.field,
                    update.previous if update.previous is not None else "(never written)",
                    update.value,
                )
                shown += 1
        console.print(table)
    for result in results:
        verb = "would write" if dry_run else "wrote"
        console.print(
            f"{result.system}: {verb} {result.planned if dry_run else result.pushed:,} "
            f"values"
            + ("" if dry_run else f", {result.failed:,} failed")
            + (f", {result.guests_skipped:,} guests skipped" if result.guests_skipped else "")
        )
    if not dry_run and any(result.failed for result in results):
        raise typer.Exit(EXIT_FAILED)


RecordArgument = Annotated[str, typer.Argument(help="A record: SOURCE_NAME:EXTERNAL_ID.")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why; kept in the merge log.")
]
ActorOption = Annotated[
    str | None,
    typer.Option("--by", help="Who decides, for the merge log [default: your user name]."),
]


def _actor(by: str | None) -> str:
    return by or getpass.getuser()


@app.command("reconcile")
def reconcile_command(
    config: ConfigOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="Compare every record again, not only new ones.")
    ] = False,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="Train the matching model anew first.")
    ] = False,
) -> None:
    """Match customers across sources now (no pull, no push) and update the metrics."""
    settings = load(config)
    setup_logging(settings.logging)
    engine = open_ledger(settings)
    now = datetime.now(UTC)
    with held_ledger(engine):
        result = reconcile(engine, now, settings.reconcile, full=full, retrain=retrain)
        compute_figures(engine, now)
    console.print(
        f"Customers: {result.source_customers:,} source records -> "
        f"{result.ledger_customers:,} ledger customers ({result.new_customers:,} new, "
        f"{result.links_changed:,} records linked anew, {result.retired:,} retired); compared "
        f"{result.compared_records:,} records in {result.compared_pairs:,} pairs"
        + (" with a newly trained model" if result.trained else "")
        + f"; {result.held_back:,} links held back, "
        f"{result.transactions_matched:,} sales booked twice counted once."
    )


def _admin(action: Callable[[Engine], T], config: Path | None) -> T:
    settings = load(config)
    engine = open_ledger(settings)
    try:
        return action(engine)
    except AdminError as error:
        fail(str(error))


_NEXT_CYCLE = "It takes effect at the next cycle (or `clm-sync reconcile`)."


@app.command("merge")
def merge_command(
    record_a: RecordArgument,
    record_b: RecordArgument,
    reason: ReasonOption = None,
    by: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Make two records one customer (an always-merge rule; `undo` reverts it)."""
    log_id = _admin(
        lambda engine: merge(engine, record_a, record_b, _actor(by), reason, datetime.now(UTC)),
        config,
    )
    console.print(
        f"Merge-log entry {log_id}: {record_a} and {record_b} are one customer. {_NEXT_CYCLE}"
    )


@app.command("unmerge")
def unmerge_command(
    record: RecordArgument,
    reason: ReasonOption = None,
    by: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Split a record off its customer (never-merge rules with its other records)."""
    log_id = _admin(
        lambda engine: unmerge(engine, record, _actor(by), reason, datetime.now(UTC)), config
    )
    console.print(f"Merge-log entry {log_id}: {record} stands apart. {_NEXT_CYCLE}")


@app.command("undo")
def undo_command(
    entry: Annotated[int, typer.Argument(help="The merge-log entry (see `clm-sync merge-log`).")],
    by: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Undo a merge, unmerge or review decision: its rules are revoked."""
    undone = _admin(lambda engine: undo(engine, entry, _actor(by), datetime.now(UTC)), config)
    console.print(f"Undid entry {undone.id} ({undone.action} {undone.records}). {_NEXT_CYCLE}")


@app.command("merge-log")
def merge_log_command(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="Entries to show, newest first.")] = 50,
) -> None:
    """Every merge, split and review decision: who, when, why, and whether it was undone."""
    entries = _admin(lambda engine: merge_log(engine, limit), config)
    if not entries:
        console.print("The merge log is empty.")
        return
    table = Table(title="Merge log")
    for column in ("entry", "when (UTC)", "who", "what", "records", "why", "undone"):
        table.add_column(column)
    for item in entries:
        undone = f"{item.undone_at:%Y-%m-%d %H:%M} by {item.undone_by}" if item.undone_at else ""
        table.add_row(
            str(item.id),
            f"{item.at:%Y-%m-%d %H:%M}",
            item.actor,
            item.action,
            item.records,
            item.reason or "",
            undone,
        )
    console.print(table)


@app.command("explain")
def explain_command(
    record_a: RecordArgument, record_b: RecordArgument, config: ConfigOption = None
) -> None:
    """Why two records are or are not one customer: each comparison's match weight."""
    report = _admin(lambda engine: explain_pair(engine, record_a, record_b), config)
    why = report.explanation
    table = Table(title=f"{record_a} vs {record_b}")
    for column in ("comparison", "level", "match weight"):
        table.add_column(column)
    table.add_row("prior", "two random records", f"{why.prior_weight:+.2f}")
    for part in why.contributions:
        table.add_row(part.comparison, part.level, f"{part.match_weight:+.2f}")
    table.add_row("total", f"probability {why.match_probability:.4f}", f"{why.match_weight:+.2f}")
    console.print(table)
    if why.two_people:
        console.print(
            "Two people by the model's rule: different first names and no e-mail or phone in "
            "common (a household?). Only a key or a rule links them; `clm-sync review` lists them."
        )
    if report.same_customer:
        console.print(
            f"Linked: one customer ({record_a}: {report.rule_a}; {record_b}: {report.rule_b})."
        )
    else:
        console.print("Not linked: two customers.")


@app.command("review")
def review_command(
    record_a: Annotated[
        str | None, typer.Argument(help="First record of a pair to decide.")
    ] = None,
    record_b: Annotated[str | None, typer.Argument(help="Second record of the pair.")] = None,
    accept: Annotated[bool, typer.Option("--accept", help="They are one customer.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="They are two customers.")] = False,
    reason: ReasonOption = None,
    by: ActorOption = None,
    limit: Annotated[int, typer.Option(help="Pairs to list.")] = 50,
    config: ConfigOption = None,
) -> None:
    """List uncertain pairs; with two records and --accept or --reject, decide one (a rule)."""
    settings = load(config)
    if record_a is not None:
        if record_b is None or accept == reject:
            fail("name two records and exactly one of --accept or --reject", EXIT_CONFIG)
        log_id = _admin(
            lambda engine: review_decision(
                engine,
                record_a,
                record_b,
                accept=accept,
                actor=_actor(by),
                reason=reason,
                now=datetime.now(UTC),
            ),
            config,
        )
        verdict = "one customer" if accept else "two customers"
        console.print(
            f"Merge-log entry {log_id}: {record_a} and {record_b} are {verdict}. {_NEXT_CYCLE}"
        )
        return
    queue = _admin(lambda engine: review_queue(engine, settings.reconcile, limit), config)
    if not queue:
        console.print("Nothing to review: no pair is in the uncertain band.")
        return
    table = Table(title="Pairs to review (decide with --accept or --reject)")
    for column in ("record", "name", "record", "name", "probability"):
        table.add_column(column)
    for pair in queue:
        table.add_row(
            pair.record_a, pair.name_a, pair.record_b, pair.name_b, f"{pair.probability:.3f}"
        )
    console.print(table)
    console.print("`clm-sync explain A B` shows the evidence for a pair.")


class TerminalConsole:
    """The admin's terminal for ``auth`` and ``setup``; no terminal means a clear error."""

    def say(self, text: str) -> None:
        # No wrapping: a consent URL broken over lines cannot be copied into a browser.
        console.print(text, highlight=False, soft_wrap=True)

    def ask(self, question: str) -> str:
        if not sys.stdin.isatty():
            fail(f"{question} - this needs an answer typed at a terminal; run it interactively")
        return str(typer.prompt(question))


def source_named(settings: AppConfig, name: str) -> SourceConfig:
    """A source by its name, or by its type when exactly one source has that type."""
    by_type = [source for source in settings.sources if source.type == name]
    for source in settings.sources:
        if source.name == name:
            return source
    if len(by_type) == 1:
        return by_type[0]
    known = ", ".join(f"{source.name} ({source.type})" for source in settings.sources)
    fail(f"no source named {name!r} in the config; the sources are: {known}", EXIT_CONFIG)


@app.command()
def auth(
    source_name: Annotated[str, typer.Argument(metavar="SOURCE", help="Source name or type.")],
    config: ConfigOption = None,
) -> None:
    """Connect a source that needs the admin's consent (OAuth), and store its tokens."""
    settings = load(config)
    engine = open_ledger(settings)
    source = source_named(settings, source_name)
    connector = SyncService(settings, engine).connector(source)
    if not isinstance(connector, Authorizing):
        fail(f"source {source.name!r} ({source.type}) needs no authorization", EXIT_CONFIG)
    try:
        connector.authorize(TerminalConsole())
    except (ConnectorError, TokenKeyError) as error:
        fail(str(error))


@app.command()
def setup(
    source_name: Annotated[str, typer.Argument(metavar="SOURCE", help="Source name or type.")],
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be created; create nothing.")
    ] = False,
) -> None:
    """Create what pushing needs in the remote system (custom-field definitions ...)."""
    settings = load(config)
    engine = open_ledger(settings)
    source = source_named(settings, source_name)
    connector = SyncService(settings, engine).connector(source)
    if not isinstance(connector, SettingUp):
        fail(f"source {source.name!r} ({source.type}) needs no setup", EXIT_CONFIG)
    try:
        connector.set_up(TerminalConsole(), dry_run)
    except (ConnectorError, TokenKeyError) as error:
        fail(str(error))


@app.command("generate-key")
def generate_key_command() -> None:
    """Print a new key for CLM_SYNC_SECRET_KEY (encrypts stored OAuth tokens)."""
    sys.stdout.write(generate_key() + "\n")


@app.command()
def demo(
    keep: Annotated[
        Path | None,
        typer.Option(help="Leave the business, its config and the ledger in this folder."),
    ] = None,
    customers: Annotated[
        int, typer.Option(min=10, max=1_000_000, help="People in the business.")
    ] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic business.")] = 7,
) -> None:
    """Generate a small synthetic business, run one cycle on it and print a summary."""
    from sandbox.demo import prepare_demo, summarize_demo

    with contextlib.ExitStack() as stack:
        if keep is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clm-sync-demo-")))
        else:
            folder = keep.resolve()
        console.print(
            f"Generating a business of {customers:,} people (seed {seed}) in {folder} ..."
        )
        config_path, as_of = prepare_demo(folder, customers, seed, stack)
        settings = load(config_path)
        setup_logging(LoggingConfig(level="WARNING"))
        engine = open_ledger(settings)
        with held_ledger(engine), console_progress() as progress:
            outcome = SyncService(settings, engine, progress=progress).cycle(as_of=as_of)
        print_outcome(outcome)
        summarize_demo(console, engine, folder, as_of)
        engine.dispose()
        if keep is not None:
            console.print(
                f"\nThe business, config and ledger are in {folder}. Go on with:\n"
                f"  clm-sync --help\n"
                f"  clm-sync status --config {config_path}\n"
                f"  clm-sync export customers --config {config_path} --out customers.csv\n"
                f"  clm-sync push --dry-run --config {config_path}",
                highlight=False,
            )
        if outcome.failed:
            raise typer.Exit(EXIT_FAILED)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
