"""Admin rules: always- and never-merge pairs from the YAML file and from the ledger.

Rules name records as ``SOURCE_NAME:EXTERNAL_ID``; they are resolved to source customer ids at
every cycle, so a rule written before a record arrives applies once it does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, select

from config.models import ReconcileConfig
from sync.ledger import MatchRule

_RULE = MatchRule.__table__  # type: ignore[attr-defined]

ALWAYS = "always"
NEVER = "never"


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    record_a: str
    record_b: str


def active_rules(connection: Connection, config: ReconcileConfig) -> list[Rule]:
    """The YAML rules, then the ledger's rules that are not revoked, oldest first."""
    rules = [Rule(ALWAYS, a, b) for a, b in config.always_merge]
    rules += [Rule(NEVER, a, b) for a, b in config.never_merge]
    rows = connection.execute(
        select(_RULE.c.kind, _RULE.c.record_a, _RULE.c.record_b)
        .where(_RULE.c.revoked_at.is_(None))
        .order_by(_RULE.c.id)
    )
    rules += [Rule(kind, a, b) for kind, a, b in rows]
    return rules


def resolve_rules(
    rules: Iterable[Rule], refs: dict[str, list[int]]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(always pairs, never pairs) of live source customer ids; unknown records are skipped."""
    always: list[tuple[int, int]] = []
    never: list[tuple[int, int]] = []
    for rule in rules:
        target = always if rule.kind == ALWAYS else never
        target.extend(
            (a, b) for a in refs.get(rule.record_a, []) for b in refs.get(rule.record_b, [])
        )
    return always, never
