"""BG/NBD (Fader, Hardie & Lee 2005) and Gamma-Gamma models, fitted by maximum likelihood.

Pure numpy/scipy on arrays, one element per customer; nothing loops over customers in Python.
Notation as in the papers: ``x`` repeat purchases (purchase days after the first), ``t_x``
the time of the last purchase after the first, ``T`` the time from the first purchase to the
end of observation, all in the same unit (the engine uses days; the CDNOW sample uses weeks).
Fitting works on the distinct ``(x, t_x, T)`` triples with their counts as weights, which
makes a fit over a million customers cost as much as one over their distinct histories.
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


def _bgnbd_ll(
    params: Array, x: Array, t_x: Array, big_t: Array, groups: Groups | None = None
) -> Array:
    r, alpha, a, b = params
    xs, index = groups or groups_of(x)
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


def _bgnbd_gradient(params: Array, x: Array, t_x: Array, big_t: Array, groups: Groups) -> Array:
    """d log-likelihood / d (r, alpha, a, b), one row per customer."""
    r, alpha, a, b = params
    xs, index = groups
    repeat = x > 0
    safe_x = np.where(repeat, x, 1.0)
    log_big_t, log_t_x = np.log(alpha + big_t), np.log(alpha + t_x)
    a3 = -(r + x) * log_big_t
    a4 = np.where(repeat, np.log(a) - np.log(b + safe_x - 1.0) - (r + safe_x) * log_t_x, -np.inf)
    total = np.logaddexp(a3, a4)
    w3, w4 = np.exp(a3 - total), np.exp(a4 - total)
    digamma = special.digamma
    d_r = (digamma(r + xs) - digamma(r) + np.log(alpha))[index] - w3 * log_big_t - w4 * log_t_x
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + big_t) + w4 / (alpha + t_x))
    shared = (digamma(a + b) - digamma(a + b + xs))[index]
    d_a = shared + w4 / a
    d_b = shared + (digamma(b + xs) - digamma(b))[index] - w4 / (b + safe_x - 1.0)
    return np.column_stack([d_r, d_alpha, d_a, d_b])


def _distinct(*columns: Array) -> tuple[list[Array], Array]:
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return [unique[:, i] for i in range(unique.shape[1])], counts.astype(np.float64)


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


def _objective(
    log_likelihood: Callable[[Array], Array],
    gradient: Callable[[Array], Array],
    weights: Array,
) -> Objective:
    """Mean negative log-likelihood over customers and its gradient in log-parameters."""
    scale = float(weights.sum())

    def objective(log_params: Array) -> tuple[float, Array]:
        params = np.exp(log_params)
        with np.errstate(all="ignore"):
            total = float(np.dot(weights, log_likelihood(params)))
            slope = weights @ gradient(params) * params
        if not np.isfinite(total) or not np.all(np.isfinite(slope)):
            return np.inf, np.zeros_like(log_params)
        return -total / scale, -slope / scale

    return objective


def fit_bgnbd(x: Array, t_x: Array, big_t: Array) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for the given customers."""
    (ux, ut, u_big_t), weights = _distinct(x, t_x, big_t)
    groups = groups_of(ux)
    objective = _objective(
        lambda params: _bgnbd_ll(params, ux, ut, u_big_t, groups),
        lambda params: _bgnbd_gradient(params, ux, ut, u_big_t, groups),
        weights,
    )
    r, alpha, a, b = _maximise(objective, 4)
    fitted = np.array([r, alpha, a, b])
    ll = float(np.dot(weights, _bgnbd_ll(fitted, ux, ut, u_big_t, groups)))
    return BgNbd(float(r), float(alpha), float(a), float(b), ll, int(weights.sum()))


@dataclass(frozen=True, slots=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters of the value of a customer's orders (Fader, Hardie & Lee,
    "RFM and CLV", 2005): order values ~ Gamma(p, nu), nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int

    def expected_value(self, x: Array, mean_value: Array) -> Array:
        """E(M | x, mean): a weighted mean of the population mean and the customer's own."""
        own = np.where(x > 0, mean_value, 0.0)
        result: Array = self.p * (self.v + x * own) / (self.p * x + self.q - 1.0)
        return result


def _gamma_gamma_gradient(params: Array, x: Array, mean_value: Array) -> Array:
    """d log-likelihood / d (p, q, v), one row per customer."""
    p, q, v = params
    px = p * x
    digamma = special.digamma
    spread = np.log(v + x * mean_value)
    d_p = x * (digamma(px + q) - digamma(px) + np.log(mean_value) + np.log(x) - spread)
    d_q = digamma(px + q) - digamma(q) + np.log(v) - spread
    d_v = q / v - (px + q) / (v + x * mean_value)
    return np.column_stack([d_p, d_q, d_v])


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
    (ux, um), weights = _distinct(x[keep], mean_value[keep])
    if weights.size == 0:
        raise FitError("no repeat buyer with a positive order value")
    objective = _objective(
        lambda params: _gamma_gamma_ll(params, ux, um),
        lambda params: _gamma_gamma_gradient(params, ux, um),
        weights,
    )
    p, q, v = _maximise(objective, 3)
    if q <= 1:
        raise FitError(f"order values vary too much for a finite mean (q = {q:.3g} <= 1)")
    ll = float(np.dot(weights, _gamma_gamma_ll(np.array([p, q, v]), ux, um)))
    return GammaGamma(float(p), float(q), float(v), ll, int(weights.sum()))
