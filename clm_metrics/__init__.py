"""Customer-lifecycle metrics: pure computation, ledger rows in, metric values out.

No database, no HTTP, no clock: the moment the figures are "as of" is always a parameter, so
the same input gives the same figures on any day. The work is columnar (polars frames);
``docs/metrics.md`` defines every metric.
"""

from clm_metrics.catalog import METRICS, Kind, Metric, MetricValue
from clm_metrics.engine import customer_metrics, metric_rows
from clm_metrics.inputs import (
    LedgerFrames,
    TransactionTuple,
    customers_frame,
    transactions_frame,
)

__all__ = [
    "METRICS",
    "Kind",
    "LedgerFrames",
    "Metric",
    "MetricValue",
    "TransactionTuple",
    "customer_metrics",
    "customers_frame",
    "metric_rows",
    "transactions_frame",
]
