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

``--pymc`` also fits the same customers with pymc-marketing's ``BetaGeoModel`` (MAP, flat
priors, so its optimum is the maximum-likelihood one) and prints both parameter sets, their
largest relative difference and the ratio of times. pymc-marketing is not a dependency of
clm-sync; install it next to it for the benchmark only (``pip install pymc-marketing``).
"""

from __future__ import annotations

import argparse
import importlib
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clm_metrics import LedgerFrames, customer_metrics, customers_frame
from clm_metrics.basis import customer_basis
from clm_metrics.bgnbd import fit_bgnbd
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
    parser.add_argument("--pymc", action="store_true", help="compare with pymc-marketing")
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
    if args.pymc:
        compare_with_pymc(summary)


def compare_with_pymc(summary: Any) -> None:
    """Our BG/NBD fit against pymc-marketing's MAP with flat priors, same customers."""
    clv = importlib.import_module("pymc_marketing.clv")
    prior = importlib.import_module("pymc_extras.prior")
    pandas = importlib.import_module("pandas")
    x, t_x, big_t = (summary[name].to_numpy() for name in ("x", "t_x", "T"))
    began = time.perf_counter()
    ours = fit_bgnbd(x, t_x, big_t)
    our_time = time.perf_counter() - began
    data = pandas.DataFrame(
        {
            "customer_id": summary["customer_id"].to_numpy(),
            "frequency": x,
            "recency": t_x,
            "T": big_t,
        }
    )
    flat = {name: prior.Prior("HalfFlat") for name in ("r", "alpha", "a", "b")}
    began = time.perf_counter()
    model = clv.BetaGeoModel(data=data, model_config=flat)
    model.fit(method="map", progressbar=False)
    their_time = time.perf_counter() - began
    posterior = model.idata.posterior
    theirs = {name: float(posterior[name].values.ravel()[0]) for name in ("r", "alpha", "a", "b")}
    mine = {"r": ours.r, "alpha": ours.alpha, "a": ours.a, "b": ours.b}
    worst = max(abs(mine[name] / theirs[name] - 1) for name in mine)
    print(f"BG/NBD ours:          {' '.join(f'{k}={v:.5g}' for k, v in mine.items())}")
    print(f"BG/NBD pymc-marketing: {' '.join(f'{k}={v:.5g}' for k, v in theirs.items())}")
    print(f"largest relative difference {worst:.2e}")
    print(
        f"fit time: ours {our_time:.2f} s, pymc-marketing MAP {their_time:.2f} s "
        f"(ratio {their_time / our_time:.0f}x)"
    )


if __name__ == "__main__":
    main()
