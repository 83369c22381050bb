"""The notes block: the user's text outside the markers survives byte for byte."""

from __future__ import annotations

import pytest

from connectors.notes_block import BEGIN, END, SHORTENED, NotesTooLong, split_notes, with_block

USER_TEXTS = [
    "",
    "Met at the fair.",
    "Trailing blank lines\n\n",
    "\n\n",
    "Ünïcödé 😀 and CRLF\r\nline two\r\n",
    "tabs\tand  double  spaces   ",
]


@pytest.mark.parametrize("user", USER_TEXTS)
def test_rewriting_the_block_never_touches_the_users_text(user: str) -> None:
    first = with_block(user, ["Revenue: 10.00", "Stage: new"]).text
    second = with_block(first, ["Revenue: 25.00", "Stage: active", "Orders: 2"]).text
    removed = with_block(second, []).text

    assert first.startswith(user) and BEGIN in first
    assert split_notes(second).user_text == user
    assert "Revenue: 10.00" not in second and "Orders: 2" in second
    assert removed == user


def test_text_typed_after_the_block_stays_after_it() -> None:
    written = with_block("Before.", ["Stage: new"]).text + "\nAdded later by hand."

    updated = with_block(written, ["Stage: lost"]).text

    assert updated.startswith("Before.\n\n" + BEGIN)
    assert updated.endswith(END + "\nAdded later by hand.")
    assert "Stage: lost" in updated


def test_an_orphaned_begin_marker_is_left_to_the_user() -> None:
    broken = f"Notes.\n{BEGIN}\nRevenue: 1\n(user deleted the end marker)"

    updated = with_block(broken, ["Revenue: 2"]).text

    assert updated.startswith(broken)
    assert split_notes(updated).user_text == broken


def test_a_limit_shortens_the_block_never_the_users_text() -> None:
    user = "x" * 800
    lines = [f"Figure {n}: {'9' * 20}" for n in range(10)]

    update = with_block(user, lines, limit=1024)

    assert len(update.text) <= 1024
    assert update.text.startswith(user)
    assert SHORTENED in update.text and update.omitted > 0
    assert not update.fits


def test_no_room_at_all_is_an_error_that_says_what_to_do() -> None:
    with pytest.raises(NotesTooLong, match="no room for the clm-sync block"):
        with_block("y" * 1020, ["Revenue: 1"], limit=1024)
