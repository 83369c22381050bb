"""Febrl through the CSV source and reconcile, next to plain Splink models (prints figures).

Plain Splink is set up as in Splink's own Febrl examples, once on the columns a customer
record carries (what ``tests/test_febrl.py`` compares against) and once with date of birth and
social security number too, which no customer source has (a reference)::

    python bench/febrl.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.db import create_ledger_engine, ensure_current_schema  # noqa: E402
from tests.febrl import FEBRL3, FEBRL4, plain_splink, reconcile_files  # noqa: E402
from tests.identity_truth import Scores  # noqa: E402


def _line(label: str, scores: Scores, seconds: float) -> str:
    return (
        f"  {label:<42} precision {scores.precision:.4f}  recall {scores.recall:.4f}  "
        f"F1 {scores.f1:.4f}  cluster F1 {scores.cluster_f1:.4f}  ({seconds:.1f} s)"
    )


def main() -> None:
    for title, files in (("febrl3 (deduplication)", FEBRL3), ("febrl4 (two files)", FEBRL4)):
        print(title)
        with tempfile.TemporaryDirectory(prefix="clm-febrl-") as scratch:
            url = f"sqlite:///{Path(scratch) / 'ledger.db'}"
            engine = create_ledger_engine(url)
            ensure_current_schema(engine)
            started = time.perf_counter()
            result, ours = reconcile_files(engine, url, files, Path(scratch))
            print(_line("clm-sync reconcile (CSV source)", ours, time.perf_counter() - started))
            print(f"    {result.compared_pairs:,} pairs compared")
            engine.dispose()
        for label, full in (
            ("plain Splink, same columns", False),
            ("plain Splink + DOB + SSN", True),
        ):
            started = time.perf_counter()
            plain = plain_splink(files, full=full)
            print(_line(label, plain.scores, time.perf_counter() - started))
            print(f"    {plain.pairs:,} pairs scored at probability 0.2 or more")


if __name__ == "__main__":
    main()
