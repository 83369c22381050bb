"""The webhook listener of ``clm-sync run``: a verified shop webhook starts its source early.

``POST /webhooks/SOURCE-NAME`` with a body signed by that source's ``webhook_secret``
(:mod:`connectors.webhooks`) is answered 202 and ``trigger(SOURCE-NAME)`` is called, which
moves the source's scheduled pull to now; the webhook's content is not used, because the
pull reads the shop anyway, but its topic is passed on (``heard``): a Shopify
``customers/delete`` makes that pull look for deleted customers. Anything unsigned or
wrongly signed is answered 401, logged and changes nothing; an unknown source is 404.
Bodies over :data:`MAX_BODY` are refused (413).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from config.models import AppConfig
from connectors.webhooks import signature_header, topic, verified

log = logging.getLogger(__name__)

PATH_PREFIX = "/webhooks/"
MAX_BODY = 5 * 1024 * 1024


class WebhookListener:
    """A threaded HTTP server; use as a context manager. ``port`` 0 picks a free one."""

    def __init__(
        self,
        app: AppConfig,
        host: str,
        port: int,
        trigger: Callable[[str], None],
        heard: Callable[[str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.trigger = trigger
        self.heard = heard
        """Told the source and topic of a verified webhook before its cycle is triggered."""
        self.accepted = 0
        self.refused = 0
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> WebhookListener:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        log.info("listening for shop webhooks on port %d", self.port)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        """The status for one webhook; calls the trigger for a verified one."""
        name = path.removeprefix(PATH_PREFIX).strip("/") if path.startswith(PATH_PREFIX) else ""
        source = next((s for s in self.app.sources if s.name == name), None)
        if source is None or signature_header(source) is None:
            return 404
        if not verified(source, headers, body):
            self.refused += 1
            log.warning(
                "refused a webhook for %s: missing or wrong signature (check webhook_secret)",
                name,
            )
            return 401
        self.accepted += 1
        about = topic(headers)
        log.info("webhook for %s (%s): starting its cycle early", name, about or "no topic")
        if about and self.heard is not None:
            self.heard(name, about)
        self.trigger(name)
        return 202

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    status = 413
                else:
                    body = self.rfile.read(length) if length else b""
                    headers = {name: value for name, value in self.headers.items()}
                    status = listener.answer(self.path.split("?", 1)[0], headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the listener logs what matters itself."""

        return _Handler
