"""The report as one self-contained HTML page: tables and inline SVG charts, no scripts,
no outside files (it can be mailed or archived as it is)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import polars as pl

from clm_metrics.compare import Comparison
from sync.baselines import Report

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
svg text{font-size:11px}
"""
BAR_WIDTH = 420
ROW_HEIGHT = 18


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}"
    return html.escape(str(value))


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(value)}</td>" for value in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def bar_chart(labels: Sequence[str], values: Sequence[float], unit: str = "") -> str:
    """Horizontal bars as inline SVG."""
    top = max((abs(value) for value in values), default=0.0) or 1.0
    height = ROW_HEIGHT * len(labels) + 4
    bars = []
    for row, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = row * ROW_HEIGHT + 2
        width = abs(value) / top * (BAR_WIDTH - 160)
        bars.append(
            f'<text x="0" y="{y + 12}">{html.escape(label)}</text>'
            f'<rect x="120" y="{y}" width="{width:.1f}" height="{ROW_HEIGHT - 4}" '
            f'fill="#4a7bd0"/>'
            f'<text x="{124 + width:.1f}" y="{y + 12}">{value:,.4g}{unit}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_WIDTH}" height="{height}">'
        + "".join(bars)
        + "</svg>"
    )


def cohort_heatmap(cohorts: pl.DataFrame) -> str:
    """Acquisition month by months since, each cell shaded by its retention."""
    if cohorts.height == 0:
        return "<p>No purchases yet.</p>"
    wide = cohorts.pivot("months_since", index="cohort", values="retention").sort("cohort")
    months = [column for column in wide.columns if column != "cohort"]
    head = "<th>cohort</th>" + "".join(f"<th>+{m}</th>" for m in months)
    rows = []
    for row in wide.iter_rows(named=True):
        cells = []
        for month in months:
            share = row[month]
            if share is None:
                cells.append("<td></td>")
                continue
            shade = int(255 - 155 * float(share))
            cells.append(f'<td style="background:rgb({shade},{shade},255)">{share:.0%}</td>')
        rows.append(f"<tr><td>{row['cohort']}</td>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _comparison(comparison: Comparison, name: str) -> str:
    if comparison.status == "too_early":
        return f"<p>{html.escape(comparison.message)}</p>"
    rows = pl.DataFrame(
        {
            "figure": [c.figure.replace("_", " ") for c in comparison.changes],
            "baseline": [c.baseline for c in comparison.changes],
            "now": [c.now for c in comparison.changes],
            "change": [
                None if c.change is None else f"{c.change:+.1%}" for c in comparison.changes
            ],
            "interval": [
                None if c.low is None or c.high is None else f"{c.low:+.1%} to {c.high:+.1%}"
                for c in comparison.changes
            ],
        },
        strict=False,
    )
    changed = [c for c in comparison.changes if c.change is not None]
    chart = bar_chart(
        [c.figure.replace("_", " ")[:18] for c in changed],
        [100 * (c.change or 0.0) for c in changed],
        "%",
    )
    note = "" if comparison.status == "final" else f"<p>{html.escape(comparison.message)}</p>"
    flow = ""
    if comparison.flow is not None and comparison.flow.height:
        wide = comparison.flow.pivot("to", index="from", values="customers").fill_null(0)
        flow = "<h2>Stage flow since the baseline</h2><p>Rows: stage then; columns: now.</p>"
        flow += _table(wide)
    return f"<p>Against baseline {html.escape(name)!s} ({comparison.status}).</p>{note}" + (
        _table(rows) + chart + flow
    )


def render_html(report: Report, comparison: Comparison | None = None, baseline: str = "") -> str:
    business = report.business
    tables = business.tables
    stages = tables["customers_by_stage"]
    monthly = tables["acquired_and_lost"]
    channels = tables["cac_by_channel"]
    summary = pl.DataFrame(
        {
            "figure": [name.replace("_", " ") for name in business.summary],
            "value": [_cell(value) for value in business.summary.values()],
        }
    )
    parts = [
        f"<h1>Customer lifecycle report, as of {report.as_of.date().isoformat()}</h1>",
        _table(summary),
        "<h2>Customers by stage</h2>",
        bar_chart(stages["stage"].to_list(), stages["customers"].cast(pl.Float64).to_list()),
        "<h2>Acquired and lost per month</h2>",
        _table(monthly),
        "<h2>CAC by channel</h2>",
        bar_chart(channels["channel"].to_list(), channels["cac"].to_list())
        if channels.height
        else "<p>No acquisition spend recorded.</p>",
        "<h2>Cohort retention</h2>",
        cohort_heatmap(tables["cohort_retention"]),
        "<h2>Repeat purchasers by orders</h2>",
        _table(tables["repeat_purchasers_by_orders"]),
        "<h2>Top evangelists</h2>",
        _table(tables["top_evangelists"]),
        "<h2>Loss reasons</h2>",
        _table(tables["loss_reasons"]),
    ]
    if comparison is not None:
        parts += ["<h2>Baseline comparison</h2>", _comparison(comparison, baseline)]
    fits = report.result.fits
    models = [html.escape(message) for message in fits.messages]
    if fits.bgnbd is not None:
        m = fits.bgnbd
        models.append(f"BG/NBD: r={m.r:.4g}, alpha={m.alpha:.4g}, a={m.a:.4g}, b={m.b:.4g}")
    if fits.gamma_gamma is not None:
        g = fits.gamma_gamma
        models.append(f"Gamma-Gamma: p={g.p:.4g}, q={g.q:.4g}, gamma={g.v:.4g}")
    parts += ["<h2>Models</h2>", "".join(f"<p>{line}</p>" for line in models)]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>clm-sync report</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
