"""Who is who: link every live source customer to one ledger customer.

One pass, in one transaction:

1. **Featurize** the source customers whose content hash changed, and only those; their
   features are kept in ``match_features`` (:mod:`sync.identity.stored`).
2. **Compare** the new or changed records (all of them with ``full``) with every live record,
   through the Splink model (:mod:`sync.identity.model`): an incremental cycle hands Splink
   only those records and the stored ones sharing a blocking key with them. Scored pairs at
   or above the review threshold are kept in ``match_pair``. The model is the latest in
   ``match_model``; with none trained and enough records it trains first (and ``retrain``
   trains anew, which compares everything again).
3. **Link**: deterministic keys (same system and id, normalized e-mail, E.164 phone), admin
   rules (YAML and ``match_rule``) and the stored pairs at or above the link threshold are
   joined into clusters, guarded against chaining (:mod:`sync.identity.clusters`). A full
   run clusters everything; an incremental one only the connected components (over all
   those links) that hold a changed or removed record, a record named by an admin rule added
   or dropped since the last cycle, or a record linked with one of those before. A component
   is clustered from its own links alone, so the result is the full run's.
4. **Number**: each cluster keeps the ledger customer most of its records already belong to,
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

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)

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
from sync.identity.rules import Rule, active_rules, resolve_rules
from sync.identity.stored import (
    BATCH,
    Refreshed,
    candidates,
    features_frame,
    in_batches,
    key_neighbours,
    refresh_features,
)
from sync.identity.transactions import match_transactions
from sync.ledger import (
    CustomerLink,
    LedgerCustomer,
    LinkHistory,
    MatchFeatures,
    MatchModel,
    MatchPair,
    ReconcileState,
    SourceCustomerRow,
)

if TYPE_CHECKING:
    import pandas as pd

_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_CUSTOMER = LedgerCustomer.__table__  # type: ignore[attr-defined]
_MODEL = MatchModel.__table__  # type: ignore[attr-defined]
_PAIR = MatchPair.__table__  # type: ignore[attr-defined]
_FEATURES = MatchFeatures.__table__  # type: ignore[attr-defined]
_STATE = ReconcileState.__table__  # type: ignore[attr-defined]
_HISTORY = LinkHistory.__table__  # type: ignore[attr-defined]

MODEL_RULE = "model"
_WRITE_CHUNK = 50_000
"""Rows per executemany, so a full run over a large ledger never holds two copies of all."""
_KEY_ORDER = {"id": 0, "email": 1, "phone": 2}
_KEY_RULES = {
    "id": (SAME_ID, "same id"),
    "email": (SAME_EMAIL, "same email"),
    "phone": (SAME_PHONE, "same phone"),
}


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
    records: int,
    config: ReconcileConfig,
    now: datetime,
    retrain: bool,
    features: Callable[[], pd.DataFrame],
) -> tuple[int, dict[str, Any], bool]:
    """(model id, settings, trained now); trains when asked or when due."""
    stored = load_model(connection)
    trained_before = (
        stored is not None
        and connection.execute(
            select(_MODEL.c.records).where(_MODEL.c.id == stored[0])
        ).scalar_one()
        > 0
    )
    due = not trained_before and records >= config.min_training_records
    if retrain or due:
        settings = model.train(features())
        return store_model(connection, settings, records, now), settings, True
    if stored is None:
        settings = model.default_settings()
        return store_model(connection, settings, 0, now), settings, False
    return stored[0], stored[1], False


def _score_changed(
    connection: Connection, changed: Sequence[int], settings: dict[str, Any], threshold: float
) -> model.Scored:
    """Pairs involving a changed record, scored on the changed records and their candidates
    only; a model without its own term frequencies takes them from every record."""
    if not changed:
        return model.Scored(model.empty_pairs(), 0)
    if model.TERM_FREQUENCIES not in settings:
        return model.score_new(features_frame(connection), changed, settings, threshold)
    import pandas as pd

    new = features_frame(connection, changed)
    others = features_frame(connection, candidates(connection, new))
    frame = pd.concat([new, others], ignore_index=True) if len(others) else new
    return model.score_new(frame, changed, settings, threshold)


def _store_pairs(
    connection: Connection,
    compared: Sequence[int],
    scored: model.Scored,
    now: datetime,
    *,
    full: bool,
) -> None:
    """Replace the stored pairs of the compared (and the removed) records."""
    if full:
        connection.execute(delete(_PAIR))
    else:
        for batch in in_batches(compared):
            connection.execute(
                delete(_PAIR).where(or_(_PAIR.c.source_a.in_(batch), _PAIR.c.source_b.in_(batch)))
            )
    pairs = scored.pairs.drop_duplicates(["unique_id_l", "unique_id_r"])
    rows = [
        {
            "source_a": int(a),
            "source_b": int(b),
            "probability": float(p),
            "match_weight": float(w),
            "two_people": bool(two),
            "scored_at": now,
        }
        for a, b, p, w, two in pairs.itertuples(index=False, name=None)
    ]
    for start in range(0, len(rows), _WRITE_CHUNK):
        connection.execute(insert(_PAIR), rows[start : start + _WRITE_CHUNK])


def _key_links(keyed: Iterable[tuple[int, str, str]]) -> list[Link]:
    """Deterministic links: each record to the first one sharing its key.

    ``keyed`` holds (record, kind, value) for every record that has the key, in any order.
    """
    links: list[Link] = []
    firsts: dict[tuple[str, str], int] = {}
    for record, kind, value in sorted(keyed, key=lambda item: (item[0], _KEY_ORDER[item[1]])):
        first = firsts.setdefault((kind, value), record)
        if first != record:
            priority, rule = _KEY_RULES[kind]
            links.append(Link(first, record, 1.0, rule, priority))
    return links


def _shared_keys(connection: Connection) -> list[tuple[int, str, str]]:
    """(record, kind, value) of every live record whose id, e-mail or phone another shares."""
    keyed: list[tuple[int, str, str]] = []
    for kind in ("email", "phone"):
        column = _FEATURES.c[kind]
        shared = select(column).where(column.is_not(None)).group_by(column).having(func.count() > 1)
        keyed.extend(
            (source_id, kind, value)
            for source_id, value in connection.execute(
                select(_FEATURES.c.source_customer_id, column).where(column.in_(shared))
            )
        )
    pair = tuple_(_SOURCE.c.system, _SOURCE.c.external_id)
    shared_ids = (
        select(_SOURCE.c.system, _SOURCE.c.external_id)
        .where(_SOURCE.c.deleted.is_(False))
        .group_by(_SOURCE.c.system, _SOURCE.c.external_id)
        .having(func.count() > 1)
    )
    keyed.extend(
        (source_id, "id", f"{system}\x00{external_id}")
        for source_id, system, external_id in connection.execute(
            select(_SOURCE.c.id, _SOURCE.c.system, _SOURCE.c.external_id).where(
                _SOURCE.c.deleted.is_(False), pair.in_(shared_ids)
            )
        )
    )
    return keyed


def _keys_of(connection: Connection, ids: Sequence[int]) -> list[tuple[int, str, str]]:
    """(record, kind, value) of these records' ids, e-mails and phones."""
    keyed: list[tuple[int, str, str]] = []
    for batch in in_batches(ids):
        for source_id, email, phone in connection.execute(
            select(_FEATURES.c.source_customer_id, _FEATURES.c.email, _FEATURES.c.phone).where(
                _FEATURES.c.source_customer_id.in_(batch)
            )
        ):
            keyed += [(source_id, "email", email)] if email is not None else []
            keyed += [(source_id, "phone", phone)] if phone is not None else []
        keyed.extend(
            (source_id, "id", f"{system}\x00{external_id}")
            for source_id, system, external_id in connection.execute(
                select(_SOURCE.c.id, _SOURCE.c.system, _SOURCE.c.external_id).where(
                    _SOURCE.c.id.in_(batch)
                )
            )
        )
    return keyed


