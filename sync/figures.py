"""The metrics step: read the ledger into frames, run ``clm_metrics``, store what changed.

The engine is columnar and fits its models on the whole customer base, so the step reads
every live transaction of every linked customer (streamed in chunks into polars frames) and
writes a customer's row in ``customer_metrics`` only when a figure changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from clm_metrics import LedgerFrames, MetricValue, metric_rows
from clm_metrics.basis import customer_basis
from clm_metrics.engine import finish
from config.models import MetricsConfig
from sync.basis import crossed, fingerprints, replace_basis, stored_basis
from sync.frames import read_frames
from sync.ledger import (
    CustomerMetrics,
    MetricsRun,
)

_METRICS = CustomerMetrics.__table__  # type: ignore[attr-defined]
_RUN = MetricsRun.__table__  # type: ignore[attr-defined]

STREAM_ROWS = 5_000


@dataclass(slots=True)
class FiguresResult:
    customers: int = 0
    changed: int = 0
    recomputed: int = 0
    """Customers whose basis was recomputed (the others kept last run's)."""
    messages: tuple[str, ...] = ()
    """Why a model is missing (too little data ...), for the run's output."""


def to_json_value(value: MetricValue) -> Any:
    """Metric values as JSON: dates as ISO text, money as exact decimal text."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def encode_values(values: dict[str, MetricValue]) -> str:
    return json.dumps({name: to_json_value(v) for name, v in values.items()}, sort_keys=True)


class _MetricWrites:
    """Buffers changed figures and writes them in batches, bounding memory."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.inserts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.count = 0

    def add(self, ledger_id: int, as_of: datetime, encoded: str, *, insert: bool) -> None:
        if insert:
            self.inserts.append(
                {"ledger_customer_id": ledger_id, "as_of": as_of, "values_json": encoded}
            )
        else:
            self.updates.append({"key": ledger_id, "as_of": as_of, "values_json": encoded})
        self.count += 1
        if len(self.inserts) + len(self.updates) >= STREAM_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.inserts:
            self.connection.execute(insert(_METRICS), self.inserts)
        if self.updates:
            self.connection.execute(
                update(_METRICS)
                .where(_METRICS.c.ledger_customer_id == bindparam("key"))
                .values(as_of=bindparam("as_of"), values_json=bindparam("values_json")),
                self.updates,
            )
        self.inserts, self.updates = [], []


def settings_hash(settings: MetricsConfig) -> str:
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()


def _basis(
    connection: Connection, as_of: datetime, settings: MetricsConfig, *, incremental: bool
) -> tuple[pl.DataFrame, LedgerFrames | None, list[int]]:
    """Every customer's basis (with fingerprint), the frames read, and who was recomputed.

    Incremental only when the last run used the same settings and an earlier or equal as-of
    time; otherwise every customer is recomputed."""
    prints = fingerprints(connection)
    last = connection.execute(
        select(_RUN.c.as_of, _RUN.c.settings_hash).order_by(_RUN.c.id.desc()).limit(1)
    ).first()
    if (
        incremental
        and last is not None
        and last.settings_hash == settings_hash(settings)
        and last.as_of <= as_of
    ):
        stored = stored_basis(connection)
        changed = prints.join(stored, on=["customer_id", "fingerprint"], how="anti")
        touched = set(changed["customer_id"]) | crossed(connection, last.as_of, as_of, settings)
        ids = sorted(touched)
        frames = read_frames(connection, ids) if ids else None
        fresh = (
            customer_basis(frames, as_of, settings)
            if frames is not None
            else stored.head(0).drop("fingerprint")
        )
        kept = stored.filter(
            ~pl.col("customer_id").is_in(pl.Series(ids, dtype=pl.Int64()).implode())
        )
        fresh = fresh.join(prints, on="customer_id").select(stored.columns)
        everyone = prints.select("customer_id")
        basis = pl.concat([kept, fresh]).join(everyone, on="customer_id").sort("customer_id")
        return basis, None, ids
    frames = read_frames(connection)
    basis = customer_basis(frames, as_of, settings).join(prints, on="customer_id")
    return basis, frames, list(basis["customer_id"])


def compute_figures(
    engine: Engine,
    as_of: datetime,
    settings: MetricsConfig | None = None,
    *,
    incremental: bool = True,
) -> FiguresResult:
    """Every ledger customer's figures as of ``as_of``; store those that changed.

    Only customers touched since the last run get a new basis (``sync.basis``); the figures
    that compare customers are recomputed for all. ``incremental=False`` recomputes every
    basis (the result is the same).
    """
    settings = settings or MetricsConfig()
    result = FiguresResult()
    with engine.begin() as connection:
        stored: dict[int, str] = {
            ledger_id: values_json
            for ledger_id, values_json in connection.execute(
                select(_METRICS.c.ledger_customer_id, _METRICS.c.values_json)
            )
        }
        basis, frames, recomputed = _basis(connection, as_of, settings, incremental=incremental)
        replace_basis(connection, basis.filter(pl.col("customer_id").is_in(recomputed)), recomputed)
        if frames is None:
            frames = read_frames(connection, [])
        computed = finish(
            basis.drop("fingerprint"), frames.referrals, frames.spend, as_of, settings
        )
        table = computed.table
        writes = _MetricWrites(connection)
        for ledger_id, values in metric_rows(table):
            encoded = encode_values(values)
            previous = stored.get(ledger_id)
            if previous != encoded:
                writes.add(ledger_id, as_of, encoded, insert=previous is None)
        writes.flush()
        result.customers = table.height
        result.changed = writes.count
        result.recomputed = len(recomputed)
        result.messages = computed.fits.messages
        connection.execute(
            insert(_RUN).values(
                as_of=as_of,
                computed_at=datetime.now(UTC),
                customers=result.customers,
                changed=result.changed,
                recomputed=result.recomputed,
                settings_hash=settings_hash(settings),
                models_json=json.dumps(computed.fits.as_dict(), sort_keys=True),
            )
        )
    return result
