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
_MAX_ITERATIONS = 10_000


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


def _bgnbd_ll(params: Array, x: Array, t_x: Array, big_t: Array) -> Array:
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = (
        special.gammaln(a + b)
        + special.gammaln(b + x)
        - special.gammaln(b)
        - special.gammaln(a + b + x)
    )
    a3 = -(r + x) * np.log(alpha + big_t)
    repeat = x > 0
    safe_x = np.where(repeat, x, 1.0)
    a4 = np.where(
        repeat,
        np.log(a) - np.log(b + safe_x - 1.0) - (r + safe_x) * np.log(alpha + t_x),
        -np.inf,
    )
    result: Array = a1 + a2 + np.logaddexp(a3, a4)
    return result


def _distinct(*columns: Array) -> tuple[list[Array], Array]:
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return [unique[:, i] for i in range(unique.shape[1])], counts.astype(np.float64)


def _maximise(negative_ll: Callable[[Array], float], size: int) -> Array:
    """Nelder-Mead on log-parameters (positivity for free), polished by L-BFGS-B."""
    start = _START[:size]
    first = optimize.minimize(
        negative_ll,
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": _TOLERANCE, "maxiter": _MAX_ITERATIONS},
    )
    polished = optimize.minimize(negative_ll, first.x, method="L-BFGS-B")
    best = polished if polished.fun <= first.fun else first
    if not np.all(np.isfinite(best.x)) or not np.isfinite(best.fun):
        raise FitError("the likelihood has no finite maximum for this data")
    return np.exp(best.x)  # type: ignore[no-any-return]


def fit_bgnbd(x: Array, t_x: Array, big_t: Array) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for the given customers."""
    (ux, ut, u_big_t), weights = _distinct(x, t_x, big_t)
    scale = float(weights.sum())

    def negative_ll(log_params: Array) -> float:
        with np.errstate(all="ignore"):
            ll = _bgnbd_ll(np.exp(log_params), ux, ut, u_big_t)
        total = float(np.dot(weights, ll))
        return -total / scale if np.isfinite(total) else np.inf

    r, alpha, a, b = _maximise(negative_ll, 4)
    ll = float(np.dot(weights, _bgnbd_ll(np.array([r, alpha, a, b]), ux, ut, u_big_t)))
    return BgNbd(float(r), float(alpha), float(a), float(b), ll, int(scale))


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
    scale = float(weights.sum())
    if scale == 0:
        raise FitError("no repeat buyer with a positive order value")

    def negative_ll(log_params: Array) -> float:
        with np.errstate(all="ignore"):
            ll = _gamma_gamma_ll(np.exp(log_params), ux, um)
        total = float(np.dot(weights, ll))
        return -total / scale if np.isfinite(total) else np.inf

    p, q, v = _maximise(negative_ll, 3)
    if q <= 1:
        raise FitError(f"order values vary too much for a finite mean (q = {q:.3g} <= 1)")
    ll = float(np.dot(weights, _gamma_gamma_ll(np.array([p, q, v]), ux, um)))
    return GammaGamma(float(p), float(q), float(v), ll, int(scale))
