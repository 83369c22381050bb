"""Who is who: link every live source customer to one ledger customer.

One pass, in one transaction:

1. **Compare** the source customers that are new or changed since they were last compared
   (all of them with ``full``) with every live record, through the Splink model
   (:mod:`sync.identity.model`); scored pairs at or above the review threshold are kept in
   ``match_pair``. The model is the latest in ``match_model``; with none trained and enough
   records it trains first (and ``retrain`` trains anew, which compares everything again).
2. **Link**: deterministic keys (same system and id, normalized e-mail, E.164 phone), admin
   rules (YAML and ``match_rule``) and the stored pairs at or above the link threshold are
   joined into clusters, guarded against chaining (:mod:`sync.identity.clusters`).
3. **Number**: each cluster keeps the ledger customer most of its records already belong to,
   so ids are stable and nothing is rewritten when nothing changed; a split-off part takes
   back a customer id it had before (an undone merge restores the old ids), else a new one.
   A ledger customer left without live records is retired, not deleted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, or_, select, update

from config.models import ReconcileConfig
from sync.identity import model
from sync.identity.clusters import (
    ADMIN,
    SAME_EMAIL,
    SAME_ID,
    SAME_PHONE,
    Clusters,
    Link,
    cluster,
)
from sync.identity.features import CustomerInput, feature_rows
from sync.identity.rules import active_rules, resolve_rules
from sync.identity.transactions import match_transactions
from sync.ledger import (
    CustomerLink,
    LedgerCustomer,
    LinkHistory,
    MatchModel,
    MatchPair,
    MatchScored,
    SourceCustomerRow,
)

if TYPE_CHECKING:
    import pandas as pd

_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_CUSTOMER = LedgerCustomer.__table__  # type: ignore[attr-defined]
_MODEL = MatchModel.__table__  # type: ignore[attr-defined]
_PAIR = MatchPair.__table__  # type: ignore[attr-defined]
_SCORED = MatchScored.__table__  # type: ignore[attr-defined]
_HISTORY = LinkHistory.__table__  # type: ignore[attr-defined]

_BATCH = 900
MODEL_RULE = "model"
"""Ids per IN (...) list: below SQLite's old 999-parameter limit."""


@dataclass(slots=True)
class ReconcileResult:
    source_customers: int = 0
    ledger_customers: int = 0
    new_customers: int = 0
    links_changed: int = 0
    retired: int = 0
    revived: int = 0
    compared_records: int = 0
    """New or changed source customers compared with the ledger this time."""
    compared_pairs: int = 0
    """Candidate pairs the model scored."""
    model_id: int = 0
    trained: bool = False
    held_back: int = 0
    """Links not applied because of a never-merge rule or the chaining guard."""
    transactions_matched: int = 0


@dataclass(frozen=True, slots=True)
class LiveCustomer:
    id: int
    system: str
    external_id: str
    content_hash: str
    item: CustomerInput


def live_customers(connection: Connection) -> list[LiveCustomer]:
    rows = connection.execute(
        select(
            _SOURCE.c.id,
            _SOURCE.c.system,
            _SOURCE.c.external_id,
            _SOURCE.c.content_hash,
            _SOURCE.c.name,
            _SOURCE.c.first_name,
            _SOURCE.c.last_name,
            _SOURCE.c.company,
            _SOURCE.c.email_normalized,
            _SOURCE.c.phone_e164,
            _SOURCE.c.address_line1,
            _SOURCE.c.postcode,
            _SOURCE.c.city,
        )
        .where(_SOURCE.c.deleted.is_(False))
        .order_by(_SOURCE.c.id)
    ).tuples()
    return [
        LiveCustomer(row[0], row[1], row[2], row[3], CustomerInput(row[0], *row[4:]))
        for row in rows
    ]


