"""What to write onto one Outlook contact, whatever the back-end: properties, notes, category.

Both writers read the contact first (its notes, categories and our properties), then ask
:func:`plan_change` what to send; only the transport differs (a Graph ``PATCH`` in a JSON
batch, an EWS ``UpdateItem``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from config.models import OutlookPushConfig, StageCategories
from connectors.notes_block import split_notes, with_block
from connectors.records import FieldUpdate

NOTES_LIMIT = None
"""Neither Graph nor EWS documents a length limit for a contact's notes."""


def block_values(block: str | None) -> dict[str, str]:
    """The ``field: value`` lines of a notes block we wrote earlier."""
    values: dict[str, str] = {}
    for line in (block or "").splitlines()[1:-1]:
        name, separator, value = line.partition(": ")
        if separator:
            values[name] = value
    return values


@dataclass(frozen=True, slots=True)
class ContactNow:
    """A contact as read before writing."""

    notes: str = ""
    categories: Sequence[str] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    """Our named properties already on it, by field name."""


@dataclass(frozen=True, slots=True)
class ContactChange:
    properties: dict[str, str]
    notes: str | None
    """The new notes, or None when they stay as they are."""
    categories: list[str] | None
    """The new categories, or None when they stay as they are."""


class ChangePlanner:
    """Turns a contact's changed values into the three kinds of writes the YAML turned on."""

    def __init__(self, push: OutlookPushConfig) -> None:
        self.push = push
        self.fields = [mapping.field for mapping in push.fields]
        rule = push.categories
        self.categories: StageCategories | None = (
            rule if rule is not None and rule.enabled else None
        )
        self.managed = {c.name for c in rule.values.values()} if rule is not None else set()

    @property
    def needs_read(self) -> bool:
        """Whether the contact must be read first (to keep the user's notes and categories)."""
        return self.push.notes or self.categories is not None

    def plan(self, now: ContactNow, updates: Sequence[FieldUpdate]) -> ContactChange:
        """Raises :class:`connectors.notes_block.NotesTooLong` when the block does not fit."""
        changed = {update.field: update.value for update in updates}
        notes = None
        if self.push.notes:
            known = block_values(split_notes(now.notes).block)
            known |= {name: value for name, value in now.properties.items() if name in self.fields}
            known |= changed
            lines = [f"{name}: {known[name]}" for name in self.fields if known.get(name)]
            updated = with_block(now.notes, lines, NOTES_LIMIT).text
            notes = updated if updated != now.notes else None
        categories = None
        if self.categories is not None and self.categories.field in changed:
            chosen = self.categories.values.get(changed[self.categories.field])
            mine = [c for c in now.categories if c not in self.managed]
            categories = [*mine, chosen.name] if chosen else mine
        return ContactChange(changed if self.push.properties else {}, notes, categories)
