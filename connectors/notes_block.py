"""A marked block of figures inside a free-text notes field, next to the user's own text.

QuickBooks customer notes and Outlook contact notes are typed by people; clm-sync may add its
summary there, but every character the user typed outside the markers must survive byte for
byte, however often the block is rewritten. The block sits at the end, separated from the
user's text by one blank line that belongs to the block::

    Met at the fair, prefers e-mail.            <- the user's text, untouched

    [clm-sync: begin - edits between the markers are overwritten]
    Lifetime revenue: 1234.50 USD
    Stage: active
    [clm-sync: end]

Text the user types after the end marker stays where it is. A field with a length limit gets
the block shortened line by line (with a marker line saying so), never the user's text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BEGIN = "[clm-sync: begin - edits between the markers are overwritten]"
END = "[clm-sync: end]"
SHORTENED = "(more figures in clm-sync)"
_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class SplitNotes:
    """A notes field cut at the block: the user's text before and after it."""

    before: str
    block: str | None
    after: str

    @property
    def user_text(self) -> str:
        return self.before + self.after


def split_notes(text: str | None) -> SplitNotes:
    """Find our block; without both markers in order, all of ``text`` is the user's.

    The last begin marker counts, so a block whose end marker the user deleted is left to the
    user (as text) rather than swallowing what follows it.
    """
    text = text or ""
    start = text.rfind(BEGIN)
    end = text.find(END, start + len(BEGIN)) if start >= 0 else -1
    if start < 0 or end < 0:
        return SplitNotes(text, None, "")
    before = text[:start]
    if before.endswith(_SEPARATOR):
        before = before[: -len(_SEPARATOR)]
    return SplitNotes(before, text[start : end + len(END)], text[end + len(END) :])


def user_text(text: str | None) -> str:
    """The notes without our block: what a connector reports as the customer's notes."""
    return split_notes(text).user_text


@dataclass(frozen=True, slots=True)
class NotesUpdate:
    """The new field value; ``omitted`` counts figure lines left out to fit the limit."""

    text: str
    omitted: int = 0

    @property
    def fits(self) -> bool:
        return self.omitted == 0


class NotesTooLong(ValueError):
    """The user's own text leaves no room for even a shortened block."""


def _block(lines: Sequence[str]) -> str:
    return "\n".join([BEGIN, *lines, END])


def with_block(text: str | None, lines: Sequence[str], limit: int | None = None) -> NotesUpdate:
    """``text`` with our block replaced (or added) to hold ``lines``, within ``limit`` chars.

    An empty ``lines`` removes the block. Raises :class:`NotesTooLong` when the user's text
    leaves no room for the markers and one line; the caller reports it and writes nothing.
    """
    parts = split_notes(text)
    if not lines:
        return NotesUpdate(parts.user_text)
    lines = [line.replace(BEGIN, "").replace(END, "") for line in lines]

    def render(block_lines: Sequence[str]) -> str:
        separator = _SEPARATOR if parts.before else ""
        return parts.before + separator + _block(block_lines) + parts.after

    full = render(lines)
    if limit is None or len(full) <= limit:
        return NotesUpdate(full)
    for keep in range(len(lines) - 1, 0, -1):
        shortened = render([*lines[:keep], SHORTENED])
        if len(shortened) <= limit:
            return NotesUpdate(shortened, len(lines) - keep)
    raise NotesTooLong(
        f"the notes hold {len(parts.user_text):,} characters of the user's own text; with the "
        f"limit of {limit:,} there is no room for the clm-sync block (shorten the notes, or "
        "turn the notes block off for this source)"
    )
