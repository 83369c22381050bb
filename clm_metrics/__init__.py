"""Customer-lifecycle metrics: pure computation, ledger rows in, metric values out.

No database, no HTTP, no clock: the moment the figures are "as of" is always a parameter, so
the same input gives the same figures on any day. The work is columnar (polars frames);
``docs/metrics.md`` defines every metric.
"""

from clm_metrics.bgnbd import BgNbd, GammaGamma, fit_bgnbd, fit_gamma_gamma
from clm_metrics.catalog import METRICS, Kind, Metric, MetricValue
from clm_metrics.engine import MetricsResult, customer_metrics, metric_rows
from clm_metrics.inputs import (
    LedgerFrames,
    TransactionTuple,
    customers_frame,
    transactions_frame,
)
from clm_metrics.predict import ModelFits

__all__ = [
    "METRICS",
    "BgNbd",
    "GammaGamma",
    "Kind",
    "LedgerFrames",
    "Metric",
    "MetricValue",
    "MetricsResult",
    "ModelFits",
    "TransactionTuple",
    "customer_metrics",
    "customers_frame",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "metric_rows",
    "transactions_frame",
]
