"""BG/NBD (Fader, Hardie & Lee 2005) and Gamma-Gamma models, fitted by maximum likelihood.

Pure numpy/scipy on arrays, one element per customer; nothing loops over customers in Python.
Notation as in the papers: ``x`` repeat purchases (purchase days after the first), ``t_x``
the time of the last purchase after the first, ``T`` the time from the first purchase to the
end of observation, all in the same unit (the engine uses days; the CDNOW sample uses weeks).
Fitting works on the distinct ``(x, t_x, T)`` triples (``(x, mean value)`` pairs for
Gamma-Gamma) with their counts as weights, found by one integer sort, and evaluates the
log-likelihood and its gradient in one pass; terms of one column alone (gamma functions of
``x``, logarithms of ``alpha + T``) are computed once per distinct value of that column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

Array = npt.NDArray[np.float64]

_START = np.zeros(4)
_TOLERANCE = 1e-10
_MAX_ITERATIONS = 4_000
_LOG_BOUND = 12.0
"""Parameters stay within e^-12 .. e^12."""


class FitError(ValueError):
    """The likelihood could not be maximised (too little or degenerate data)."""


@dataclass(frozen=True, slots=True)
class BgNbd:
    """Fitted BG/NBD parameters: purchase rates ~ Gamma(r, alpha), drop-out ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int

    def log_likelihood_of(self, x: Array, t_x: Array, big_t: Array) -> Array:
        return _bgnbd_ll(np.array([self.r, self.alpha, self.a, self.b]), x, t_x, big_t)

    def p_alive(self, x: Array, t_x: Array, big_t: Array) -> Array:
        """P(still a customer at ``T``) given the history (FHL 2005, eq. 11)."""
        return 1.0 / (1.0 + _dropout_odds(self, x, t_x, big_t))

    def expected_purchases(self, t: float, x: Array, t_x: Array, big_t: Array) -> Array:
        """Expected purchases in ``(T, T + t]`` given the history (FHL 2005, eq. 10)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        ratio = (alpha + big_t) / (alpha + big_t + t)
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1.0, t / (alpha + big_t + t))
        body = (a + b + x - 1.0) / (a - 1.0) * (1.0 - ratio ** (r + x) * hyp)
        result: Array = body / (1.0 + _dropout_odds(self, x, t_x, big_t))
        return result

    def mean_gap(self, x: Array, big_t: Array) -> Array:
        """Mean time between purchases at the posterior mean rate, ``(alpha + T) / (r + x)``."""
        result: Array = (self.alpha + big_t) / (self.r + x)
        return result


def _dropout_odds(model: BgNbd, x: Array, t_x: Array, big_t: Array) -> Array:
    """``a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)`` for x > 0, else 0."""
    repeat = x > 0
    safe_x = np.where(repeat, x, 1.0)
    log_odds = (
        np.log(model.a)
        - np.log(model.b + safe_x - 1.0)
        + (model.r + safe_x) * (np.log(model.alpha + big_t) - np.log(model.alpha + t_x))
    )
    with np.errstate(over="ignore"):
        odds: Array = np.where(repeat, np.exp(log_odds), 0.0)
    return odds


Groups = tuple[Array, npt.NDArray[np.intp]]
"""The distinct values of ``x`` and, per customer, the index of theirs: the gamma-function
terms depend on ``x`` alone, which takes few values, so they are computed once per value."""


def groups_of(x: Array) -> Groups:
    values, index = np.unique(x, return_inverse=True)
    return values, index.reshape(-1)


def _bgnbd_ll(params: Array, x: Array, t_x: Array, big_t: Array) -> Array:
    """Log-likelihood of each customer."""
    r, alpha, a, b = params
    xs, index = groups_of(x)
    gammaln = special.gammaln
    per_x = (
        (gammaln(r + xs) + gammaln(b + xs) - gammaln(a + b + xs))[index]
        - gammaln(r)
        + r * np.log(alpha)
        + gammaln(a + b)
        - gammaln(b)
    )
    a3 = -(r + x) * np.log(alpha + big_t)
    repeat = x > 0
    safe_x = np.where(repeat, x, 1.0)
    a4 = np.where(
        repeat,
        np.log(a) - np.log(b + safe_x - 1.0) - (r + safe_x) * np.log(alpha + t_x),
        -np.inf,
    )
    result: Array = per_x + np.logaddexp(a3, a4)
    return result


def _dot(a: Array, b: Array) -> float:
    """``a @ b`` without BLAS: OpenBLAS spreads a long dot product over threads that spin while
    they wait, which made fits several times slower on a machine with busy cores."""
    return float(np.einsum("i,i->", a, b))


@dataclass(frozen=True, slots=True)
class Distinct:
    """The distinct rows of some columns, each column factorised into its distinct values
    (``values[i]``) and, per distinct row, the index of its value (``codes[i]``), with the
    number of customers sharing each row (``weights``).

    Fits evaluate the likelihood once per distinct row instead of once per customer, and
    terms that depend on one column only (gamma functions of ``x``, logarithms of ``alpha + T``)
    once per distinct value of that column.
    """

    values: tuple[Array, ...]
    codes: tuple[npt.NDArray[np.intp], ...]
    weights: Array
    first_weights: Array
    """The customers with each distinct value of the first column."""


def distinct(*columns: Array) -> Distinct:
    """Factorise each column (a 1-D sort each), then find the distinct rows by one sort of an
    integer key combining the codes: much faster than ``np.unique(axis=0)`` on floats."""
    factors = [np.unique(column, return_inverse=True) for column in columns]
    values = tuple(value for value, _ in factors)
    codes = [inverse.reshape(-1).astype(np.int64) for _, inverse in factors]
    sizes = [value.size for value in values]
    if float(np.prod(np.array(sizes, dtype=np.float64))) < 2.0**62:
        key = np.zeros(codes[0].size if codes else 0, dtype=np.int64)
        for code, size in zip(codes, sizes, strict=True):
            key = key * size + code
        unique_keys, counts = np.unique(key, return_counts=True)
        unique_codes: list[npt.NDArray[np.int64]] = []
        for size in reversed(sizes):
            unique_codes.append(unique_keys % size)
            unique_keys = unique_keys // size
        unique_codes.reverse()
    else:  # too many combinations for one int64 key: sort the rows of codes
        rows, counts = np.unique(np.column_stack(codes), axis=0, return_counts=True)
        unique_codes = [rows[:, i] for i in range(rows.shape[1])]
    weights = counts.astype(np.float64)
    first = unique_codes[0].astype(np.intp)
    return Distinct(
        values,
        (first, *(code.astype(np.intp) for code in unique_codes[1:])),
        weights,
        np.bincount(first, weights=weights, minlength=values[0].size).astype(np.float64),
    )


def _bgnbd_objective_terms(params: Array, rows: Distinct) -> tuple[float, Array]:
    """Weighted log-likelihood of the distinct ``(x, t_x, T)`` rows and its gradient in
    ``(r, alpha, a, b)``; the same sums as :func:`_bgnbd_ll` over every customer.

    Per customer ``ll = g(x) - (r + x) log(alpha + T) + log(1 + e^d)`` with
    ``d = log(a / (b + x - 1)) + (r + x) (log(alpha + T) - log(alpha + t_x))`` for ``x > 0``
    and ``d = -inf`` for ``x = 0``; ``e^d / (1 + e^d)`` weights the drop-out branch.
    """
    r, alpha, a, b = params
    (xs, t_values, big_t_values), (ix, it, i_big_t) = rows.values, rows.codes
    weights, per_x_weight = rows.weights, rows.first_weights
    gammaln, digamma = special.gammaln, special.digamma
    repeat = xs > 0
    safe_xs = np.where(repeat, xs, 1.0)
    log_big_t = np.log(alpha + big_t_values)[i_big_t]
    log_t = np.log(alpha + t_values)[it]
    r_x = (r + xs)[ix]
    spread = log_big_t - log_t
    d = np.where(repeat, np.log(a) - np.log(b + safe_xs - 1.0), -np.inf)[ix] + r_x * spread
    small = np.exp(-np.abs(d))  # softplus and logistic of d from one exponential
    branch = np.where(d >= 0, 1.0, small) / (1.0 + small)
    per_x = gammaln(r + xs) + gammaln(b + xs) - gammaln(a + b + xs)
    constant = -gammaln(r) + r * np.log(alpha) + gammaln(a + b) - gammaln(b)
    total = (
        _dot(per_x_weight, per_x)
        + constant * float(weights.sum())
        + _dot(weights, np.maximum(d, 0.0) + np.log1p(small) - r_x * log_big_t)
    )
    weighted_branch = weights * branch
    inverse_big_t = (1.0 / (alpha + big_t_values))[i_big_t]
    inverse_t = (1.0 / (alpha + t_values))[it]
    shared = digamma(a + b) - digamma(a + b + xs)
    d_r = (
        _dot(per_x_weight, digamma(r + xs) - digamma(r) + np.log(alpha))
        + _dot(weighted_branch, spread)
        - _dot(weights, log_big_t)
    )
    d_alpha = r / alpha * weights.sum() - _dot(
        weights * r_x, inverse_big_t + branch * (inverse_t - inverse_big_t)
    )
    branch_total = weighted_branch.sum()
    d_a = _dot(per_x_weight, shared) + branch_total / a
    d_b = _dot(per_x_weight, shared + digamma(b + xs) - digamma(b)) - _dot(
        weighted_branch, np.where(repeat, 1.0 / (b + safe_xs - 1.0), 0.0)[ix]
    )
    return total, np.array([d_r, d_alpha, d_a, d_b])


Objective = Callable[[Array], tuple[float, Array]]


def _maximise(objective: Objective, size: int) -> Array:
    """L-BFGS-B with the analytic gradient on log-parameters (positivity for free).

    Log-parameters are bounded: a maximum on a bound means the data pull a parameter to zero
    or infinity (the model does not describe them), which is reported, not returned.
    """
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * size
    best = optimize.minimize(
        objective,
        _START[:size],
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": _MAX_ITERATIONS, "ftol": _TOLERANCE, "gtol": 1e-9},
    )
    if not np.all(np.isfinite(best.x)) or not np.isfinite(best.fun):
        raise FitError("the likelihood has no finite maximum for this data")
    if np.any(np.abs(best.x) > _LOG_BOUND - 0.5):
        raise FitError(
            "a parameter runs off to zero or infinity: the data do not fit the model's shape"
        )
    return np.exp(best.x)  # type: ignore[no-any-return]


Terms = Callable[[Array], tuple[float, Array]]
"""Parameters -> (log-likelihood summed over customers, its gradient in the parameters)."""


def _objective(terms: Terms, customers: float) -> Objective:
    """Mean negative log-likelihood over customers and its gradient in log-parameters."""

    def objective(log_params: Array) -> tuple[float, Array]:
        params = np.exp(log_params)
        with np.errstate(all="ignore"):
            total, gradient = terms(params)
            slope = gradient * params
        if not np.isfinite(total) or not np.all(np.isfinite(slope)):
            return np.inf, np.zeros_like(log_params)
        return -total / customers, -slope / customers

    return objective


def fit_bgnbd(x: Array, t_x: Array, big_t: Array) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for the given customers."""
    rows = distinct(x, t_x, big_t)
    customers = float(rows.weights.sum())
    r, alpha, a, b = _maximise(
        _objective(lambda params: _bgnbd_objective_terms(params, rows), customers), 4
    )
    ll, _ = _bgnbd_objective_terms(np.array([r, alpha, a, b]), rows)
    return BgNbd(float(r), float(alpha), float(a), float(b), float(ll), int(customers))


