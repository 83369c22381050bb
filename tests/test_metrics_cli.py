"""`clm-sync report` and `clm-sync baseline ...` as an admin runs them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import clm_sync, write_config
from tests.exports import write_exports


def test_report_baseline_create_and_compare(tmp_path: Path) -> None:
    write_exports(tmp_path / "exports", customers=30, transactions=200)
    config = str(write_config(tmp_path, "sqlite:///ledger.db"))
    assert clm_sync("once", "--config", config, "--as-of", "2025-01-01").returncode == 0

    shown = clm_sync("report", "--config", config, "--as-of", "2025-01-01")
    assert shown.returncode == 0, shown.stderr
    for heading in ("Business", "customers by stage", "cac by channel", "cohort retention"):
        assert heading in shown.stdout
    assert "too little data for predictions: 27 customers" in " ".join(shown.stdout.split())

    created = clm_sync("baseline", "create", "spring", "--config", config, "--as-of", "2025-01-01")
    assert created.returncode == 0, created.stderr
    assert (
        "Baseline 'spring' frozen as of 2025-01-01T00:00:00+00:00: 27 customers" in created.stdout
    )

    again = clm_sync("baseline", "create", "spring", "--config", config)
    assert again.returncode == 1
    assert "a baseline named 'spring' exists already" in again.stderr

    early = clm_sync("baseline", "compare", "spring", "--config", config, "--as-of", "2025-01-02")
    assert early.returncode == 1
    assert "too early to compare with the baseline of 2025-01-01" in " ".join(early.stderr.split())

    later = clm_sync("baseline", "compare", "spring", "--config", config, "--as-of", "2026-06-01")
    assert later.returncode == 0, later.stderr
    assert "average revenue per customer" in later.stdout
    assert "(final)" in later.stdout

    page = tmp_path / "report.html"
    args = ("--config", config, "--as-of", "2026-06-01", "--html", str(page))
    written = clm_sync("report", *args, "--baseline", "spring")
    assert written.returncode == 0, written.stderr
    text = page.read_text(encoding="utf-8")
    assert "<h2>Baseline comparison</h2>" in text and "<svg" in text
