"""EWS session through exchangelib: one Account per mailbox, a fault-tolerant retry policy.

exchangelib retries only when it is given a fault-tolerant retry policy: then it honours
Exchange's ``ErrorServerBusy`` back-off hint (``BackOffMilliseconds``) and waits out
connection errors, for at most ``max_wait``. The schema version is pinned to Exchange 2013,
which every supported server speaks, so no request is spent guessing it.

Contacts carry clm-sync's figures as named string properties in PS_PUBLIC_STRINGS, the set of
Outlook's user-defined fields: each pushed field is registered on exchangelib's ``Contact``
as an extended property (``clm_<field>``).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    Account,
    Configuration,
    Contact,
    Credentials,
    ExtendedProperty,
    FaultTolerance,
    Version,
)
from exchangelib.errors import ErrorServerBusy, TransportError, UnauthorizedError
from exchangelib.version import EXCHANGE_2013

from config.models import EwsSource, parse_duration
from connectors.errors import AuthError, RetryableError
from connectors.http import require_https

SYSTEM_LABEL = "Exchange (EWS)"
_REGISTRY_LOCK = threading.Lock()
_registered: dict[str, str] = {}
"""Pushed field name -> the attribute registered on exchangelib's Contact."""


def property_attribute(field: str) -> str:
    """The Contact attribute of a pushed field's named property (registered once)."""
    with _REGISTRY_LOCK:
        if field in _registered:
            return _registered[field]
        attr = "clm_" + re.sub(r"\W+", "_", field.lower()).strip("_")
        while attr in _registered.values():
            attr += "_"
        prop = type(
            f"ClmProperty_{len(_registered)}",
            (ExtendedProperty,),
            {
                "distinguished_property_set_id": "PublicStrings",
                "property_name": field,
                "property_type": "String",
            },
        )
        Contact.register(attr, prop)
        _registered[field] = attr
        return attr


class EwsClient:
    """Accounts of the source's mailboxes, sharing one configuration (and connection pool)."""

    def __init__(self, source: EwsSource) -> None:
        require_https(source.ews_url, "ews_url")
        self.source = source
        self.config = Configuration(
            service_endpoint=source.ews_url,
            credentials=Credentials(source.username, source.password),
            auth_type=NTLM if source.auth_type == "ntlm" else BASIC,
            version=Version(build=EXCHANGE_2013),
            retry_policy=FaultTolerance(max_wait=parse_duration(source.max_wait).total_seconds()),
            max_connections=source.max_connections,
        )
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()
        for mapping in source.push.fields:
            property_attribute(mapping.field)

    def account(self, mailbox: str) -> Account:
        with self._lock:
            key = mailbox.lower()
            if key not in self._accounts:
                self._accounts[key] = Account(
                    primary_smtp_address=mailbox,
                    config=self.config,
                    autodiscover=False,
                    access_type=IMPERSONATION if self.source.impersonation else DELEGATE,
                )
            return self._accounts[key]


def translate(error: Exception, what: str) -> Exception:
    """exchangelib's errors as the connector errors the cycle knows (or the error itself)."""
    if isinstance(error, UnauthorizedError):
        return AuthError(
            f"{SYSTEM_LABEL}: {what}: the service account was refused; check `username` and "
            "`password`, and that it has delegate access (or ApplicationImpersonation) to "
            "the mailbox"
        )
    if isinstance(error, ErrorServerBusy | TransportError | ConnectionError):
        return RetryableError(f"{SYSTEM_LABEL}: {what}: {type(error).__name__}: {error}")
    return error


def iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