@dataclass(frozen=True, slots=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters of the value of a customer's orders (Fader, Hardie & Lee,
    "RFM and CLV", 2005): order values ~ Gamma(p, nu), nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int

    def log_likelihood_of(self, x: Array, mean_value: Array) -> Array:
        """Per customer with ``x > 0`` and ``mean_value > 0``."""
        return _gamma_gamma_ll(np.array([self.p, self.q, self.v]), x, mean_value)

    def expected_value(self, x: Array, mean_value: Array) -> Array:
        """E(M | x, mean): a weighted mean of the population mean and the customer's own."""
        own = np.where(x > 0, mean_value, 0.0)
        result: Array = self.p * (self.v + x * own) / (self.p * x + self.q - 1.0)
        return result


@dataclass(frozen=True, slots=True)
class SpendRows:
    """The distinct ``(x, mean value)`` rows with what of them does not depend on ``(p, q, v)``,
    so that an evaluation costs one logarithm and one division per row."""

    xs: Array
    x_weights: Array
    weights: Array
    weighted_x: Array
    scaled: Array
    """``x * mean value`` per row."""
    log_terms: float
    """``sum weight * x * (log mean + log x)``."""
    log_means: float
    """``sum weight * log mean``."""


def spend_rows(rows: Distinct) -> SpendRows:
    (xs, means), (ix, i_mean) = rows.values, rows.codes
    x, weights = xs[ix], rows.weights
    log_mean = np.log(means)[i_mean]
    return SpendRows(
        xs=xs,
        x_weights=rows.first_weights,
        weights=weights,
        weighted_x=weights * x,
        scaled=x * means[i_mean],
        log_terms=_dot(weights * x, log_mean + np.log(xs)[ix]),
        log_means=_dot(weights, log_mean),
    )