def load_model(connection: Connection) -> tuple[int, dict[str, Any]] | None:
    """The latest stored model: its id and Splink settings."""
    row = connection.execute(
        select(_MODEL.c.id, _MODEL.c.settings_json).order_by(_MODEL.c.id.desc()).limit(1)
    ).first()
    return None if row is None else (row[0], json.loads(row[1]))


def store_model(
    connection: Connection, settings: dict[str, Any], records: int, now: datetime
) -> int:
    created = connection.execute(
        insert(_MODEL).returning(_MODEL.c.id),
        {"trained_at": now, "records": records, "settings_json": json.dumps(settings)},
    )
    return int(created.scalar_one())


def _current_model(
    connection: Connection,
    live: Sequence[LiveCustomer],
    config: ReconcileConfig,
    now: datetime,
    retrain: bool,
    features: Callable[[], pd.DataFrame],
) -> tuple[int, dict[str, Any], bool]:
    """(model id, settings, trained now); trains when asked or when due."""
    frame_rows = len(live)
    stored = load_model(connection)
    trained_before = (
        stored is not None
        and connection.execute(
            select(_MODEL.c.records).where(_MODEL.c.id == stored[0])
        ).scalar_one()
        > 0
    )
    due = not trained_before and frame_rows >= config.min_training_records
    if retrain or due:
        settings = model.train(features())
        return store_model(connection, settings, frame_rows, now), settings, True
    if stored is None:
        settings = model.default_settings()
        return store_model(connection, settings, 0, now), settings, False
    return stored[0], stored[1], False


def _changed(connection: Connection, live: Sequence[LiveCustomer], model_id: int) -> list[int]:
    scored = {
        source_id: (content_hash, scored_model)
        for source_id, content_hash, scored_model in connection.execute(
            select(_SCORED.c.source_customer_id, _SCORED.c.content_hash, _SCORED.c.model_id)
        ).tuples()
    }
    return [r.id for r in live if scored.get(r.id) != (r.content_hash, model_id)]


def _in_batches(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _BATCH):
        yield list(ids[start : start + _BATCH])


def _store_pairs(
    connection: Connection,
    changed: Sequence[int],
    live: Sequence[LiveCustomer],
    scored: model.Scored,
    model_id: int,
    now: datetime,
    *,
    full: bool,
) -> None:
    """Replace the stored pairs of the compared records, and remember what was compared."""
    if full:
        connection.execute(delete(_PAIR))
        connection.execute(delete(_SCORED))
    else:
        for batch in _in_batches(changed):
            connection.execute(
                delete(_PAIR).where(or_(_PAIR.c.source_a.in_(batch), _PAIR.c.source_b.in_(batch)))
            )
            connection.execute(delete(_SCORED).where(_SCORED.c.source_customer_id.in_(batch)))
    pairs = [
        {
            "source_a": int(a),
            "source_b": int(b),
            "probability": float(p),
            "match_weight": float(w),
            "two_people": bool(two),
            "scored_at": now,
        }
        for a, b, p, w, two in scored.pairs.drop_duplicates(
            ["unique_id_l", "unique_id_r"]
        ).itertuples(index=False, name=None)
    ]
    if pairs:
        connection.execute(insert(_PAIR), pairs)
    hashes = {r.id: r.content_hash for r in live}
    if changed:
        connection.execute(
            insert(_SCORED),
            [
                {"source_customer_id": i, "content_hash": hashes[i], "model_id": model_id}
                for i in changed
            ],
        )


def _key_links(live: Sequence[LiveCustomer]) -> list[Link]:
    """Deterministic links: each record to the first one sharing its key."""
    links: list[Link] = []
    firsts: dict[tuple[str, str], int] = {}
    for record in live:
        keys = (
            ("id", f"{record.system}\x00{record.external_id}", SAME_ID, "same id"),
            ("email", record.item.email, SAME_EMAIL, "same email"),
            ("phone", record.item.phone, SAME_PHONE, "same phone"),
        )
        for kind, value, priority, rule in keys:
            if value is None:
                continue
            first = firsts.setdefault((kind, value), record.id)
            if first != record.id:
                links.append(Link(first, record.id, 1.0, rule, priority))
    return links


