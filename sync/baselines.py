"""Business report, frozen baselines and comparisons against them, over the ledger.

A baseline is written once by :func:`create_baseline` and never touched again: its figures
are copies (not references to ledger customers), so later cycles, merges and splits leave it
as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy import Engine, insert, select

from clm_metrics import MetricsResult, customer_metrics, metric_rows
from clm_metrics.business import BusinessFigures, business_figures
from clm_metrics.compare import Comparison, compare
from clm_metrics.history import known_transactions
from config.models import MetricsConfig
from sync.figures import encode_values
from sync.frames import read_frames
from sync.ledger import Baseline, BaselineCustomer

_BASELINE = Baseline.__table__  # type: ignore[attr-defined]
_BASELINE_CUSTOMER = BaselineCustomer.__table__  # type: ignore[attr-defined]
WRITE_ROWS = 5_000


class BaselineError(ValueError):
    """A baseline name that is taken or unknown; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Report:
    as_of: datetime
    result: MetricsResult
    business: BusinessFigures


def report(engine: Engine, as_of: datetime, settings: MetricsConfig) -> Report:
    """Every figure as it stood at ``as_of``, from what the ledger knew by then."""
    with engine.connect() as connection:
        frames = read_frames(connection)
    result = customer_metrics(frames, as_of, settings)
    known = known_transactions(frames, as_of)
    return Report(as_of, result, business_figures(result.table, known, settings))


def create_baseline(
    engine: Engine, name: str, as_of: datetime, settings: MetricsConfig, now: datetime
) -> Report:
    """Freeze every figure as of ``as_of`` under ``name``."""
    with engine.connect() as connection:
        taken = connection.execute(select(_BASELINE.c.name).where(_BASELINE.c.name == name))
        if taken.first() is not None:
            raise BaselineError(
                f"a baseline named {name!r} exists already; baselines never change, so pick "
                "another name"
            )
    frozen = report(engine, as_of, settings)
    with engine.begin() as connection:
        connection.execute(
            insert(_BASELINE).values(
                name=name,
                as_of=as_of,
                created_at=now,
                business_json=json.dumps(frozen.business.as_dict(), sort_keys=True),
                models_json=json.dumps(frozen.result.fits.as_dict(), sort_keys=True),
            )
        )
        batch: list[dict[str, object]] = []
        for customer_id, values in metric_rows(frozen.result.table):
            batch.append(
                {
                    "baseline_name": name,
                    "ledger_customer_id": customer_id,
                    "values_json": encode_values(values),
                }
            )
            if len(batch) >= WRITE_ROWS:
                connection.execute(insert(_BASELINE_CUSTOMER), batch)
                batch = []
        if batch:
            connection.execute(insert(_BASELINE_CUSTOMER), batch)
    return frozen


def baseline_figures(engine: Engine, name: str) -> tuple[datetime, pl.DataFrame]:
    """A baseline's as-of time and its per-customer figures (decoded from JSON)."""
    with engine.connect() as connection:
        as_of = connection.execute(
            select(_BASELINE.c.as_of).where(_BASELINE.c.name == name)
        ).scalar_one_or_none()
        if as_of is None:
            known = connection.execute(select(_BASELINE.c.name).order_by(_BASELINE.c.name))
            names = ", ".join(known.scalars()) or "none yet; `clm-sync baseline create NAME`"
            raise BaselineError(f"no baseline named {name!r} (baselines: {names})")
        rows = connection.execute(
            select(_BASELINE_CUSTOMER.c.ledger_customer_id, _BASELINE_CUSTOMER.c.values_json)
            .where(_BASELINE_CUSTOMER.c.baseline_name == name)
            .order_by(_BASELINE_CUSTOMER.c.ledger_customer_id)
        ).all()
    ids = pl.Series("customer_id", [row[0] for row in rows], dtype=pl.Int64)
    values = pl.Series("values", [row[1] for row in rows], dtype=pl.String)
    decoded = values.str.json_decode(infer_schema_length=None)
    table = decoded.struct.unnest() if len(rows) else pl.DataFrame()
    return as_of, table.with_columns(ids) if len(rows) else pl.DataFrame({"customer_id": ids})


def compare_with_baseline(
    engine: Engine, name: str, as_of: datetime, settings: MetricsConfig
) -> Comparison:
    """Figures at ``as_of`` against the baseline ``name``, under the waiting rule."""
    baseline_as_of, frozen = baseline_figures(engine, name)
    current = report(engine, as_of, settings).result.table
    return compare(
        frozen,
        current,
        baseline_as_of.date(),
        as_of.date(),
        settings.baseline,
        settings.lifecycle.default_gap_days,
    )
