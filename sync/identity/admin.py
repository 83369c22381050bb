"""What an admin does about who is who: merge, unmerge, undo, review, explain.

Every decision becomes a merge-log entry (who, when, why) owning the always- or never-merge
rules it wrote; undoing the entry revokes its rules. Nothing moves here: the next reconcile
applies the rules, and metrics and pushed fields follow in the same cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, or_, select, update

from config.models import ReconcileConfig
from sync.identity import model
from sync.identity.rules import ALWAYS, NEVER
from sync.identity.stored import current_features, features_frame
from sync.ledger import (
    CustomerLink,
    MatchPair,
    MatchRule,
    MergeLog,
    SourceCustomerRow,
)
from sync.reconcile import load_model

_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_LOG = MergeLog.__table__  # type: ignore[attr-defined]
_RULE = MatchRule.__table__  # type: ignore[attr-defined]
_PAIR = MatchPair.__table__  # type: ignore[attr-defined]

MERGE = "merge"
UNMERGE = "unmerge"
ACCEPT = "review-accept"
REJECT = "review-reject"


class AdminError(ValueError):
    """A command named something that does not exist or cannot be done; says what to do."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    id: int
    at: datetime
    actor: str
    action: str
    records: str
    reason: str | None
    undone_at: datetime | None
    undone_by: str | None


def parse_ref(ref: str) -> tuple[str, str]:
    system, sep, external_id = ref.partition(":")
    if not sep or not system or not external_id:
        raise AdminError(f"{ref!r} is not a record: write SOURCE_NAME:EXTERNAL_ID, e.g. shop:1042")
    return system, external_id


def _record(connection: Connection, ref: str) -> tuple[int, int | None]:
    """(source customer id, ledger customer id) of a live record."""
    system, external_id = parse_ref(ref)
    row = connection.execute(
        select(_SOURCE.c.id, _LINK.c.ledger_customer_id)
        .outerjoin(_LINK, _LINK.c.source_customer_id == _SOURCE.c.id)
        .where(
            _SOURCE.c.system == system,
            _SOURCE.c.external_id == external_id,
            _SOURCE.c.deleted.is_(False),
        )
        .order_by(_SOURCE.c.id)
        .limit(1)
    ).first()
    if row is None:
        raise AdminError(
            f"no live customer record {ref}; `clm-sync export customers` lists the records"
        )
    return row[0], row[1]


def _log(
    connection: Connection,
    actor: str,
    action: str,
    refs: Sequence[str],
    reason: str | None,
    now: datetime,
) -> int:
    created = connection.execute(
        insert(_LOG).returning(_LOG.c.id),
        {"at": now, "actor": actor, "action": action, "records": " ".join(refs), "reason": reason},
    )
    return int(created.scalar_one())


def _rule(connection: Connection, kind: str, a: str, b: str, log_id: int, now: datetime) -> None:
    connection.execute(
        insert(_RULE),
        {"kind": kind, "record_a": a, "record_b": b, "log_id": log_id, "created_at": now},
    )


def _revoke_between(connection: Connection, kind: str, a: str, b: str, now: datetime) -> None:
    """Revoke active rules of ``kind`` between ``a`` and ``b`` (either order)."""
    connection.execute(
        update(_RULE)
        .where(
            _RULE.c.kind == kind,
            _RULE.c.revoked_at.is_(None),
            or_(
                (_RULE.c.record_a == a) & (_RULE.c.record_b == b),
                (_RULE.c.record_a == b) & (_RULE.c.record_b == a),
            ),
        )
        .values(revoked_at=now)
    )


def _decide(
    engine: Engine,
    a: str,
    b: str,
    *,
    same: bool,
    action: str,
    actor: str,
    reason: str | None,
    now: datetime,
) -> int:
    with engine.begin() as connection:
        _record(connection, a)
        _record(connection, b)
        if a == b:
            raise AdminError("name two different records")
        _revoke_between(connection, NEVER if same else ALWAYS, a, b, now)
        log_id = _log(connection, actor, action, (a, b), reason, now)
        _rule(connection, ALWAYS if same else NEVER, a, b, log_id, now)
    return log_id


def merge(engine: Engine, a: str, b: str, actor: str, reason: str | None, now: datetime) -> int:
    """Records ``a`` and ``b`` are one customer from the next cycle on; returns the log id."""
    return _decide(engine, a, b, same=True, action=MERGE, actor=actor, reason=reason, now=now)


def unmerge(engine: Engine, ref: str, actor: str, reason: str | None, now: datetime) -> int:
    """Split record ``ref`` off its customer: never merged with the customer's other records."""
    with engine.begin() as connection:
        source_id, ledger_id = _record(connection, ref)
        others = [
            f"{system}:{external_id}"
            for system, external_id in connection.execute(
                select(_SOURCE.c.system, _SOURCE.c.external_id)
                .join(_LINK, _LINK.c.source_customer_id == _SOURCE.c.id)
                .where(
                    _LINK.c.ledger_customer_id == ledger_id,
                    _SOURCE.c.id != source_id,
                    _SOURCE.c.deleted.is_(False),
                )
                .order_by(_SOURCE.c.id)
            )
        ]
        if ledger_id is None or not others:
            raise AdminError(f"{ref} is a customer of its own already; nothing to split")
        log_id = _log(connection, actor, UNMERGE, (ref, *others), reason, now)
        for other in others:
            _revoke_between(connection, ALWAYS, ref, other, now)
            _rule(connection, NEVER, ref, other, log_id, now)
    return log_id