def _model_links(connection: Connection, threshold: float) -> list[Link]:
    rows = connection.execute(
        select(_PAIR.c.source_a, _PAIR.c.source_b, _PAIR.c.probability).where(
            _PAIR.c.probability >= threshold, _PAIR.c.two_people.is_(False)
        )
    ).tuples()
    return [Link(a, b, p, MODEL_RULE) for a, b, p in rows]


def _assign(
    groups: dict[int, list[int]], links: dict[int, int], history: dict[int, list[int]]
) -> dict[int, int | None]:
    """Each group's ledger customer: the one most of its records already belong to.

    A ledger customer goes to one group only; when a group splits, the larger part keeps the
    id. A part left without one takes back the most recent earlier customer of its records
    that no group holds (``history``, newest first), else gets a new one (``None`` here).
    """
    candidates: list[tuple[int, int, int]] = []
    for root, members in groups.items():
        counts = Counter(links[member] for member in members if member in links)
        candidates.extend((-count, ledger_id, root) for ledger_id, count in counts.items())
    assignment: dict[int, int | None] = dict.fromkeys(groups)
    used: set[int] = set()
    for _, ledger_id, root in sorted(candidates):
        if assignment[root] is None and ledger_id not in used:
            assignment[root] = ledger_id
            used.add(ledger_id)
    for root in sorted(root for root, ledger_id in assignment.items() if ledger_id is None):
        earlier = Counter(
            ledger_id for member in groups[root] for ledger_id in history.get(member, [])[:1]
        )
        for ledger_id, _ in sorted(earlier.items(), key=lambda item: (-item[1], -item[0])):
            if ledger_id not in used:
                assignment[root] = ledger_id
                used.add(ledger_id)
                break
    return assignment


def _create_customers(connection: Connection, count: int, now: datetime) -> list[int]:
    if count == 0:
        return []
    created = connection.execute(
        insert(_CUSTOMER).returning(_CUSTOMER.c.id, sort_by_parameter_order=True),
        [{"created_at": now} for _ in range(count)],
    )
    return list(created.scalars())


def _retire_and_revive(connection: Connection, live: set[int], now: datetime) -> tuple[int, int]:
    """Retire ledger customers without live records; revive retired ones that have some again."""
    retire: list[int] = []
    revive: list[int] = []
    for ledger_id, retired_at in connection.execute(
        select(_CUSTOMER.c.id, _CUSTOMER.c.retired_at)
    ).tuples():
        if retired_at is None and ledger_id not in live:
            retire.append(ledger_id)
        elif retired_at is not None and ledger_id in live:
            revive.append(ledger_id)
    for ids, value in ((retire, now), (revive, None)):
        for batch in _in_batches(ids):
            connection.execute(
                update(_CUSTOMER).where(_CUSTOMER.c.id.in_(batch)).values(retired_at=value)
            )
    return len(retire), len(revive)


def _write_links(
    connection: Connection,
    clusters: Clusters,
    assignment: dict[int, int | None],
    links: dict[int, tuple[int, str]],
    now: datetime,
) -> int:
    inserts: list[dict[str, object]] = []
    changes: list[dict[str, object]] = []
    moved: list[dict[str, object]] = []
    for root, ledger_id in assignment.items():
        for member in clusters.groups[root]:
            rule = clusters.rules[member]
            current = links.get(member)
            if current is None:
                inserts.append(
                    {
                        "source_customer_id": member,
                        "ledger_customer_id": ledger_id,
                        "rule": rule,
                        "linked_at": now,
                    }
                )
            elif current != (ledger_id, rule):
                changes.append(
                    {"key": member, "ledger_id": ledger_id, "rule": rule, "linked_at": now}
                )
                if current[0] != ledger_id:
                    moved.append(
                        {"source_customer_id": member, "ledger_customer_id": current[0]}
                        | {"until": now}
                    )
    if inserts:
        connection.execute(insert(_LINK), inserts)
    if changes:
        connection.execute(
            update(_LINK)
            .where(_LINK.c.source_customer_id == bindparam("key"))
            .values(
                ledger_customer_id=bindparam("ledger_id"),
                rule=bindparam("rule"),
                linked_at=bindparam("linked_at"),
            ),
            changes,
        )
    if moved:
        connection.execute(insert(_HISTORY), moved)
    return len(inserts) + len(changes)


