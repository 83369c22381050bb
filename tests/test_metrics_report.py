"""The HTML report (sync/html_report.py): self-contained, with the charts and tables."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import polars as pl

from clm_metrics import LedgerFrames, customer_metrics, customers_frame, transactions_frame
from clm_metrics.business import business_figures
from clm_metrics.compare import Change, Comparison, Waiting
from clm_metrics.history import known_transactions
from config.models import MetricsConfig
from sync.baselines import Report
from sync.html_report import bar_chart, render_html
from tests.test_metrics_segments import AS_OF, BUSINESS


def worked_report() -> Report:
    frames = LedgerFrames(customers_frame(range(1, 7)), transactions_frame(BUSINESS))
    settings = MetricsConfig()
    result = customer_metrics(frames, AS_OF, settings)
    figures = business_figures(result.table, known_transactions(frames, AS_OF), settings)
    return Report(AS_OF, result, figures)


def test_the_page_holds_every_section_and_needs_nothing_from_outside() -> None:
    waiting = Waiting(date(2024, 7, 10), date(2024, 9, 1), 9.0, 62.0)
    change = Change("average_revenue_per_customer", 200.0, 220.0, 0.1, 0.05, 0.15)
    flow = pl.DataFrame({"from": ["new", "new"], "to": ["active", "lost"], "customers": [3, 1]})
    comparison = Comparison(
        "preliminary", waiting, (change,), "preliminary: final from <soon>", flow
    )

    page = render_html(worked_report(), comparison, "spring")

    for heading in (
        "Customers by stage",
        "Acquired and lost per month",
        "CAC by channel",
        "Cohort retention",
        "Loss reasons",
        "Baseline comparison",
        "Stage flow since the baseline",
        "Models",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert "as of 2024-07-01" in page
    assert "+10.0%" in page and "+5.0% to +15.0%" in page
    assert "<tr><td>new</td><td>3</td><td>1</td></tr>" in page, "3 new became active, 1 lost"
    assert "&lt;soon&gt;" in page, "text from the figures is escaped"
    assert not re.search(r"<script|<link|src=|href=", page), "no outside files, no scripts"
    # every cohort bought in its first month: five cohorts, each a dark 100% cell at +0
    assert page.count('style="background:rgb(100,100,255)">100%</td>') >= 5
    assert "too little data for predictions" in page


def test_bar_chart_scales_bars_to_the_largest_value() -> None:
    svg = bar_chart(["ads", "fair"], [200.0, 50.0])
    widths = [float(w) for w in re.findall(r'<rect x="120" y="\d+" width="([\d.]+)"', svg)]
    assert widths == [260.0, 65.0]
    assert np.isclose(widths[1] / widths[0], 0.25)
