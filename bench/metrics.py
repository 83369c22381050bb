"""Benchmark of the metrics engine: full recompute, the model fit, peak memory.

    python bench/metrics.py --customers 1000000      # the target: 1M customers, ~10M sales
    python bench/metrics.py --customers 100000       # a quick run

Draws a business from known BG/NBD / Gamma-Gamma parameters (``sandbox.purchases``: about
ten sales per customer over three years), then times, on the pure engine (no database):

* the full recompute (``customer_metrics``: basis, comparisons, both fits, predictions);
* the second stage alone (``finish``), which is what every run pays on top of the touched
  customers' basis;
* the BG/NBD and Gamma-Gamma fits alone;

and prints the peak resident memory of the process. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clm_metrics import LedgerFrames, customer_metrics, customers_frame
from clm_metrics.basis import customer_basis
from clm_metrics.engine import finish
from clm_metrics.predict import fit_models, purchase_summary
from config.models import MetricsConfig
from sandbox.purchases import Population, draw_transactions

START = datetime(2022, 1, 1, tzinfo=UTC)
POPULATION = Population(r=2.0, alpha=50.0)
"""About ten sales per customer: acquired over two years, buying for three."""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def timed(label: str, action: object) -> object:
    began = time.perf_counter()
    result = action()  # type: ignore[operator]
    print(f"{label:<42} {time.perf_counter() - began:8.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    settings = MetricsConfig()
    as_of = START + timedelta(days=3 * 365)
    began = time.perf_counter()
    transactions = draw_transactions(POPULATION, args.customers, START, 730.0, 1095.0, args.seed)
    frames = LedgerFrames(customers_frame(range(1, args.customers + 1)), transactions)
    print(
        f"business: {args.customers:,} customers, {transactions.height:,} sales "
        f"(drawn in {time.perf_counter() - began:.1f} s; RSS {peak_rss_mb():,.0f} MB)"
    )

    result = timed(
        "full recompute (customer_metrics)", lambda: customer_metrics(frames, as_of, settings)
    )
    basis = timed("  basis of every customer", lambda: customer_basis(frames, as_of, settings))
    timed(
        "  second stage (finish) over every basis",
        lambda: finish(basis, frames.referrals, frames.spend, as_of, settings),  # type: ignore[arg-type]
    )
    table = result.table  # type: ignore[attr-defined]
    summary = purchase_summary(table, as_of)
    fits = timed("BG/NBD + Gamma-Gamma fit", lambda: fit_models(summary, settings.prediction))
    model = fits.bgnbd  # type: ignore[attr-defined]
    spend = fits.gamma_gamma  # type: ignore[attr-defined]
    print(
        f"BG/NBD per day: r={model.r:.4f} alpha={model.alpha:.3f} a={model.a:.4f} "
        f"b={model.b:.4f} (drawn: r={POPULATION.r} alpha={POPULATION.alpha} "
        f"a={POPULATION.a} b={POPULATION.b})"
    )
    print(
        f"Gamma-Gamma: p={spend.p:.3f} q={spend.q:.3f} gamma={spend.v:.3f} "
        f"(drawn: p={POPULATION.p} q={POPULATION.q} gamma={POPULATION.v})"
    )
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
