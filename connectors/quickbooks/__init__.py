"""The QuickBooks Online source (``type: quickbooks``): customers, sales, refunds and marketing
spend in; per-customer metrics out into custom fields (or a block in the customer's Notes).

``auth.py`` holds OAuth (``intuit-oauth`` and the token vault), ``client.py`` the calls, the
limiter and the retry policy, ``streams.py`` the entities and their mapping, ``writer.py`` the
push. Payments are not read: they settle invoices already counted as sales (counting them too
would count the revenue twice), and a credit memo applied to an invoice through a payment is
already a refund of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from config.models import AppConfig, QuickBooksSource
from connectors.base import ConnectorContext, Console, Stream, Writer
from connectors.http import RetrySettings
from connectors.quickbooks.auth import QuickBooksAuth
from connectors.quickbooks.client import DEFAULT_TIMEOUT, WINDOW, QuickBooksClient
from connectors.quickbooks.streams import EntityStream, MappingContext, entity_specs, load_parents
from connectors.quickbooks.writer import QuickBooksWriter
from connectors.records import RecordKind

__all__ = ["QuickBooksConnector"]


class QuickBooksConnector:
    """One company: its streams (customers first), its writer, and the admin commands.

    ``retry``, ``clock``, ``timeout`` and ``window`` (of the throttle) are for tests and the
    benchmark; the service uses the defaults.
    """

    def __init__(
        self,
        source: QuickBooksSource,
        app: AppConfig,
        context: ConnectorContext,
        retry: RetrySettings = RetrySettings(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        window: float = WINDOW,
    ) -> None:
        self.system = source.name
        self.source = source
        self.home_currency = app.home_currency
        self.clock = clock
        self.auth = QuickBooksAuth(source, context.tokens, retry, clock)
        self.client = QuickBooksClient(source, self.auth, retry, timeout, window)

    def streams(self) -> Sequence[Stream]:
        parents = (
            partial(load_parents, self.client, self.source.page_size)
            if self.source.roll_up_sub_customers
            else None
        )
        ctx = MappingContext(self.home_currency, self.source.marketing_accounts, parents)
        specs = [
            spec
            for spec in entity_specs()
            if spec.record_kind is not RecordKind.SPEND or self.source.marketing_accounts
        ]
        return [
            EntityStream(spec, self.client, ctx, self.source.page_size, self.clock)
            for spec in specs
        ]

    def writer(self) -> Writer | None:
        return QuickBooksWriter(self.source, self.client)

    def authorize(self, console: Console) -> None:
        self.auth.authorize(console)

    def set_up(self, console: Console, dry_run: bool) -> None:
        QuickBooksWriter(self.source, self.client).set_up(console, dry_run)

    def status_notes(self) -> Sequence[str]:
        return self.auth.status_notes()
