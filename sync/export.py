"""The customer export: one CSV row per live ledger customer with every metric.

Columns: ``customer_id``, ``sources`` (``system:external_id`` joined by ``;``), then one
column per metric in the order of :data:`clm_metrics.METRICS`. Rows are streamed, so the
export of a large ledger does not hold it in memory. With an as-of time the figures are
computed afresh as they stood then, instead of read from the last run.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from clm_metrics import METRICS, customer_metrics, metric_rows
from config.models import MetricsConfig
from sync.figures import to_json_value
from sync.frames import read_frames
from sync.ledger import CustomerLink, CustomerMetrics, LedgerCustomer, SourceCustomerRow

_CUSTOMER = LedgerCustomer.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_METRICS = CustomerMetrics.__table__  # type: ignore[attr-defined]

STREAM_ROWS = 5_000
EXPORT_COLUMNS = ("customer_id", "sources", *METRICS)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def figures_as_of(
    engine: Engine, as_of: datetime, settings: MetricsConfig
) -> dict[int, dict[str, Any]]:
    """Every customer's figures as they stood at ``as_of``, as the JSON values stored."""
    with engine.connect() as connection:
        frames = read_frames(connection)
    table = customer_metrics(frames, as_of, settings).table
    return {
        customer_id: {name: to_json_value(value) for name, value in values.items()}
        for customer_id, values in metric_rows(table)
    }


def customer_rows(
    engine: Engine, computed: dict[int, dict[str, Any]] | None = None
) -> Iterator[list[str]]:
    """Export rows (without header) of live ledger customers, by customer id: the stored
    figures, or those of ``computed``."""
    with engine.connect() as customers, engine.connect() as links:
        figures = customers.execution_options(yield_per=STREAM_ROWS).execute(
            select(_CUSTOMER.c.id, _METRICS.c.values_json)
            .outerjoin(_METRICS, _METRICS.c.ledger_customer_id == _CUSTOMER.c.id)
            .where(_CUSTOMER.c.retired_at.is_(None))
            .order_by(_CUSTOMER.c.id)
        )
        sources = groupby(
            links.execution_options(yield_per=STREAM_ROWS).execute(
                select(_LINK.c.ledger_customer_id, _SOURCE.c.system, _SOURCE.c.external_id)
                .join(_SOURCE, _SOURCE.c.id == _LINK.c.source_customer_id)
                .where(_SOURCE.c.deleted.is_(False))
                .order_by(_LINK.c.ledger_customer_id, _SOURCE.c.system, _SOURCE.c.external_id)
            ),
            key=lambda row: row[0],
        )
        pending = next(sources, None)
        for ledger_id, values_json in figures:
            keys: list[str] = []
            while pending is not None and pending[0] <= ledger_id:
                if pending[0] == ledger_id:
                    keys = [f"{system}:{external_id}" for _, system, external_id in pending[1]]
                pending = next(sources, None)
            if computed is not None:
                values = computed.get(ledger_id, {})
            else:
                values = json.loads(values_json) if values_json else {}
            yield [str(ledger_id), ";".join(keys), *(_cell(values.get(name)) for name in METRICS)]


def export_customers(
    engine: Engine,
    out: Path,
    as_of: datetime | None = None,
    settings: MetricsConfig | None = None,
) -> int:
    """Write the export to ``out`` atomically (a temporary file renamed into place); with
    ``as_of``, the figures as they stood then."""
    computed = None if as_of is None else figures_as_of(engine, as_of, settings or MetricsConfig())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    count = 0
    with partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        for row in customer_rows(engine, computed):
            writer.writerow(row)
            count += 1
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(out)
    return count