def _gamma_gamma_objective_terms(params: Array, rows: SpendRows) -> tuple[float, Array]:
    """Weighted log-likelihood of the distinct ``(x, mean_value)`` rows and its gradient in
    ``(p, q, v)``; the same sums as :func:`_gamma_gamma_ll` over every customer."""
    p, q, v = params
    xs, per_x_weight, weights, weighted_x = rows.xs, rows.x_weights, rows.weights, rows.weighted_x
    customers = float(weights.sum())
    gammaln, digamma = special.gammaln, special.digamma
    spread = np.log(v + rows.scaled)
    inverse = 1.0 / (v + rows.scaled)
    x_spread, spread_total = _dot(weighted_x, spread), _dot(weights, spread)
    pxs = p * xs
    total = (
        _dot(per_x_weight, gammaln(pxs + q) - gammaln(pxs))
        + customers * (q * np.log(v) - gammaln(q))
        + p * rows.log_terms
        - rows.log_means
        - p * x_spread
        - q * spread_total
    )
    d_p = _dot(per_x_weight, xs * (digamma(pxs + q) - digamma(pxs))) + rows.log_terms - x_spread
    d_q = _dot(per_x_weight, digamma(pxs + q)) + customers * (np.log(v) - digamma(q)) - spread_total
    d_v = customers * q / v - p * _dot(weighted_x, inverse) - q * _dot(weights, inverse)
    return float(total), np.array([d_p, d_q, d_v])


def _gamma_gamma_ll(params: Array, x: Array, mean_value: Array) -> Array:
    p, q, v = params
    px = p * x
    result: Array = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(mean_value)
        + px * np.log(x)
        - (px + q) * np.log(v + x * mean_value)
    )
    return result


def fit_gamma_gamma(x: Array, mean_value: Array) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from repeat buyers (``x > 0``) and the mean
    value of their repeat orders (``> 0``)."""
    keep = (x > 0) & (mean_value > 0)
    if not keep.any():
        raise FitError("no repeat buyer with a positive order value")
    rows = spend_rows(distinct(x[keep], mean_value[keep]))
    customers = float(rows.weights.sum())
    p, q, v = _maximise(
        _objective(lambda params: _gamma_gamma_objective_terms(params, rows), customers), 3
    )
    if q <= 1:
        raise FitError(f"order values vary too much for a finite mean (q = {q:.3g} <= 1)")
    ll, _ = _gamma_gamma_objective_terms(np.array([p, q, v]), rows)
    return GammaGamma(float(p), float(q), float(v), float(ll), int(customers))
