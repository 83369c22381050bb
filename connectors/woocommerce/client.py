"""The WooCommerce REST API v3 (``/wp-json/wc/v3/``) with a consumer key and secret.

The key and secret go in an HTTP Basic ``Authorization`` header, over HTTPS only (plain
HTTP only to this machine). Some hosts strip that header before PHP sees it; WooCommerce then
answers 401, and the client switches to its query-string form (``consumer_key`` and
``consumer_secret`` parameters, still over HTTPS) for the rest of the process
(https://woocommerce.github.io/woocommerce-rest-api-docs/#authentication-over-https).
Lists are paged with ``page`` and ``per_page`` (at most 100); ``X-WP-TotalPages`` says how
many pages there are.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.models import WooCommerceSource
from connectors.errors import AuthError, RetryableError, SourceError
from connectors.http import HttpClient, RetrySettings, require_https, retrying

log = logging.getLogger(__name__)

API_PATH = "wp-json/wc/v3/"
TOTAL_PAGES = "X-WP-TotalPages"


@dataclass(frozen=True, slots=True)
class Listing:
    items: list[dict[str, Any]]
    total_pages: int | None


class WooClient:
    def __init__(
        self,
        source: WooCommerceSource,
        *,
        retry: RetrySettings = RetrySettings(),
        timeout: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        site = source.url.rstrip("/")
        require_https(site, f"WooCommerce url of source {source.name!r}")
        self.source = source
        self.retry = retry
        self.query_auth = source.query_string_auth
        token = base64.b64encode(
            f"{source.consumer_key}:{source.consumer_secret}".encode()
        ).decode()
        self._basic = {"Authorization": f"Basic {token}"}
        self._last_page: dict[str, tuple[int, list[Any]]] = {}
        self.http = HttpClient(
            f"{site}/{API_PATH}",
            system=source.name,
            retry=retry.single_attempt(),
            timeout=timeout,
            auth_headers=lambda: {} if self.query_auth else self._basic,
        )

    def _params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        merged = dict(params or {})
        if self.query_auth:
            merged["consumer_key"] = self.source.consumer_key
            merged["consumer_secret"] = self.source.consumer_secret
        return merged

    def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """One call; JSON body and headers. A 401 with header auth retries in query form."""
        try:
            return self._call(method, path, params, body)
        except AuthError:
            if self.query_auth:
                raise
            log.warning(
                "%s: WooCommerce refused the Authorization header; sending the key as query "
                "parameters instead (the server probably strips the header)",
                self.source.name,
            )
            self.query_auth = True
            try:
                return self._call(method, path, params, body)
            except AuthError:
                raise AuthError(
                    f"{self.source.name}: WooCommerce refused the consumer key and secret, "
                    "in the Authorization header and as query parameters; check "
                    "consumer_key and consumer_secret, and that the key has Read/Write "
                    "permission (WooCommerce > Settings > Advanced > REST API)"
                ) from None

    def _call(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: Any
    ) -> tuple[Any, Mapping[str, str]]:
        for attempt in retrying(self.retry):
            with attempt:
                response = self.http.request(
                    method, path, params=self._params(params), json_body=body
                )
                try:
                    return response.json(), response.headers
                except ValueError:
                    raise RetryableError(
                        f"{self.source.name}: WooCommerce {method} {path} returned malformed "
                        f"JSON ({len(response.content):,} bytes)"
                    ) from None
        raise AssertionError("unreachable: retrying re-raises the last error")

    def list(self, path: str, params: Mapping[str, Any]) -> Listing:
        """One page of a list; a page equal to the one before it stops the loop."""
        body, headers = self.call("GET", path, params)
        if not isinstance(body, list):
            raise RetryableError(
                f"{self.source.name}: WooCommerce {path} answered {type(body).__name__}, not a list"
            )
        pages = headers.get(TOTAL_PAGES)
        total = int(pages) if pages and pages.isdigit() else None
        items = [item for item in body if isinstance(item, dict)]
        ids = [item.get("id") for item in items]
        page = int(params.get("page") or 1)
        previous = self._last_page.get(path)
        if ids and previous is not None and previous == (page - 1, ids):
            raise SourceError(
                f"{self.source.name}: WooCommerce answered page {page} of {path} with the "
                f"same records as page {page - 1}; the server seems to ignore the page "
                "parameter (a caching plugin or proxy?), so clm-sync stops instead of paging "
                "forever"
            )
        self._last_page[path] = (page, ids)
        return Listing(items, total)
