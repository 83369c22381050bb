"""Who is who, first version: link source customers that share an e-mail or a phone.

Every live source customer belongs to exactly one ledger customer. Records are grouped by
the deterministic keys (normalized e-mail, E.164 phone) with a union-find; each group keeps
the ledger customer most of its records were already linked to, so ledger ids are stable
and nothing is rewritten when nothing changed. A ledger customer left without live records
is retired, not deleted. The reconciliation issue replaces this with the full engine
(probabilistic matching, admin rules, merge log).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from sync.ledger import CustomerLink, LedgerCustomer, SourceCustomerRow

_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]
_CUSTOMER = LedgerCustomer.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class ReconcileResult:
    source_customers: int = 0
    ledger_customers: int = 0
    new_customers: int = 0
    links_changed: int = 0
    retired: int = 0
    revived: int = 0


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, item: int) -> int:
        parent = self.parent.setdefault(item, item)
        if parent != item:
            root = self.find(parent)
            self.parent[item] = root
            return root
        return item

    def union(self, first: int, second: int) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


@dataclass(frozen=True, slots=True)
class _Member:
    source_id: int
    rule: str


def _groups(rows: Iterable[tuple[int, str | None, str | None]]) -> dict[int, list[_Member]]:
    """Source customers grouped by shared e-mail or phone, with the rule that joined each."""
    sets = _UnionFind()
    first_by_key: dict[tuple[str, str], int] = {}
    rules: dict[int, str] = {}
    for source_id, email, phone in rows:
        sets.find(source_id)
        rules[source_id] = "own record"
        for key in (("email", email), ("phone", phone)):
            if key[1] is None:
                continue
            other = first_by_key.setdefault((key[0], key[1]), source_id)
            if other != source_id:
                sets.union(source_id, other)
                if rules[source_id] == "own record":
                    rules[source_id] = f"same {key[0]}"
    groups: dict[int, list[_Member]] = {}
    for source_id, rule in rules.items():
        groups.setdefault(sets.find(source_id), []).append(_Member(source_id, rule))
    return groups


def _assign(
    groups: dict[int, list[_Member]], links: dict[int, tuple[int, str]]
) -> dict[int, int | None]:
    """Each group's ledger customer: the one most of its records already belong to.

    A ledger customer goes to one group only; when a group splits, the larger part keeps the
    id and the rest become new customers (``None`` here).
    """
    candidates: list[tuple[int, int, int]] = []
    for root, members in groups.items():
        counts = Counter(
            links[member.source_id][0] for member in members if member.source_id in links
        )
        candidates.extend((-count, ledger_id, root) for ledger_id, count in counts.items())
    assignment: dict[int, int | None] = dict.fromkeys(groups)
    used: set[int] = set()
    for _, ledger_id, root in sorted(candidates):
        if assignment[root] is None and ledger_id not in used:
            assignment[root] = ledger_id
            used.add(ledger_id)
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
        for start in range(0, len(ids), 900):
            connection.execute(
                update(_CUSTOMER)
                .where(_CUSTOMER.c.id.in_(ids[start : start + 900]))
                .values(retired_at=value)
            )
    return len(retire), len(revive)


def reconcile(engine: Engine, now: datetime) -> ReconcileResult:
    """Bring ``customer_link`` and ``ledger_customer`` in line with the live source records."""
    result = ReconcileResult()
    with engine.begin() as connection:
        rows = connection.execute(
            select(_SOURCE.c.id, _SOURCE.c.email_normalized, _SOURCE.c.phone_e164)
            .where(_SOURCE.c.deleted.is_(False))
            .order_by(_SOURCE.c.id)
        ).tuples()
        groups = _groups(rows)
        links: dict[int, tuple[int, str]] = {
            source_id: (ledger_id, rule)
            for source_id, ledger_id, rule in connection.execute(
                select(_LINK.c.source_customer_id, _LINK.c.ledger_customer_id, _LINK.c.rule)
            ).tuples()
        }
        assignment = _assign(groups, links)
        unassigned = sorted(root for root, ledger_id in assignment.items() if ledger_id is None)
        for root, created_id in zip(
            unassigned, _create_customers(connection, len(unassigned), now), strict=True
        ):
            assignment[root] = created_id
        result.new_customers = len(unassigned)
        inserts: list[dict[str, object]] = []
        changes: list[dict[str, object]] = []
        for root, ledger_id in assignment.items():
            for member in groups[root]:
                current = links.get(member.source_id)
                if current is None:
                    inserts.append(
                        {
                            "source_customer_id": member.source_id,
                            "ledger_customer_id": ledger_id,
                            "rule": member.rule,
                            "linked_at": now,
                        }
                    )
                elif current != (ledger_id, member.rule):
                    changes.append(
                        {
                            "key": member.source_id,
                            "ledger_id": ledger_id,
                            "rule": member.rule,
                            "linked_at": now,
                        }
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
        live = {ledger_id for ledger_id in assignment.values() if ledger_id is not None}
        result.retired, result.revived = _retire_and_revive(connection, live, now)
        result.links_changed = len(inserts) + len(changes)
        result.source_customers = sum(len(members) for members in groups.values())
        result.ledger_customers = len(groups)
    return result