def undo(engine: Engine, log_id: int, actor: str, now: datetime) -> LogEntry:
    """Revoke the rules an entry wrote; the next cycle puts things back as the model sees them."""
    with engine.begin() as connection:
        row = connection.execute(select(_LOG).where(_LOG.c.id == log_id)).first()
        if row is None:
            raise AdminError(f"no merge-log entry {log_id}; `clm-sync merge-log` lists them")
        if row.undone_at is not None:
            raise AdminError(f"entry {log_id} was undone already, by {row.undone_by}")
        connection.execute(
            update(_RULE)
            .where(_RULE.c.log_id == log_id, _RULE.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        connection.execute(
            update(_LOG).where(_LOG.c.id == log_id).values(undone_at=now, undone_by=actor)
        )
        return LogEntry(*connection.execute(select(_LOG).where(_LOG.c.id == log_id)).one())


def merge_log(engine: Engine, limit: int = 50) -> list[LogEntry]:
    """The newest entries first."""
    with engine.connect() as connection:
        rows = connection.execute(select(_LOG).order_by(_LOG.c.id.desc()).limit(limit))
        return [LogEntry(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class ReviewPair:
    record_a: str
    record_b: str
    probability: float
    name_a: str
    name_b: str


def review_queue(engine: Engine, config: ReconcileConfig, limit: int = 50) -> list[ReviewPair]:
    """Pairs in the uncertain band (or above it but held apart as two people) that are not one
    customer and that no rule decided yet, most likely first."""
    left = _SOURCE.alias("left_record")
    right = _SOURCE.alias("right_record")
    left_link = _LINK.alias("left_link")
    right_link = _LINK.alias("right_link")
    with engine.connect() as connection:
        ruled = {
            frozenset((a, b))
            for a, b in connection.execute(
                select(_RULE.c.record_a, _RULE.c.record_b).where(_RULE.c.revoked_at.is_(None))
            )
        }
        rows = connection.execute(
            select(
                left.c.system,
                left.c.external_id,
                left.c.name,
                right.c.system,
                right.c.external_id,
                right.c.name,
                _PAIR.c.probability,
            )
            .join(left, left.c.id == _PAIR.c.source_a)
            .join(right, right.c.id == _PAIR.c.source_b)
            .join(left_link, left_link.c.source_customer_id == left.c.id)
            .join(right_link, right_link.c.source_customer_id == right.c.id)
            .where(
                _PAIR.c.probability >= config.review_threshold,
                (_PAIR.c.probability < config.link_threshold) | _PAIR.c.two_people,
                left.c.deleted.is_(False),
                right.c.deleted.is_(False),
                left_link.c.ledger_customer_id != right_link.c.ledger_customer_id,
            )
            .order_by(_PAIR.c.probability.desc(), _PAIR.c.source_a, _PAIR.c.source_b)
        )
        queue: list[ReviewPair] = []
        for sys_a, ext_a, name_a, sys_b, ext_b, name_b, probability in rows:
            a, b = f"{sys_a}:{ext_a}", f"{sys_b}:{ext_b}"
            if frozenset((a, b)) in ruled:
                continue
            queue.append(ReviewPair(a, b, probability, name_a or "", name_b or ""))
            if len(queue) >= limit:
                break
        return queue


def review_decision(
    engine: Engine, a: str, b: str, *, accept: bool, actor: str, reason: str | None, now: datetime
) -> int:
    """Accepting a reviewed pair writes an always-merge rule, rejecting a never-merge one."""
    return _decide(
        engine,
        a,
        b,
        same=accept,
        action=ACCEPT if accept else REJECT,
        actor=actor,
        reason=reason,
        now=now,
    )


@dataclass(frozen=True, slots=True)
class PairReport:
    explanation: model.Explanation
    same_customer: bool
    rule_a: str | None
    rule_b: str | None


def explain_pair(engine: Engine, a: str, b: str) -> PairReport:
    """The model's view of two records (the stored model; the built-in one before any
    training), and whether the ledger holds them as one customer."""
    import pandas as pd

    with engine.connect() as connection:
        id_a, ledger_a = _record(connection, a)
        id_b, ledger_b = _record(connection, b)
        stored = load_model(connection)
        stored_frame = features_frame(connection)
        pair = model.features_frame(current_features(connection, [id_a, id_b]))
        rules: dict[int, str] = dict(
            connection.execute(
                select(_LINK.c.source_customer_id, _LINK.c.rule).where(
                    _LINK.c.source_customer_id.in_([id_a, id_b])
                )
            ).all()
        )
    settings = stored[1] if stored is not None else model.default_settings()
    others = stored_frame[~stored_frame["unique_id"].isin([id_a, id_b])]
    frame = pd.concat([others, pair], ignore_index=True) if len(others) else pair
    explanation = model.explain(frame, settings, id_a, id_b)
    same = ledger_a is not None and ledger_a == ledger_b
    return PairReport(explanation, same, rules.get(id_a), rules.get(id_b))
