"""The push engine: write each customer's figures into the remote systems' custom fields.

For every source with a writer and a field mapping, the value each linked remote customer
*should* show (the metric, formatted as the YAML says) is compared with the value last
written there (``push_state``); only differences are sent, in batches of the writer's size,
and ``push_state`` is updated for each update the remote accepted. Customers are processed in
chunks, so memory does not grow with the ledger. A dry run computes the same plan and sends
nothing.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, select, update

from clm_metrics import METRICS
from config.models import AppConfig, PushField
from connectors.base import Creating, NewCustomer, Writer
from connectors.errors import ConnectorError
from connectors.records import FieldUpdate
from sync.ledger import (
    CustomerLink,
    CustomerMetrics,
    LedgerCustomer,
    PushState,
    SourceCustomerRow,
)

_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_METRICS = CustomerMetrics.__table__  # type: ignore[attr-defined]
_STATE = PushState.__table__  # type: ignore[attr-defined]
_CUSTOMER = LedgerCustomer.__table__  # type: ignore[attr-defined]

CREATED_FIELD = "__created"
"""The push_state row (external id ``ledger:<id>``) saying a remote record was created for a
ledger customer, with the new record's id as its value: never created twice."""
_IDENTITY = ("name", "first_name", "last_name", "company", "email", "phone")

CUSTOMER_CHUNK = 500
PLAN_SAMPLE = 1_000
"""A dry run keeps this many planned updates to show; it counts all of them."""


class PushConfigError(ValueError):
    """A push mapping names a metric that does not exist or a format that cannot apply."""


def mapping_problems(app: AppConfig) -> list[str]:
    """What is wrong with the push mappings of all sources, each with a fix."""
    problems: list[str] = []
    for source in app.sources:
        for index, mapping in enumerate(source.push.fields):
            where = f"sources[{source.name}].push.fields[{index}]"
            if mapping.metric not in METRICS:
                close = difflib.get_close_matches(mapping.metric, METRICS, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(METRICS)}"
                problems.append(f"{where}: unknown metric {mapping.metric!r}; {hint}")
    return problems


def render(value: Any, spec: str) -> str:
    """A metric's JSON value as the text the remote field gets.

    Dates take strftime formats (``%d.%m.%Y``), numbers Python format specs (``.2f``, ``,``);
    a missing value is the empty text.
    """
    if value is None:
        return ""
    if not spec:
        return str(value)
    if isinstance(value, str) and "%" in spec:
        try:
            return date.fromisoformat(value).strftime(spec)
        except ValueError as error:
            raise PushConfigError(f"format {spec!r} cannot apply to {value!r}: {error}") from None
    try:
        # Integers keep their own type, so integer specs such as 'd' apply to counts.
        number = value if isinstance(value, int) else Decimal(str(value))
        return format(number, spec)
    except (InvalidOperation, ValueError) as error:
        raise PushConfigError(f"format {spec!r} cannot apply to {value!r}: {error}") from None


@dataclass(slots=True)
class PushResult:
    system: str
    planned: int = 0
    pushed: int = 0
    failed: int = 0
    created: int = 0
    """Remote records created for customers that had none (where the source asks for it)."""
    guests_skipped: int = 0
    """Linked customers the system keeps no record for (guest checkouts): nothing to write."""
    sample: list[FieldUpdate] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def note_error(self, message: str) -> None:
        if len(self.errors) < 20 and message not in self.errors:
            self.errors.append(message)


