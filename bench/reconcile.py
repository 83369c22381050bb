"""Benchmark of reconcile: synthetic customers with known duplicates in three systems.

Prints, for a full run over N source records and for 1k new records added to the rest: wall
time, peak RSS of the process that reconciled, records and pairs compared, and pairwise
precision and recall (with cluster F1) against the ground truth; then a full run over all the
records, which must leave the incremental run's clusters as they are. Each reconcile runs in its own
process so its peak RSS is its own::

    python bench/reconcile.py --records 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.synthetic import BusinessSpec, write_csv_folder  # noqa: E402
from sync.db import create_ledger_engine, ensure_current_schema  # noqa: E402
from sync.reconcile import reconcile  # noqa: E402
from tests.conftest import ingest_records  # noqa: E402
from tests.identity_truth import customers_by_system, ledger_clusters, score, truth  # noqa: E402

RECORDS_PER_PERSON = 1.165
"""Customer records per person in the export with the bench's duplicate settings."""
SPEC = BusinessSpec(
    seed=3,
    household_share=0.05,
    duplicate_no_address_share=0.3,
    duplicate_moved_share=0.15,
    # Few sales per person: the bench is about customers, and the export is faster.
    alpha=400.0,
)


def _peak_kib() -> int:
    """This process's peak RSS. On Linux ``ru_maxrss`` survives fork and exec, so a child
    would report its parent's peak (the export and ingest) when that is higher; ``VmHWM``
    is the child's own."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reconcile_child(url: str, full: bool) -> None:
    engine = create_ledger_engine(url)
    started = time.perf_counter()
    result = reconcile(engine, datetime.now(UTC), full=full)
    wall = time.perf_counter() - started
    print(json.dumps({"wall_s": wall, "peak_rss_mib": _peak_kib() / 1024, **asdict(result)}))


def _timed_reconcile(url: str, *, full: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", url] + (["--full"] if full else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _line(label: str, figures: dict[str, float]) -> str:
    return (
        f"{label}: {figures['wall_s']:.1f} s, peak RSS {figures['peak_rss_mib']:.0f} MiB, "
        f"{figures['compared_records']:,} records compared in {figures['compared_pairs']:,} "
        f"pairs, {figures['source_customers']:,} records -> "
        f"{figures['ledger_customers']:,} customers"
        + (" (model trained)" if figures["trained"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1_000, help="Records added at the end.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _reconcile_child(args.child, args.full)
        return

    with tempfile.TemporaryDirectory(prefix="clm-bench-") as scratch:
        folder = Path(scratch) / "export"
        started = time.perf_counter()
        spec = replace(SPEC, customers=round(args.records / RECORDS_PER_PERSON))
        summary = write_csv_folder(spec, folder)
        print(
            f"export: {summary.customers:,} customer records of {summary.persons:,} persons "
            f"({summary.duplicate_records:,} duplicates) in {time.perf_counter() - started:.0f} s"
        )
        url = f"sqlite:///{Path(scratch) / 'ledger.db'}"
        engine = create_ledger_engine(url)
        ensure_current_schema(engine)
        by_system = customers_by_system(folder)
        first_new = summary.customers - args.new + 1

        started = time.perf_counter()
        for system, records in by_system.items():
            ingest_records(
                engine, system, [r for r in records if int(r.external_id[1:]) < first_new]
            )
        print(f"ingest of {first_new - 1:,} records: {time.perf_counter() - started:.0f} s")
        full = _timed_reconcile(url, full=True)
        print(_line(f"full run over {first_new - 1:,} records", full))

        for system, records in by_system.items():
            ingest_records(
                engine, system, [r for r in records if int(r.external_id[1:]) >= first_new]
            )
        added = _timed_reconcile(url, full=False)
        print(_line(f"{args.new:,} new records into {first_new - 1:,}", added))

        incremental = ledger_clusters(engine)
        again = _timed_reconcile(url, full=True)
        same = ledger_clusters(engine) == incremental
        print(
            _line("full run over the same records", again)
            + f"; {again['links_changed']:,} links changed: "
            + ("same clusters as the incremental run" if same else "CLUSTERS DIFFER")
        )

        scores = score(incremental, truth(folder))
        print(
            f"accuracy over {summary.customers:,} records: precision {scores.precision:.4f}, "
            f"recall {scores.recall:.4f}, cluster F1 {scores.cluster_f1:.4f} "
            f"({scores.found_pairs:,} pairs linked, {scores.true_pairs:,} true)"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
