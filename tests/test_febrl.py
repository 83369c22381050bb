"""Febrl through the CSV source: reconcile is at least as good as a plain Splink model set up
as in Splink's own Febrl examples, on the same columns (tests/febrl.py says which)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from sync.db import create_ledger_engine, ensure_current_schema
from tests.febrl import FEBRL3, FEBRL4, plain_splink, reconcile_files


@pytest.mark.parametrize("files", [FEBRL3, FEBRL4], ids=["febrl3-dedupe", "febrl4-link"])
def test_reconcile_matches_a_plain_splink_model(files: Sequence[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = create_ledger_engine(url)
    ensure_current_schema(engine)
    result, ours = reconcile_files(engine, url, files, tmp_path)
    engine.dispose()
    plain = plain_splink(files).scores
    print(f"\n{files}: ours {ours}\n{files}: plain Splink {plain}")

    assert result.trained
    assert ours.precision >= plain.precision
    assert ours.recall >= plain.recall
    assert ours.f1 >= plain.f1
    assert ours.cluster_f1 >= plain.cluster_f1
