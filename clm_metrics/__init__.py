"""Customer-lifecycle metrics: pure computation, ledger rows in, metric values out.

No database, no HTTP, no clock: the moment the figures are "as of" is always a parameter, so
the same input gives the same figures on any day.
"""

from clm_metrics.basic import (
    METRICS,
    CustomerFigures,
    Purchase,
    customer_figures,
)

__all__ = ["METRICS", "CustomerFigures", "Purchase", "customer_figures"]