def _customer_chunks(connection: Connection, system: str) -> Iterator[list[tuple[str, str]]]:
    """(remote id, figures JSON) of the system's live, linked, non-guest customers, by id."""
    after = ""
    while True:
        rows = [
            (str(external_id), str(figures))
            for external_id, figures in connection.execute(
                select(_SOURCE.c.external_id, _METRICS.c.values_json)
                .join(_LINK, _LINK.c.source_customer_id == _SOURCE.c.id)
                .join(_METRICS, _METRICS.c.ledger_customer_id == _LINK.c.ledger_customer_id)
                .where(
                    _SOURCE.c.system == system,
                    _SOURCE.c.deleted.is_(False),
                    # A guest (an e-mail correspondent, a guest checkout) has no remote
                    # record to write to.
                    _SOURCE.c.guest.is_(False),
                    _SOURCE.c.external_id > after,
                )
                .order_by(_SOURCE.c.external_id)
                .limit(CUSTOMER_CHUNK)
            )
        ]
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _state(connection: Connection, system: str, ids: Sequence[str]) -> dict[tuple[str, str], str]:
    rows = connection.execute(
        select(_STATE.c.external_id, _STATE.c.field, _STATE.c.value).where(
            _STATE.c.system == system, _STATE.c.external_id.in_(ids)
        )
    )
    return {(external_id, name): value for external_id, name, value in rows}


def plan_updates(
    connection: Connection, system: str, fields: Sequence[PushField]
) -> Iterator[list[FieldUpdate]]:
    """The changed values of one system, a chunk of customers at a time."""
    for chunk in _customer_chunks(connection, system):
        state = _state(connection, system, [external_id for external_id, _ in chunk])
        updates: list[FieldUpdate] = []
        for external_id, values_json in chunk:
            values = json.loads(values_json)
            for mapping in fields:
                desired = render(values.get(mapping.metric), mapping.format)
                previous = state.get((external_id, mapping.field))
                if desired != (previous if previous is not None else ""):
                    updates.append(FieldUpdate(external_id, mapping.field, desired, previous))
        if updates:
            yield updates


def _remember(engine: Engine, system: str, accepted: Sequence[FieldUpdate], now: datetime) -> None:
    fresh = [u for u in accepted if u.previous is None]
    known = [u for u in accepted if u.previous is not None]
    with engine.begin() as connection:
        if fresh:
            connection.execute(
                insert(_STATE),
                [
                    {
                        "system": system,
                        "external_id": u.external_id,
                        "field": u.field,
                        "value": u.value,
                        "pushed_at": now,
                    }
                    for u in fresh
                ],
            )
        if known:
            connection.execute(
                update(_STATE)
                .where(
                    and_(
                        _STATE.c.system == system,
                        _STATE.c.external_id == bindparam("key_id"),
                        _STATE.c.field == bindparam("key_field"),
                    )
                )
                .values(value=bindparam("new_value"), pushed_at=now),
                [
                    {"key_id": u.external_id, "key_field": u.field, "new_value": u.value}
                    for u in known
                ],
            )


def push_system(
    engine: Engine,
    system: str,
    writer: Writer,
    fields: Sequence[PushField],
    now: datetime,
    *,
    dry_run: bool = False,
) -> PushResult:
    """Send one system its changed values (or, with ``dry_run``, only count and sample them)."""
    result = PushResult(system)
    with engine.connect() as connection:
        result.guests_skipped = connection.execute(
            select(func.count())
            .select_from(_SOURCE)
            .where(
                _SOURCE.c.system == system,
                _SOURCE.c.deleted.is_(False),
                _SOURCE.c.guest.is_(True),
            )
        ).scalar_one()
        for updates in plan_updates(connection, system, fields):
            result.planned += len(updates)
            if dry_run:
                result.sample.extend(updates[: PLAN_SAMPLE - len(result.sample)])
                continue
            for start in range(0, len(updates), writer.max_batch):
                batch = updates[start : start + writer.max_batch]
                try:
                    outcomes = writer.write(batch)
                except ConnectorError as error:
                    # The remote is down or refuses us: stop here; what was not sent is
                    # planned again next cycle because push_state did not move.
                    result.failed += len(batch)
                    result.note_error(str(error))
                    return result
                accepted = [outcome.update for outcome in outcomes if outcome.error is None]
                for outcome in outcomes:
                    if outcome.error is not None:
                        result.note_error(f"{outcome.update.external_id}: {outcome.error}")
                result.pushed += len(accepted)
                result.failed += len(batch) - len(accepted)
                if accepted:
                    _remember(engine, system, accepted, now)
    if not dry_run and isinstance(writer, Creating) and writer.creates:
        _create_missing(engine, system, writer, fields, now, result)
    return result


