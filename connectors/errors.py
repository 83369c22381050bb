"""Connector errors, grouped by what the caller does next.

::

    ConnectorError
    ├── RetryableError     transient (connection, 5xx, 429): the retry policy tries again,
    │                      then the cycle records the error and the next cycle resumes
    ├── AuthError          credentials missing, expired or revoked: an admin must act
    └── SourceError        the source is misconfigured or unreadable (missing folder, a file
                           without its required columns): an admin must fix the source

A bad *record* is not an error: the stream yields it as :class:`connectors.records.Rejected`
and ingest quarantines it. Messages name the thing, the cause and the fix, never a secret.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class RetryableError(ConnectorError):
    """A transient failure worth retrying (connection error, HTTP 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """The remote refused our credentials; retrying will not help until an admin acts."""


class SourceError(ConnectorError):
    """The source cannot be read as configured; the message says what to change."""
