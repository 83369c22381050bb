"""Webhook signatures of the shops: which header, and how the body is signed.

Shopify and WooCommerce both sign the raw request body with HMAC-SHA256 under a shared
secret and send the digest base64-encoded — Shopify in ``X-Shopify-Hmac-Sha256`` (the app's
client secret), WooCommerce in ``X-WC-Webhook-Signature`` (the webhook's secret). The digest
is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from config.models import ShopifySource, SourceConfig, WooCommerceSource

SHOPIFY_HEADER = "X-Shopify-Hmac-Sha256"
WOOCOMMERCE_HEADER = "X-WC-Webhook-Signature"
TOPIC_HEADERS = ("X-Shopify-Topic", "X-WC-Webhook-Topic")
"""Where each shop names what a webhook is about (``customers/delete``, ``order.updated``)."""


def sign(secret: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of ``body`` under ``secret``, as both shops send it."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_header(source: SourceConfig) -> str | None:
    """The header a source's webhooks carry their signature in; None: it takes none."""
    match source:
        case ShopifySource():
            return SHOPIFY_HEADER
        case WooCommerceSource():
            return WOOCOMMERCE_HEADER
        case _:
            return None


def verified(source: SourceConfig, headers: Mapping[str, str], body: bytes) -> bool:
    """True if the request is signed with the source's webhook secret."""
    header = signature_header(source)
    secret = getattr(source, "webhook_secret", None)
    if header is None or not secret:
        return False
    lowered = {name.lower(): value for name, value in headers.items()}
    given = lowered.get(header.lower())
    return given is not None and hmac.compare_digest(given.strip(), sign(secret, body))


def topic(headers: Mapping[str, str]) -> str | None:
    """The webhook's topic, as the shop names it, if it says."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for header in TOPIC_HEADERS:
        if header.lower() in lowered:
            return lowered[header.lower()].strip()
    return None