def _missing_customers(connection: Connection, system: str) -> list[int]:
    """Live ledger customers without a live record of their own in ``system``, not yet created
    there by us."""
    # NOT EXISTS: PostgreSQL turns a large NOT IN subquery into a nested loop
    has_record = (
        select(_LINK.c.ledger_customer_id)
        .join(_SOURCE, _SOURCE.c.id == _LINK.c.source_customer_id)
        .where(
            _LINK.c.ledger_customer_id == _CUSTOMER.c.id,
            _SOURCE.c.system == system,
            _SOURCE.c.deleted.is_(False),
            _SOURCE.c.guest.is_(False),
        )
        .exists()
    )
    candidates = connection.execute(
        select(_CUSTOMER.c.id)
        .where(_CUSTOMER.c.retired_at.is_(None), ~has_record)
        .order_by(_CUSTOMER.c.id)
    ).scalars()
    created = {
        external_id
        for external_id in connection.execute(
            select(_STATE.c.external_id).where(
                _STATE.c.system == system, _STATE.c.field == CREATED_FIELD
            )
        ).scalars()
    }
    return [ledger_id for ledger_id in candidates if f"ledger:{ledger_id}" not in created]


def _new_customers(
    connection: Connection, ids: Sequence[int], fields: Sequence[PushField]
) -> list[NewCustomer]:
    """Who they are (the first known value of each attribute across their records) and the
    figures they should show; customers without an e-mail are left out (nothing would link
    the new record back to them)."""
    known: dict[int, dict[str, Any]] = {ledger_id: {} for ledger_id in ids}
    rows = connection.execute(
        select(_LINK.c.ledger_customer_id, *(getattr(_SOURCE.c, name) for name in _IDENTITY))
        .join(_SOURCE, _SOURCE.c.id == _LINK.c.source_customer_id)
        .where(_LINK.c.ledger_customer_id.in_(ids), _SOURCE.c.deleted.is_(False))
        .order_by(_LINK.c.ledger_customer_id, _SOURCE.c.id)
    )
    for ledger_id, *cells in rows:
        for name, value in zip(_IDENTITY, cells, strict=True):
            if value and name not in known[ledger_id]:
                known[ledger_id][name] = value
    figures = {
        ledger_id: values_json
        for ledger_id, values_json in connection.execute(
            select(_METRICS.c.ledger_customer_id, _METRICS.c.values_json).where(
                _METRICS.c.ledger_customer_id.in_(ids)
            )
        )
    }
    found = []
    for ledger_id in ids:
        identity = known[ledger_id]
        if not identity.get("email"):
            continue
        metrics = json.loads(figures.get(ledger_id) or "{}")
        values = {m.field: render(metrics.get(m.metric), m.format) for m in fields}
        found.append(
            NewCustomer(ledger_id, values={k: v for k, v in values.items() if v}, **identity)
        )
    return found


def _create_missing(
    engine: Engine,
    system: str,
    writer: Creating,
    fields: Sequence[PushField],
    now: datetime,
    result: PushResult,
) -> None:
    """Create remote records for customers that have none, and remember what they got."""
    with engine.connect() as connection:
        missing = _missing_customers(connection, system)
    for start in range(0, len(missing), CUSTOMER_CHUNK):
        with engine.connect() as connection:
            customers = _new_customers(connection, missing[start : start + CUSTOMER_CHUNK], fields)
        for first in range(0, len(customers), writer.max_batch):
            try:
                outcomes = writer.create(customers[first : first + writer.max_batch])
            except ConnectorError as error:
                result.note_error(str(error))
                return
            remembered: list[FieldUpdate] = []
            for outcome in outcomes:
                if outcome.external_id is None:
                    result.note_error(
                        f"ledger customer {outcome.customer.ledger_id}: {outcome.error}"
                    )
                    continue
                result.created += 1
                remembered.append(
                    FieldUpdate(
                        f"ledger:{outcome.customer.ledger_id}", CREATED_FIELD, outcome.external_id
                    )
                )
                remembered += [
                    FieldUpdate(outcome.external_id, name, value)
                    for name, value in outcome.customer.values.items()
                ]
            if remembered:
                _remember(engine, system, remembered, now)
