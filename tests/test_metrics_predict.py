"""BG/NBD and Gamma-Gamma (clm_metrics/bgnbd.py, clm_metrics/predict.py): the published CDNOW
figures, recovery of known parameters, a backtest, and the too-little-data path."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from clm_metrics import (
    BgNbd,
    LedgerFrames,
    customer_metrics,
    customers_frame,
    fit_bgnbd,
    fit_gamma_gamma,
    metric_rows,
    transactions_frame,
)
from clm_metrics.bgnbd import Array
from config.models import MetricsConfig, PredictionSettings
from sandbox.purchases import Population, draw_summary, draw_transactions

CDNOW = Path(__file__).parent / "data" / "cdnow_summary.csv"
START = datetime(2022, 1, 1, tzinfo=UTC)


def significant(value: float, digits: int) -> float:
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


@pytest.fixture(scope="module")
def cdnow() -> dict[str, Array]:
    with CDNOW.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        name: np.array([float(row[name]) for row in rows]) for name in ("x", "t_x", "T", "zbar")
    }


def test_bgnbd_reproduces_fader_hardie_lee_on_cdnow(cdnow: dict[str, Array]) -> None:
    assert cdnow["x"].size == 2357
    model = fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert [significant(v, 3) for v in (model.r, model.alpha, model.a, model.b)] == [
        0.243,
        4.41,
        0.793,
        2.43,
    ]
    assert round(model.log_likelihood, 1) == -9582.4
    assert model.customers == 2357


def test_bgnbd_conditional_figures_match_the_paper_and_a_hand_computation() -> None:
    model = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, customers=0)
    x, t_x, big_t = np.array([2.0, 0.0]), np.array([30.43, 0.0]), np.array([38.86, 38.86])
    # FHL 2005, section 5: this customer is expected to buy 1.226 times in the next 39 weeks.
    assert round(float(model.expected_purchases(39, x, t_x, big_t)[0]), 3) == 1.226
    # odds of having dropped out: 0.793 / 3.426 * (43.274 / 34.844) ** 2.243 = 0.3763
    alive = model.p_alive(x, t_x, big_t)
    assert round(float(alive[0]), 4) == round(1 / 1.3763, 4) == 0.7266
    assert alive[1] == 1.0, "no repeat purchase yet: BG/NBD cannot have seen a drop-out"


def test_gamma_gamma_reproduces_the_cdnow_spend_model(cdnow: dict[str, Array]) -> None:
    model = fit_gamma_gamma(cdnow["x"], cdnow["zbar"])
    assert model.customers == 946, "the repeat buyers"
    assert [significant(v, 3) for v in (model.p, model.q, model.v)] == [6.25, 3.74, 15.4]
    # E(M) for x = 2, mean 22.35: 6.25 * (15.44 + 2 * 22.35) / (2 * 6.25 + 3.74 - 1) = 24.66
    value = model.expected_value(np.array([2.0, 0.0]), np.array([22.35, 0.0]))
    assert round(float(value[0]), 1) == 24.7
    assert round(float(value[1]), 1) == round(model.p * model.v / (model.q - 1), 1) == 35.2


def _standard_errors(model: BgNbd, x: Array, t_x: Array, big_t: Array) -> Array:
    """From the observed information: the inverse Hessian of the log-likelihood."""
    point = np.array([model.r, model.alpha, model.a, model.b])

    def ll(params: Array) -> float:
        r, alpha, a, b = (float(value) for value in params)
        trial = BgNbd(r, alpha, a, b, log_likelihood=0.0, customers=0)
        return float(trial.log_likelihood_of(x, t_x, big_t).sum())

    steps = point * 1e-4
    hessian = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            ei, ej = np.eye(4)[i] * steps[i], np.eye(4)[j] * steps[j]
            hessian[i, j] = (
                ll(point + ei + ej)
                - ll(point + ei - ej)
                - ll(point - ei + ej)
                + ll(point - ei - ej)
            ) / (4 * steps[i] * steps[j])
    return np.sqrt(np.diag(np.linalg.inv(-hessian)))


def test_bgnbd_recovers_known_parameters_within_sampling_error() -> None:
    truth = Population(r=0.25, alpha=30.0, a=0.8, b=2.5)
    x, t_x, big_t = draw_summary(truth, 10_000, 365.0, np.random.default_rng(7))

    model = fit_bgnbd(x, t_x, big_t)

    errors = _standard_errors(model, x, t_x, big_t)
    estimates = np.array([model.r, model.alpha, model.a, model.b])
    true = np.array([truth.r, truth.alpha, truth.a, truth.b])
    assert np.all(np.abs(estimates - true) < 3 * errors), (estimates, errors)
    assert np.all(errors < 0.25 * true), "the sample is big enough to pin the parameters"


def test_backtest_predicts_the_next_90_days_within_ten_percent() -> None:
    transactions = draw_transactions(Population(), 4_000, START, 365.0, 730.0, seed=11)
    frames = LedgerFrames(customers_frame(range(1, 4_001)), transactions)
    as_of = START + timedelta(days=547)

    result = customer_metrics(frames, as_of)

    predicted = float(result.table["expected_purchases"].sum())
    following = transactions.filter(
        (pl.col("occurred_at") > as_of) & (pl.col("occurred_at") <= as_of + timedelta(days=90))
    )
    actual = following.select("customer_id", pl.col("occurred_at").dt.date()).unique().height
    assert actual > 500, "enough purchases for a 10% test to mean something"
    assert abs(predicted - actual) <= 0.10 * actual, (predicted, actual)
    assert result.fits.bgnbd is not None and result.fits.gamma_gamma is not None
    assert result.fits.messages == ()


def test_too_little_data_gives_a_message_and_history_only_figures() -> None:
    sales = [
        (1, START, "sale", Decimal(10)),
        (1, START + timedelta(days=20), "sale", Decimal(30)),
        (2, START + timedelta(days=3), "sale", Decimal(5)),
    ]
    frames = LedgerFrames(customers_frame([1, 2, 3]), transactions_frame(sales))

    result = customer_metrics(frames, START + timedelta(days=40))

    assert result.fits.bgnbd is None and result.fits.gamma_gamma is None
    (message,) = result.fits.messages
    assert message == (
        "too little data for predictions: 2 customers with a purchase (need 50) and 1 who "
        "came back on another day (need 10); only history figures are given"
    )
    values = dict(metric_rows(result.table))
    assert values[1]["orders"] == 2 and values[1]["net_revenue"] == Decimal("40.00")
    for name in ("p_alive", "churn_risk", "expected_purchases", "expected_next_order", "clv"):
        assert {values[c][name] for c in (1, 2, 3)} == {None}


def test_predicted_figures_of_a_worked_customer() -> None:
    # Two purchase days, 2024-01-01 (20.00) and 2024-01-31 (two orders: 10.00 + 20.00),
    # as of 2024-03-01: x = 1, t_x = 30, T = 60 days, mean repeat-day value 30.00.
    settings = MetricsConfig(
        prediction=PredictionSettings(min_customers=3, min_repeat_buyers=3, clv_horizon_months=1)
    )
    day = datetime(2024, 1, 1, 9, tzinfo=UTC)
    worked = [
        (1, day, "sale", Decimal(20)),
        (1, day + timedelta(days=30), "sale", Decimal(10)),
        (1, day + timedelta(days=30, hours=2), "sale", Decimal(20)),
    ]
    # Others so the models can be fitted (their figures are not checked here).
    others = draw_transactions(Population(), 300, day - timedelta(days=300), 300.0, 360.0, 5)
    others = others.with_columns(pl.col("customer_id") + 1)
    frames = LedgerFrames(
        customers_frame(range(1, 302)), pl.concat([transactions_frame(worked), others])
    )
    as_of = datetime(2024, 3, 1, 12, tzinfo=UTC)

    result = customer_metrics(frames, as_of, settings)

    model, spend = result.fits.bgnbd, result.fits.gamma_gamma
    assert model is not None and spend is not None
    values = dict(metric_rows(result.table))[1]
    x, t_x, big_t = np.array([1.0]), np.array([30.0]), np.array([60.0])
    odds = model.a / model.b * ((model.alpha + 60) / (model.alpha + 30)) ** (model.r + 1)
    assert values["p_alive"] == round(1 / (1 + odds), 4)
    assert values["churn_risk"] == round(odds / (1 + odds), 4)
    expected = float(model.expected_purchases(90, x, t_x, big_t)[0])
    assert values["expected_purchases"] == round(expected, 2)
    order_value = spend.p * (spend.v + 30.0) / (spend.p + spend.q - 1)
    assert values["expected_order_value"] == Decimal(order_value).quantize(Decimal("0.01"))
    # One month of CLV: the purchases of the next 30 days, discounted one month at 10% a year.
    month = float(model.expected_purchases(30, x, t_x, big_t)[0])
    clv = order_value * month / 1.1 ** (1 / 12)
    assert values["clv"] == Decimal(clv).quantize(Decimal("0.01"))
    # Likely alive (p_alive above next_order_min_p_alive = 0.5), so a next order date is
    # given: the as-of date plus the mean gap at the posterior rate, (alpha + T) / (r + x).
    assert 0.5 < values["p_alive"] < 0.9  # type: ignore[operator]
    gap = math.ceil((model.alpha + 60) / (model.r + 1))
    assert values["expected_next_order"] == as_of.date() + timedelta(days=gap)

    unlikely = MetricsConfig(
        prediction=settings.prediction.model_copy(update={"next_order_min_p_alive": 0.95})
    )
    later = dict(metric_rows(customer_metrics(frames, as_of, unlikely).table))[1]
    assert later["expected_next_order"] is None
