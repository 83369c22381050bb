"""Clusters from links: connected components, guarded against chaining.

Links are joined strongest first: admin always-merge rules, then deterministic keys, then
model pairs by falling probability. A pair below ``guard_probability`` may add a record to a
cluster but may not join two clusters that each hold two or more records — one weak pair
must not fuse two customers. Never-merge rules hold two records apart whatever links them.
Links that were not applied are returned, so the review queue can show them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

OWN_RECORD = "own record"
ADMIN, SAME_ID, SAME_EMAIL, SAME_PHONE, MODEL = range(5)
"""Link priorities: lower is applied first."""


@dataclass(frozen=True, slots=True)
class Link:
    left: int
    right: int
    probability: float
    rule: str
    priority: int = MODEL


@dataclass(slots=True)
class Clusters:
    groups: dict[int, list[int]] = field(default_factory=dict)
    """Root record id to the ids of its records."""
    rules: dict[int, str] = field(default_factory=dict)
    """Record id to the rule that first joined it (``own record`` when alone)."""
    held_back: list[tuple[Link, str]] = field(default_factory=list)
    """Links not applied, with the reason (never-merge rule or chaining guard)."""


class _Sets:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.apart: dict[int, set[int]] = {}

    def add(self, item: int) -> None:
        if item not in self.parent:
            self.parent[item] = item
            self.size[item] = 1

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def kept_apart(self, a: int, b: int) -> bool:
        return any(self.find(other) == b for other in self.apart.get(a, ())) or any(
            self.find(other) == a for other in self.apart.get(b, ())
        )

    def union(self, a: int, b: int) -> None:
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size.pop(b)
        if b in self.apart:
            self.apart.setdefault(a, set()).update(self.apart.pop(b))


def cluster(
    ids: Iterable[int],
    links: Iterable[Link],
    never: Iterable[tuple[int, int]],
    guard_probability: float,
) -> Clusters:
    sets = _Sets()
    result = Clusters()
    for item in ids:
        sets.add(item)
        result.rules[item] = OWN_RECORD
    for a, b in never:
        if a in sets.parent and b in sets.parent:
            sets.apart.setdefault(a, set()).add(b)
            sets.apart.setdefault(b, set()).add(a)
    ordered = sorted(
        (link for link in links if link.left in sets.parent and link.right in sets.parent),
        key=lambda link: (link.priority, -link.probability, link.left, link.right),
    )
    for link in ordered:
        a, b = sets.find(link.left), sets.find(link.right)
        if a == b:
            continue
        if sets.kept_apart(a, b):
            result.held_back.append((link, "never-merge rule"))
            continue
        weak = link.priority == MODEL and link.probability < guard_probability
        if weak and sets.size[a] > 1 and sets.size[b] > 1:
            result.held_back.append((link, "would join two clusters on one weak pair"))
            continue
        sets.union(a, b)
        # The later record joined the earlier one: the first of a group stays its own.
        joined = max(link.left, link.right)
        if result.rules[joined] == OWN_RECORD:
            result.rules[joined] = link.rule
    for item in result.rules:
        result.groups.setdefault(sets.find(item), []).append(item)
    return result
