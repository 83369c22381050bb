"""The fits' likelihoods over distinct rows with counts (clm_metrics/bgnbd.py) equal the
per-customer sums they replace, and their gradients match finite differences of those sums."""

from __future__ import annotations

import numpy as np
import pytest

from clm_metrics import BgNbd
from clm_metrics.bgnbd import (
    Array,
    GammaGamma,
    _bgnbd_objective_terms,
    _gamma_gamma_objective_terms,
    distinct,
    spend_rows,
)
from sandbox.purchases import Population, draw_summary

RNG_SEED = 11


@pytest.fixture(scope="module")
def customers() -> dict[str, Array]:
    """Whole days, so that many customers share a history, plus mean order values."""
    rng = np.random.default_rng(RNG_SEED)
    x, t_x, big_t = draw_summary(Population(), 4_000, 200.0, rng)
    mean_value = np.where(x > 0, np.round(rng.gamma(6.0, 2.0, x.size), 0), 0.0)
    return {"x": x, "t_x": np.floor(t_x), "T": np.floor(big_t), "mean_value": mean_value}


def _rows_of(rows: tuple[Array, ...]) -> Array:
    return np.column_stack(rows)


@pytest.mark.parametrize("width", [1, 3, 6])
def test_distinct_rows_and_counts_match_numpy_unique(width: int) -> None:
    # six columns of ~3,000 distinct values overflow the int64 key: the row-sort path
    rng = np.random.default_rng(width)
    spread = 10**6 if width == 6 else 7
    column = rng.integers(0, spread, 3_000).astype(float) / 4
    columns = [rng.permutation(column) for _ in range(width)]

    rows = distinct(*columns)

    expected, counts = np.unique(np.column_stack(columns), axis=0, return_counts=True)
    got = np.column_stack(
        [values[codes] for values, codes in zip(rows.values, rows.codes, strict=True)]
    )
    order = np.lexsort(got.T[::-1])
    np.testing.assert_array_equal(got[order], expected)
    np.testing.assert_array_equal(rows.weights[order], counts)
    assert rows.first_weights.sum() == len(columns[0])


def _gradient_by_differences(total: object, params: Array) -> Array:
    steps = 1e-6 * params
    return np.array(
        [
            (total(params + step) - total(params - step)) / (2 * step[i])  # type: ignore[operator]
            for i, step in enumerate(np.diag(steps))
        ]
    )


@pytest.mark.parametrize(
    "params", [(0.25, 30.0, 0.8, 2.5), (2.0, 50.0, 1.7, 0.6), (0.05, 4.0, 0.3, 9.0)]
)
def test_bgnbd_likelihood_over_distinct_rows_equals_the_per_customer_sum(
    customers: dict[str, Array], params: tuple[float, float, float, float]
) -> None:
    x, t_x, big_t = customers["x"], customers["t_x"], customers["T"]
    rows = distinct(x, t_x, big_t)
    assert rows.weights.size < 0.8 * x.size, "the sample should have shared histories"

    def per_customer(point: Array) -> float:
        r, alpha, a, b = point
        model = BgNbd(r, alpha, a, b, 0.0, x.size)
        return float(model.log_likelihood_of(x, t_x, big_t).sum())

    point = np.array(params)
    total, gradient = _bgnbd_objective_terms(point, rows)

    assert total == pytest.approx(per_customer(point), rel=1e-11)
    np.testing.assert_allclose(gradient, _gradient_by_differences(per_customer, point), rtol=1e-5)


@pytest.mark.parametrize("params", [(6.0, 3.8, 15.0), (1.5, 9.0, 2.0), (20.0, 1.2, 300.0)])
def test_gamma_gamma_likelihood_over_distinct_rows_equals_the_per_customer_sum(
    customers: dict[str, Array], params: tuple[float, float, float]
) -> None:
    keep = customers["x"] > 0
    x, mean_value = customers["x"][keep], customers["mean_value"][keep]
    rows = spend_rows(distinct(x, mean_value))
    assert rows.weights.size < 0.8 * x.size, "the sample should have shared histories"

    def per_customer(point: Array) -> float:
        p, q, v = point
        model = GammaGamma(p, q, v, 0.0, x.size)
        return float(model.log_likelihood_of(x, mean_value).sum())

    point = np.array(params)
    total, gradient = _gamma_gamma_objective_terms(point, rows)

    assert total == pytest.approx(per_customer(point), rel=1e-11)
    np.testing.assert_allclose(gradient, _gradient_by_differences(per_customer, point), rtol=1e-5)
