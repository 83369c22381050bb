"""EWS session through exchangelib: one Account per mailbox, a fault-tolerant retry policy.

exchangelib retries only when it is given a fault-tolerant retry policy: then it honours
Exchange's ``ErrorServerBusy`` back-off hint (``BackOffMilliseconds``) and waits out
connection errors, for at most ``max_wait``. The schema version is pinned to Exchange 2013,
which every supported server speaks, so no request is spent guessing it.

Every HTTP request to Exchange takes a slot of a client-side :class:`RateLimiter` first (the
YAML ``limits:``), one per throttling budget as Exchange charges them: the service account's
single budget under delegate access, each mailbox's own under ApplicationImpersonation
(exchangelib names the mailbox in the ``X-AnchorMailbox`` header). The slot is taken in the
HTTP adapter, exchangelib's documented extension point, so every request counts once, retries
and NTLM handshakes included, whichever exchangelib call sent it.

Contacts carry clm-sync's figures as named string properties in PS_PUBLIC_STRINGS, the set of
Outlook's user-defined fields: each pushed field is registered on exchangelib's ``Contact``
as an extended property (``clm_<field>``).
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
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
from exchangelib.protocol import BaseProtocol
from exchangelib.version import EXCHANGE_2013

from config.models import EwsSource, OutlookLimits, parse_duration
from connectors.errors import AuthError, RetryableError
from connectors.http import RateLimiter, require_https

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


class Budgets:
    """The client-side limiters of one EWS endpoint, one per Exchange throttling budget."""

    def __init__(self, limits: OutlookLimits, *, per_mailbox: bool) -> None:
        self.limits = limits
        self.per_mailbox = per_mailbox
        self._limiters: dict[str, RateLimiter] = {}
        self._lock = threading.Lock()

    def limiter(self, mailbox: str | None) -> RateLimiter:
        """The limiter of a request for ``mailbox`` (the account's own under delegate access)."""
        key = (mailbox or "").lower() if self.per_mailbox else ""
        with self._lock:
            if key not in self._limiters:
                self._limiters[key] = RateLimiter(
                    self.limits.max_requests,
                    parse_duration(self.limits.window).total_seconds(),
                    self.limits.max_concurrent,
                )
            return self._limiters[key]


_BUDGETS: dict[str, Budgets] = {}
"""Endpoint (see :func:`_endpoint_key`) -> the budgets of the client built last for it."""


def _endpoint_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.lower()}"


class BudgetedAdapter(requests.adapters.HTTPAdapter):
    """exchangelib's HTTP adapter, sending each request to a known endpoint inside a slot."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        budgets = _BUDGETS.get(_endpoint_key(request.url or ""))
        if budgets is None:
            return super().send(request, *args, **kwargs)
        anchor = request.headers.get("X-AnchorMailbox")
        with budgets.limiter(anchor if isinstance(anchor, str) else None).slot():
            return super().send(request, *args, **kwargs)


BaseProtocol.HTTP_ADAPTER_CLS = BudgetedAdapter


class EwsClient:
    """Accounts of the source's mailboxes, sharing one configuration (and connection pool)."""

    def __init__(
        self, source: EwsSource, *, timeout: float | None = None, retry_wait: float | None = None
    ) -> None:
        """``timeout`` (exchangelib: 120 s) bounds one request; ``retry_wait`` (10 s) is the
        first wait after a 503 or timeout without a server hint, doubling on each retry."""
        require_https(source.ews_url, "ews_url")
        self.source = source
        self.timeout = timeout
        self.retry_wait = retry_wait
        self.config = Configuration(
            service_endpoint=source.ews_url,
            credentials=Credentials(source.username, source.password),
            auth_type=NTLM if source.auth_type == "ntlm" else BASIC,
            version=Version(build=EXCHANGE_2013),
            retry_policy=FaultTolerance(max_wait=parse_duration(source.max_wait).total_seconds()),
            max_connections=source.max_connections,
        )
        self.budgets = Budgets(source.limits, per_mailbox=source.impersonation)
        with _REGISTRY_LOCK:
            _BUDGETS[_endpoint_key(source.ews_url)] = self.budgets
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
                protocol = self._accounts[key].protocol  # shared by the accounts of a config
                if self.timeout is not None:
                    protocol.TIMEOUT = self.timeout
                if self.retry_wait is not None:
                    protocol.RETRY_WAIT = self.retry_wait
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