class _Sharing:
    """Finds the live records that share a key with given ones."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._streams: dict[str, list[str]] | None = None

    def streams(self) -> dict[str, list[str]]:
        """Each system's customer streams: the source key (system, stream, external_id) is
        what the unique index serves, so a same-id lookup names every stream."""
        if self._streams is None:
            self._streams = {}
            for system, stream in self.connection.execute(
                select(_SOURCE.c.system, _SOURCE.c.stream).distinct()
            ):
                self._streams.setdefault(system, []).append(stream)
        return self._streams

    def __call__(self, keyed: Iterable[tuple[int, str, str]]) -> set[int]:
        wanted: dict[str, set[str]] = {"email": set(), "phone": set(), "id": set()}
        for _, kind, value in keyed:
            wanted[kind].add(value)
        contacts = [(kind, value) for kind in ("email", "phone") for value in wanted[kind]]
        found = set(key_neighbours(self.connection, contacts))
        keys = []
        for value in sorted(wanted["id"]):
            system, _, external_id = value.partition("\x00")
            keys += [(system, stream, external_id) for stream in self.streams().get(system, [])]
        key = tuple_(_SOURCE.c.system, _SOURCE.c.stream, _SOURCE.c.external_id)
        for batch in in_batches(keys, BATCH // 3):
            found.update(
                self.connection.execute(
                    select(_SOURCE.c.id).where(_SOURCE.c.deleted.is_(False), key.in_(batch))
                ).scalars()
            )
        return found


def _model_links(
    connection: Connection, threshold: float, ids: Sequence[int] | None = None
) -> list[Link]:
    """Stored pairs at or above the link threshold: all of them, or those touching ``ids``."""
    query = select(_PAIR.c.source_a, _PAIR.c.source_b, _PAIR.c.probability).where(
        _PAIR.c.probability >= threshold, _PAIR.c.two_people.is_(False)
    )
    if ids is None:
        return [Link(a, b, p, MODEL_RULE) for a, b, p in connection.execute(query)]
    links: dict[tuple[int, int], Link] = {}
    for batch in in_batches(ids):
        for column in (_PAIR.c.source_a, _PAIR.c.source_b):
            for a, b, p in connection.execute(query.where(column.in_(batch))):
                links[a, b] = Link(a, b, p, MODEL_RULE)
    return list(links.values())


def _ledger_ids(connection: Connection, ids: Sequence[int] | None) -> dict[int, tuple[int, str]]:
    """The current (ledger customer, rule) of these source customers (None: of all)."""
    query = select(_LINK.c.source_customer_id, _LINK.c.ledger_customer_id, _LINK.c.rule)
    queries = (
        [query]
        if ids is None
        else [query.where(_LINK.c.source_customer_id.in_(batch)) for batch in in_batches(ids)]
    )
    return {
        source_id: (ledger_id, rule)
        for each in queries
        for source_id, ledger_id, rule in connection.execute(each)
    }


def _members(connection: Connection, ledger_ids: Iterable[int]) -> set[int]:
    """Source customers (live or not) linked to these ledger customers."""
    members: set[int] = set()
    for batch in in_batches(sorted(set(ledger_ids))):
        members.update(
            connection.execute(
                select(_LINK.c.source_customer_id).where(_LINK.c.ledger_customer_id.in_(batch))
            ).scalars()
        )
    return members


def _live(connection: Connection, ids: Iterable[int]) -> set[int]:
    """Those of ``ids`` that are live (have stored features)."""
    live: set[int] = set()
    for batch in in_batches(sorted(set(ids))):
        live.update(
            connection.execute(
                select(_FEATURES.c.source_customer_id).where(
                    _FEATURES.c.source_customer_id.in_(batch)
                )
            ).scalars()
        )
    return live


@dataclass(slots=True)
class _Region:
    """Live records to cluster again with every link that touches them."""

    ids: list[int]
    links: list[Link]


def _region(
    connection: Connection,
    sharing: _Sharing,
    seeds: set[int],
    threshold: float,
    always: Sequence[tuple[int, int]],
) -> _Region:
    """The connected components (over key, rule and model links) of the live ``seeds``.

    A component is clustered on its own links only, so clustering these components again
    gives what a full run gives; every other component is unchanged and so are its clusters.
    """
    partners: dict[int, list[int]] = {}
    for a, b in always:
        partners.setdefault(a, []).append(b)
        partners.setdefault(b, []).append(a)
    region: set[int] = set()
    links: dict[tuple[int, int], Link] = {}
    frontier = _live(connection, seeds)
    while frontier:
        region |= frontier
        batch = sorted(frontier)
        reached = sharing(_keys_of(connection, batch))
        for link in _model_links(connection, threshold, batch):
            links[link.left, link.right] = link
            reached.update((link.left, link.right))
        reached.update(other for item in batch for other in partners.get(item, []))
        frontier = _live(connection, reached - region)
    ids = sorted(region)
    keyed = _keys_of(connection, ids)
    rule_links = [Link(a, b, 1.0, "admin rule", ADMIN) for a, b in always if a in region]
    return _Region(ids, rule_links + _key_links(keyed) + list(links.values()))


def _resolve(connection: Connection, rules: Sequence[Rule]) -> dict[str, list[int]]:
    """Live source customer ids of the records the rules name (``system:external_id``)."""
    named = sorted({ref for rule in rules for ref in (rule.record_a, rule.record_b)})
    refs: dict[str, list[int]] = {}
    pair = tuple_(_SOURCE.c.system, _SOURCE.c.external_id)
    for batch in in_batches(named, BATCH // 2):
        keys = [tuple(ref.partition(":")[::2]) for ref in batch]
        for source_id, system, external_id in connection.execute(
            select(_SOURCE.c.id, _SOURCE.c.system, _SOURCE.c.external_id)
            .where(_SOURCE.c.deleted.is_(False), pair.in_(keys))
            .order_by(_SOURCE.c.id)
        ):
            refs.setdefault(f"{system}:{external_id}", []).append(source_id)
    return refs


def _changed_region(
    connection: Connection,
    refreshed: Refreshed,
    old: Sequence[Link],
    rules_changed: Sequence[Rule],
    always: Sequence[tuple[int, int]],
    threshold: float,
) -> _Region:
    """The components to cluster again after these changes: those of the changed records,
    of the records the changed and removed ones were linked with before (``old`` model
    links, the keys they had, the same id, their customers' other records) and of the
    records a rule added or dropped since the last cycle names."""
    named = _resolve(connection, rules_changed)
    seeds = {*refreshed.changed, *refreshed.removed}
    seeds.update(i for ref_ids in named.values() for i in ref_ids)
    seeds.update(i for link in old for i in (link.left, link.right))
    sharing = _Sharing(connection)
    seeds |= sharing([(0, kind, value) for kind, value in refreshed.old_keys])
    seeds |= sharing(_keys_of(connection, refreshed.removed))
    before = _ledger_ids(connection, sorted(seeds))
    seeds |= _members(connection, (ledger_id for ledger_id, _ in before.values()))
    return _region(connection, sharing, seeds, threshold, always)


def _rules_applied(connection: Connection, rules: Sequence[Rule]) -> list[Rule]:
    """The rules added or dropped since the last cycle; remembers the current ones."""
    now = {(rule.kind, rule.record_a, rule.record_b) for rule in rules}
    stored = json.dumps(sorted(now))
    before = connection.execute(select(_STATE.c.rules_json).where(_STATE.c.id == 1)).scalar()
    if before is None:
        connection.execute(insert(_STATE), {"id": 1, "rules_json": stored})
        return list(rules)
    connection.execute(update(_STATE).where(_STATE.c.id == 1).values(rules_json=stored))
    earlier: set[tuple[str, str, str]] = {(k, a, b) for k, a, b in json.loads(before)}
    return [Rule(*ref) for ref in sorted(earlier ^ now)]


def _assign(
    groups: dict[int, list[int]],
    links: dict[int, int],
    history: dict[int, list[int]],
    taken: set[int],
) -> dict[int, int | None]:
    """Each group's ledger customer: the one most of its records already belong to.

    A ledger customer goes to one group only; when a group splits, the larger part keeps the
    id. A part left without one takes back the most recent earlier customer of its records
    that no group holds (``history``, newest first; ``taken``: held by groups not formed
    here), else gets a new one (``None`` here).
    """
    candidates: list[tuple[int, int, int]] = []
    for root, members in groups.items():
        counts = Counter(links[member] for member in members if member in links)
        candidates.extend((-count, ledger_id, root) for ledger_id, count in counts.items())
    assignment: dict[int, int | None] = dict.fromkeys(groups)
    used = set(taken)
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


def _retire_and_revive(
    connection: Connection, live: set[int], candidates: set[int] | None, now: datetime
) -> tuple[int, int]:
    """Retire ledger customers without live records; revive retired ones that have some again.

    ``candidates`` limits the ledger customers looked at (None: all of them).
    """
    query = select(_CUSTOMER.c.id, _CUSTOMER.c.retired_at)
    if candidates is None:
        rows = list(connection.execute(query))
    else:
        rows = []
        for batch in in_batches(sorted(candidates)):
            rows.extend(connection.execute(query.where(_CUSTOMER.c.id.in_(batch))))
    retire: list[int] = []
    revive: list[int] = []
    for ledger_id, retired_at in rows:
        if retired_at is None and ledger_id not in live:
            retire.append(ledger_id)
        elif retired_at is not None and ledger_id in live:
            revive.append(ledger_id)
    for ids, value in ((retire, now), (revive, None)):
        for batch in in_batches(ids):
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
    for start in range(0, len(inserts), _WRITE_CHUNK):
        connection.execute(insert(_LINK), inserts[start : start + _WRITE_CHUNK])
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


def _history(connection: Connection, ids: Sequence[int] | None) -> dict[int, list[int]]:
    """Earlier ledger customers of each source customer (of ``ids``, else all), newest first."""
    query = select(_HISTORY.c.source_customer_id, _HISTORY.c.ledger_customer_id).order_by(
        _HISTORY.c.id.desc()
    )
    batches = (
        [query]
        if ids is None
        else [query.where(_HISTORY.c.source_customer_id.in_(batch)) for batch in in_batches(ids)]
    )
    history: dict[int, list[int]] = {}
    for batch in batches:
        for source_id, ledger_id in connection.execute(batch):
            history.setdefault(source_id, []).append(ledger_id)
    return history


def _taken(connection: Connection, ledger_ids: set[int], region: set[int]) -> set[int]:
    """Those of ``ledger_ids`` that live records outside the region hold."""
    taken: set[int] = set()
    for batch in in_batches(sorted(ledger_ids)):
        for source_id, ledger_id in connection.execute(
            select(_LINK.c.source_customer_id, _LINK.c.ledger_customer_id)
            .join(_FEATURES, _FEATURES.c.source_customer_id == _LINK.c.source_customer_id)
            .where(_LINK.c.ledger_customer_id.in_(batch))
        ):
            if source_id not in region:
                taken.add(ledger_id)
    return taken


def reconcile(
    engine: Engine,
    now: datetime,
    config: ReconcileConfig | None = None,
    *,
    full: bool = False,
    retrain: bool = False,
) -> ReconcileResult:
    """Bring ``customer_link`` and ``ledger_customer`` in line with the live source records.

    Only new or changed source customers are compared, and only the clusters they (or a
    changed admin rule) touch are formed again, unless ``full`` (or ``retrain``, or a new
    model) asks for all of them.
    """
    config = config or ReconcileConfig()
    result = ReconcileResult()
    with engine.begin() as connection:
        refreshed = refresh_features(connection)
        records = connection.execute(select(func.count()).select_from(_FEATURES)).scalar_one()

        @cache
        def every_record() -> pd.DataFrame:
            return features_frame(connection)

        model_id, settings, trained = _current_model(
            connection, records, config, now, retrain, every_record
        )
        changed = refreshed.changed
        full = full or trained or len(changed) == records
        rules = active_rules(connection, config)
        rules_changed = _rules_applied(connection, rules)
        if full:
            scored = model.score_all(every_record(), settings, config.review_threshold)
            every_record.cache_clear()
            result.compared_records = records
        else:
            scored = _score_changed(connection, changed, settings, config.review_threshold)
            result.compared_records = len(changed)
        # Whom the changed and removed records were linked with before their pairs are
        # replaced: those components may have lost a link.
        old = (
            []
            if full
            else _model_links(connection, config.link_threshold, [*changed, *refreshed.removed])
        )
        _store_pairs(connection, [*changed, *refreshed.removed], scored, now, full=full)
        result.compared_pairs = scored.compared
        result.model_id, result.trained = model_id, trained
        del scored

        refs = _resolve(connection, rules)
        always, never = resolve_rules(rules, refs)
        if full:
            ids = list(
                connection.execute(
                    select(_FEATURES.c.source_customer_id).order_by(_FEATURES.c.source_customer_id)
                ).scalars()
            )
            links = [Link(a, b, 1.0, "admin rule", ADMIN) for a, b in always]
            links += _key_links(_shared_keys(connection))
            links += _model_links(connection, config.link_threshold)
            current = _ledger_ids(connection, None)
            history = _history(connection, None)
            taken: set[int] = set()
        else:
            region = _changed_region(
                connection, refreshed, old, rules_changed, always, config.link_threshold
            )
            ids, links = region.ids, region.links
            current = _ledger_ids(connection, ids)
            history = _history(connection, ids)
            earlier = {ledger_id for past in history.values() for ledger_id in past[:1]}
            taken = _taken(connection, earlier, set(ids))
        in_region = set(ids)
        clusters = cluster(
            ids,
            links,
            [(a, b) for a, b in never if a in in_region and b in in_region],
            guard_probability=config.guard_threshold,
        )
        result.held_back = len(clusters.held_back)
        assignment = _assign(
            clusters.groups,
            {source_id: ledger for source_id, (ledger, _) in current.items()},
            history,
            taken,
        )
        unassigned = sorted(root for root, ledger_id in assignment.items() if ledger_id is None)
        for root, created_id in zip(
            unassigned, _create_customers(connection, len(unassigned), now), strict=True
        ):
            assignment[root] = created_id
        result.new_customers = len(unassigned)
        result.links_changed = _write_links(connection, clusters, assignment, current, now)
        live_ids = {ledger_id for ledger_id in assignment.values() if ledger_id is not None}
        looked_at = None
        if not full:
            dropped = _ledger_ids(connection, refreshed.removed)
            looked_at = live_ids | {ledger for ledger, _ in [*current.values(), *dropped.values()]}
        result.retired, result.revived = _retire_and_revive(connection, live_ids, looked_at, now)
        result.source_customers = records
        result.ledger_customers = connection.execute(
            select(func.count()).select_from(_CUSTOMER).where(_CUSTOMER.c.retired_at.is_(None))
        ).scalar_one()
        result.transactions_matched = match_transactions(connection, config, now)
    return result
