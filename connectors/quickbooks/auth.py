"""OAuth 2.0 for QuickBooks Online, through ``intuit-oauth`` and the ledger's token vault.

``intuit-oauth``'s ``AuthClient`` reads its endpoints from Intuit's OpenID discovery document,
and takes the document's URL in place of an environment name, so the YAML's ``discovery_url``
points it at Intuit (production or development sandbox) or at the stand-in on 127.0.0.1. Its
calls are wrapped in the shared retry policy here (it has no retries, and no timeout of its
own: :class:`_TimedAuthClient` adds one).

Rotation: every refresh may return a new refresh token, and once the new value has been used
the old one fails with ``invalid_grant``. The new tokens are saved in the vault (committed)
*before* they are used, so a crash can only lose a token that was never used; the stored one
then still works (Intuit keeps the previous value valid until its successor is used).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError

from config.models import QuickBooksSource
from connectors.base import Console, TokenVault
from connectors.errors import AuthError, RetryableError
from connectors.http import RETRYABLE_STATUS, RetrySettings, require_https, retrying

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
CUSTOM_FIELD_SCOPE = "app-foundations.custom-field-definitions"
"""Needed for the custom-field definitions (App Foundations GraphQL API)."""
ACCESS_MARGIN = timedelta(minutes=5)
"""An access token this close to its end is renewed first (a page takes a while)."""
EXPIRY_WARNING = timedelta(days=30)
"""``status`` warns this long before the refresh token's hard expiry (Intuit's 2025 policy)."""
AUTH_TIMEOUT = (10.0, 30.0)


class _TimedAuthClient(AuthClient):  # type: ignore[misc]
    """``AuthClient`` is a ``requests.Session`` that never sets a timeout; this one does."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", AUTH_TIMEOUT)
        return super().request(*args, **kwargs)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime | None


def _error_code(error: AuthClientError) -> str:
    try:
        return str(json.loads(error.content).get("error", ""))
    except (ValueError, AttributeError, TypeError):
        return ""


