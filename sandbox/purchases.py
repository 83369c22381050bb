"""Purchase histories drawn from known BG/NBD and Gamma-Gamma parameters, vectorised.

:mod:`sandbox.synthetic` makes a realistic business person by person; this module makes large
populations fast (numpy, one loop per purchase round, not per customer) for model-recovery
tests, backtests and ``bench/metrics.py``. Time is in days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import polars as pl

from clm_metrics.inputs import MOMENT, MONEY, TRANSACTION_SCHEMA

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Population:
    """True parameters: rates ~ Gamma(r, 1/alpha), dropout ~ Beta(a, b), and order values
    ~ Gamma(p, 1/nu) with nu ~ Gamma(q, 1/v)."""

    r: float = 0.25
    alpha: float = 30.0
    a: float = 0.8
    b: float = 2.5
    p: float = 6.0
    q: float = 3.8
    v: float = 15.0


def draw_histories(
    population: Population, first: Floats, end: float, rng: np.random.Generator
) -> tuple[Ints, Floats]:
    """Purchase times of customers whose first purchase is at ``first`` (days), up to ``end``.

    Returns (customer index, time) of every purchase, first purchases included. After each
    repeat purchase a customer drops out with their probability ``p``, as BG/NBD assumes.
    """
    count = first.size
    rate = rng.gamma(population.r, 1.0 / population.alpha, count)
    dropout = rng.beta(population.a, population.b, count)
    customers = [np.arange(count)]
    times = [first.copy()]
    now = first.copy()
    active = np.arange(count)
    while active.size:
        now[active] += rng.exponential(1.0 / rate[active])
        active = active[now[active] <= end]
        customers.append(active)
        times.append(now[active])
        active = active[rng.random(active.size) >= dropout[active]]
    return np.concatenate(customers), np.concatenate(times)


def draw_summary(
    population: Population, customers: int, observed: float, rng: np.random.Generator
) -> tuple[Floats, Floats, Floats]:
    """(x, t_x, T) of customers observed for ``T`` uniform in ``[observed / 4, observed]``."""
    big_t = rng.uniform(observed / 4, observed, customers)
    owner, moment = draw_histories(population, -big_t, 0.0, rng)
    x = np.bincount(owner, minlength=customers).astype(np.float64) - 1.0
    last = np.full(customers, -np.inf)
    np.maximum.at(last, owner, moment)
    return x, last + big_t, big_t


def draw_transactions(
    population: Population,
    customers: int,
    start: datetime,
    acquisition_days: float,
    end_days: float,
    seed: int,
) -> pl.DataFrame:
    """Sales (``TRANSACTION_SCHEMA``) of ``customers`` acquired uniformly over the first
    ``acquisition_days`` after ``start``, bought until ``end_days``; ids start at 1."""
    rng = np.random.default_rng(seed)
    first = rng.uniform(0.0, acquisition_days, customers)
    owner, moment = draw_histories(population, first, end_days, rng)
    nu = rng.gamma(population.q, 1.0 / population.v, customers)
    value = rng.gamma(population.p, 1.0 / nu[owner])
    start_us = int(start.astimezone(UTC).timestamp() * 1_000_000)
    micros = start_us + np.round(moment * 86_400_000_000).astype(np.int64)
    return pl.DataFrame(
        {
            "customer_id": owner.astype(np.int64) + 1,
            "occurred_at": pl.Series(micros).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "kind": pl.Series(["sale"]).extend_constant("sale", owner.size - 1),
            "home_amount": pl.Series(np.round(value, 2)).cast(MONEY),
            "discount": pl.Series([None] * owner.size, dtype=MONEY),
        },
        schema=TRANSACTION_SCHEMA,
    ).with_columns(pl.col("occurred_at").cast(MOMENT))
