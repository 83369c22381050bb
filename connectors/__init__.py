"""Connectors: one package per external system, plus the shared interface and records.

Connectors know the remote side only (HTTP or files, auth, paging, limits, schema) and never
import ledger code.
"""

from connectors.base import Connector, Cursor, Origin, Page, Stream, Writer, WriteResult
from connectors.errors import AuthError, ConnectorError, RetryableError, SourceError
from connectors.records import (
    Direction,
    FieldUpdate,
    Record,
    RecordKind,
    Rejected,
    SourceCustomer,
    SourceInteraction,
    SourceReferral,
    SourceSpend,
    SourceTransaction,
    TransactionKind,
)

__all__ = [
    "AuthError",
    "Connector",
    "ConnectorError",
    "Cursor",
    "Direction",
    "FieldUpdate",
    "Origin",
    "Page",
    "Record",
    "RecordKind",
    "Rejected",
    "RetryableError",
    "SourceCustomer",
    "SourceError",
    "SourceInteraction",
    "SourceReferral",
    "SourceSpend",
    "SourceTransaction",
    "Stream",
    "TransactionKind",
    "WriteResult",
    "Writer",
]