def _history(connection: Connection) -> dict[int, list[int]]:
    """Earlier ledger customers of each source customer, newest first."""
    history: dict[int, list[int]] = {}
    for source_id, ledger_id in connection.execute(
        select(_HISTORY.c.source_customer_id, _HISTORY.c.ledger_customer_id).order_by(
            _HISTORY.c.id.desc()
        )
    ).tuples():
        history.setdefault(source_id, []).append(ledger_id)
    return history


def reconcile(
    engine: Engine,
    now: datetime,
    config: ReconcileConfig | None = None,
    *,
    full: bool = False,
    retrain: bool = False,
) -> ReconcileResult:
    """Bring ``customer_link`` and ``ledger_customer`` in line with the live source records.

    Only new or changed source customers are compared unless ``full`` (or ``retrain``, or a
    new model) asks for all of them.
    """
    config = config or ReconcileConfig()
    result = ReconcileResult()
    with engine.begin() as connection:
        live = live_customers(connection)

        @cache
        def features() -> pd.DataFrame:
            return model.features_frame(feature_rows(r.item for r in live))

        model_id, settings, trained = _current_model(
            connection, live, config, now, retrain, features
        )
        changed = _changed(connection, live, model_id)
        full = full or trained or len(changed) == len(live)
        if full:
            changed = [r.id for r in live]
            scored = model.score_all(features(), settings, config.review_threshold)
        elif changed:
            scored = model.score_new(features(), changed, settings, config.review_threshold)
        else:
            scored = model.Scored(model.empty_pairs(), 0)
        _store_pairs(connection, changed, live, scored, model_id, now, full=full)
        result.compared_records, result.compared_pairs = len(changed), scored.compared
        result.model_id, result.trained = model_id, trained

        refs: dict[str, list[int]] = {}
        for record in live:
            refs.setdefault(f"{record.system}:{record.external_id}", []).append(record.id)
        always, never = resolve_rules(active_rules(connection, config), refs)
        links = [Link(a, b, 1.0, "admin rule", ADMIN) for a, b in always]
        links += _key_links(live)
        links += _model_links(connection, config.link_threshold)
        clusters = cluster(
            (r.id for r in live), links, never, guard_probability=config.guard_threshold
        )
        result.held_back = len(clusters.held_back)

        current: dict[int, tuple[int, str]] = {
            source_id: (ledger_id, rule)
            for source_id, ledger_id, rule in connection.execute(
                select(_LINK.c.source_customer_id, _LINK.c.ledger_customer_id, _LINK.c.rule)
            ).tuples()
        }
        assignment = _assign(
            clusters.groups,
            {source_id: ledger for source_id, (ledger, _) in current.items()},
            _history(connection),
        )
        unassigned = sorted(root for root, ledger_id in assignment.items() if ledger_id is None)
        for root, created_id in zip(
            unassigned, _create_customers(connection, len(unassigned), now), strict=True
        ):
            assignment[root] = created_id
        result.new_customers = len(unassigned)
        result.links_changed = _write_links(connection, clusters, assignment, current, now)
        live_ids = {ledger_id for ledger_id in assignment.values() if ledger_id is not None}
        result.retired, result.revived = _retire_and_revive(connection, live_ids, now)
        result.source_customers = len(live)
        result.ledger_customers = len(clusters.groups)
        result.transactions_matched = match_transactions(connection, config, now)
    return result