class QuickBooksAuth:
    """The access token for API calls, renewed (and its rotated refresh token saved) as needed.

    ``clock`` gives the current UTC time; tests move it.
    """

    def __init__(
        self,
        source: QuickBooksSource,
        vault: TokenVault,
        retry: RetrySettings = RetrySettings(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        require_https(source.discovery_url, "discovery_url")
        self.source = source
        self.vault = vault
        self.retry = retry
        self.clock = clock
        self._client: AuthClient | None = None
        self._tokens: Tokens | None = None
        self._lock = threading.Lock()

    # -- the intuit-oauth client, under the retry policy ----------------------------------------

    def _call(self, what: str, action: Callable[[], Any]) -> Any:
        """Run one intuit-oauth call with retries; refusals become :class:`AuthError`."""
        for attempt in retrying(self.retry):
            with attempt:
                try:
                    return action()
                except (
                    requests.ConnectionError,
                    requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.JSONDecodeError,  # a cut-off answer
                ) as error:
                    raise RetryableError(
                        f"{self.source.name}: {what} failed: {type(error).__name__}"
                    ) from error
                except AuthClientError as error:
                    raise self._translate(what, error) from None
        raise AssertionError("unreachable: retrying re-raises the last error")

    def _translate(self, what: str, error: AuthClientError) -> Exception:
        status, code = error.status_code, _error_code(error)
        if status in RETRYABLE_STATUS:
            return RetryableError(f"{self.source.name}: {what} answered HTTP {status}")
        if code == "invalid_grant":
            return AuthError(
                f"QuickBooks refused the stored authorization of source {self.source.name!r} "
                "(invalid_grant: it was revoked, expired, or replaced by a newer one); run "
                f"`clm-sync auth {self.source.name}` to connect the company again"
            )
        if code == "invalid_client" or status == 401:
            return AuthError(
                f"QuickBooks refused the app credentials of source {self.source.name!r} "
                "(invalid_client); check client_id and client_secret against the app's Keys & "
                "credentials page"
            )
        return AuthError(
            f"{self.source.name}: {what} failed with HTTP {status} ({code or 'no code'})"
        )

    def client(self) -> AuthClient:
        if self._client is None:
            self._client = self._call(
                "reading Intuit's OpenID discovery document",
                lambda: _TimedAuthClient(
                    self.source.client_id,
                    self.source.client_secret,
                    self.source.redirect_uri,
                    self.source.discovery_url,
                ),
            )
            require_https(self._client.token_endpoint, "the token endpoint")
        return self._client

    # -- tokens ---------------------------------------------------------------------------------

    def _store(self, client: AuthClient) -> Tokens:
        """Save what the token endpoint just returned; committed before anyone uses it."""
        now = self.clock()
        refresh_in = getattr(client, "x_refresh_token_expires_in", None)
        hard_expiry = None if refresh_in is None else now + timedelta(seconds=int(refresh_in))
        tokens = Tokens(
            access_token=str(client.access_token),
            refresh_token=str(client.refresh_token),
            access_expires_at=now + timedelta(seconds=int(client.expires_in or 3600)),
            refresh_expires_at=hard_expiry,
        )
        self.vault.save(
            self.source.name,
            {
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "realm_id": self.source.realm_id,
            },
            tokens.access_expires_at,
            tokens.refresh_expires_at,
        )
        self._tokens = tokens
        return tokens

    def _load(self) -> Tokens:
        stored = self.vault.load(self.source.name)
        if stored is None or "refresh_token" not in stored.payload:
            raise AuthError(
                f"source {self.source.name!r} is not connected to QuickBooks yet; run "
                f"`clm-sync auth {self.source.name}`"
            )
        if stored.payload.get("realm_id") != self.source.realm_id:
            raise AuthError(
                f"the stored QuickBooks authorization of {self.source.name!r} is for company "
                f"{stored.payload.get('realm_id')}, not realm_id {self.source.realm_id}; run "
                f"`clm-sync auth {self.source.name}` again"
            )
        return Tokens(
            access_token=str(stored.payload.get("access_token", "")),
            refresh_token=str(stored.payload["refresh_token"]),
            access_expires_at=stored.access_expires_at or datetime.min.replace(tzinfo=UTC),
            refresh_expires_at=stored.refresh_expires_at,
        )

    def refresh(self) -> Tokens:
        """Trade the stored refresh token for new tokens, and save them before returning."""
        with self._lock:
            current = self._load()
            client = self.client()
            self._call("refreshing the access token", lambda: client.refresh(current.refresh_token))
            return self._store(client)

    def headers(self) -> Mapping[str, str]:
        """The ``Authorization`` header; renews the access token when it is (nearly) expired."""
        tokens = self._tokens or self._load()
        self._tokens = tokens
        if not tokens.access_token or tokens.access_expires_at - ACCESS_MARGIN <= self.clock():
            tokens = self.refresh()
        return {"Authorization": f"Bearer {tokens.access_token}"}

    def renew(self) -> bool:
        """Called on HTTP 401: the access token was refused, get a new one and try again."""
        self.refresh()
        return True

    # -- the interactive consent (`clm-sync auth`) and `status` ---------------------------------

    def scopes(self) -> list[str]:
        push = self.source.push
        wants_fields = push.enabled and push.fields and push.target == "custom_fields"
        return [ACCOUNTING_SCOPE, CUSTOM_FIELD_SCOPE] if wants_fields else [ACCOUNTING_SCOPE]

    def consent_url(self) -> str:
        """Intuit's consent page for this app and company.

        Built here rather than with ``AuthClient.get_authorization_url``, whose ``Scopes``
        enum has no custom-field scope; the endpoint is the discovery document's.
        """
        client = self.client()
        client.state_token = secrets.token_urlsafe(24)
        params = {
            "client_id": self.source.client_id,
            "response_type": "code",
            "scope": " ".join(self.scopes()),
            "redirect_uri": self.source.redirect_uri,
            "state": client.state_token,
        }
        return f"{client.auth_endpoint}?{urlencode(params)}"

    def complete(self, redirected_to: str) -> Tokens:
        """Exchange the code in the URL the browser was sent back to; save the tokens."""
        query = parse_qs(urlsplit(redirected_to.strip()).query)
        client = self.client()
        if "error" in query:
            raise AuthError(f"QuickBooks did not grant access: {query['error'][0]}")
        if "code" not in query:
            raise AuthError(
                "that address has no ?code=...; paste the whole address the browser shows "
                "after you pressed Connect"
            )
        if query.get("state", [""])[0] != client.state_token:
            raise AuthError(
                "the address belongs to another consent request (state mismatch); run "
                f"`clm-sync auth {self.source.name}` again and use the new link"
            )
        realm = query.get("realmId", [""])[0]
        if realm and realm != self.source.realm_id:
            raise AuthError(
                f"you connected company {realm}, but source {self.source.name!r} has realm_id "
                f"{self.source.realm_id}; fix realm_id in the YAML or connect that company"
            )
        code = query["code"][0]
        self._call(
            "exchanging the authorization code",
            lambda: client.get_bearer_token(code, realm_id=self.source.realm_id),
        )
        return self._store(client)

    def authorize(self, console: Console) -> None:
        console.say(
            f"Open this address in a browser, sign in to QuickBooks and connect company "
            f"{self.source.realm_id}:\n\n{self.consent_url()}\n"
        )
        redirected = console.ask("Paste the whole address the browser was sent to afterwards")
        tokens = self.complete(redirected)
        until = (
            f"; the authorization expires on {tokens.refresh_expires_at:%Y-%m-%d}"
            if tokens.refresh_expires_at
            else ""
        )
        console.say(f"Connected QuickBooks company {self.source.realm_id}{until}.")

    def status_notes(self) -> list[str]:
        stored = self.vault.load(self.source.name)
        if stored is None:
            return [f"not connected to QuickBooks yet: run `clm-sync auth {self.source.name}`"]
        expires = stored.refresh_expires_at
        if expires is None:
            return []
        left = expires - self.clock()
        if left <= timedelta(0):
            return [
                f"the QuickBooks authorization expired on {expires:%Y-%m-%d}: run "
                f"`clm-sync auth {self.source.name}`"
            ]
        if left <= EXPIRY_WARNING:
            return [
                f"the QuickBooks authorization expires on {expires:%Y-%m-%d} (in {left.days} "
                f"days): run `clm-sync auth {self.source.name}` before then"
            ]
        return []
