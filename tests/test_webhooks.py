"""Shop webhooks: only a correctly signed one starts its source's cycle early."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from config.models import AppConfig
from connectors.webhooks import SHOPIFY_HEADER, WOOCOMMERCE_HEADER, sign
from sandbox.shop import build_shop
from sandbox.shopify import ShopifyStandIn
from sandbox.synthetic import BusinessSpec
from sync.db import create_ledger_engine
from sync.ledger import RunRecord
from sync.webhooks import WebhookListener
from tests.conftest import ROOT

RUNS = RunRecord.__table__  # type: ignore[attr-defined]
BODY = b'{"id": 820982911946154508, "email": "jon@example.com"}'
APP = AppConfig.model_validate(
    {
        "ledger": "sqlite:///unused.db",
        "sources": [
            {
                "type": "shopify",
                "name": "shop",
                "store_url": "https://example.myshopify.com",
                "access_token": "token",
                "webhook_secret": "shopify-secret",
            },
            {
                "type": "woocommerce",
                "name": "woo",
                "url": "https://shop.example.com",
                "consumer_key": "ck",
                "consumer_secret": "cs",
                "webhook_secret": "woo-secret",
            },
            {"type": "csv", "name": "exports", "path": "/tmp/exports"},
        ],
    }
)


@pytest.fixture
def listener() -> Iterator[tuple[WebhookListener, list[str]]]:
    triggered: list[str] = []
    with WebhookListener(APP, "127.0.0.1", 0, triggered.append) as running:
        yield running, triggered


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    url = f"http://127.0.0.1:{port}{path}"
    return requests.post(url, data=body, headers=headers, timeout=5).status_code


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/webhooks/shop", {}, 401),
        ("/webhooks/shop", {SHOPIFY_HEADER: sign("wrong-secret", BODY)}, 401),
        ("/webhooks/shop", {SHOPIFY_HEADER: sign("shopify-secret", BODY + b" ")}, 401),
        ("/webhooks/shop", {WOOCOMMERCE_HEADER: sign("shopify-secret", BODY)}, 401),
        ("/webhooks/woo", {WOOCOMMERCE_HEADER: sign("shopify-secret", BODY)}, 401),
        ("/webhooks/exports", {SHOPIFY_HEADER: sign("shopify-secret", BODY)}, 404),
        ("/webhooks/nope", {SHOPIFY_HEADER: sign("shopify-secret", BODY)}, 404),
    ],
)
def test_unsigned_or_wrongly_signed_webhooks_are_refused_and_change_nothing(
    listener: tuple[WebhookListener, list[str]], path: str, headers: dict[str, str], status: int
) -> None:
    running, triggered = listener

    assert post(running.port, path, BODY, headers) == status
    assert triggered == []


def test_correctly_signed_webhooks_trigger_their_source(
    listener: tuple[WebhookListener, list[str]],
) -> None:
    running, triggered = listener

    shop = post(
        running.port, "/webhooks/shop", BODY, {SHOPIFY_HEADER: sign("shopify-secret", BODY)}
    )
    woo = post(running.port, "/webhooks/woo", BODY, {WOOCOMMERCE_HEADER: sign("woo-secret", BODY)})

    assert (shop, woo) == (202, 202)
    assert triggered == ["shop", "woo"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pulls(url: str) -> list[str]:
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(RUNS.c.status).where(RUNS.c.source == "shop").order_by(RUNS.c.id)
            ).scalars()
            return list(rows)
    except Exception:  # the service has not created the ledger yet
        return []
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_signed_webhook_makes_the_running_service_pull_again(tmp_path: Path) -> None:
    fake = ShopifyStandIn(build_shop(BusinessSpec(seed=3, customers=40)), restore_rate=20_000)
    port = free_port()
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = tmp_path / "clm-sync.yaml"
    with fake.server() as server:
        config.write_text(
            f"ledger: {ledger}\n"
            "sources:\n"
            "  - name: shop\n"
            "    type: shopify\n"
            f"    store_url: {server.url}\n"
            "    access_token: ${SHOP_TOKEN}\n"
            "    webhook_secret: ${SHOP_SECRET}\n"
            "    bulk_backfill: false\n"
            "    schedule: {every: 1d}\n",
            encoding="utf-8",
        )
        service = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "daemon.py"),
                "run",
                "--config",
                str(config),
                "--webhook-port",
                str(port),
            ],
            env={**os.environ, "SHOP_TOKEN": fake.token, "SHOP_SECRET": "s3cret"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: pulls(ledger) == ["ok"])
            assert post(port, "/webhooks/shop", BODY, {SHOPIFY_HEADER: sign("bad", BODY)}) == 401
            signed = {SHOPIFY_HEADER: sign("s3cret", BODY)}
            assert post(port, "/webhooks/shop", BODY, signed) == 202
            wait_for(lambda: pulls(ledger) == ["ok", "ok"])
        finally:
            service.send_signal(signal.SIGTERM)
            _, errors = service.communicate(timeout=60)
    assert service.returncode == 0, errors
    assert "refused a webhook for shop" in errors
