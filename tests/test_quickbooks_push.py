"""QuickBooks push: custom-field setup and values, stale SyncTokens, faults, the Notes block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from config.models import AppConfig
from connectors.notes_block import BEGIN, split_notes
from connectors.quickbooks import QuickBooksConnector
from sandbox.quickbooks import QuickBooksStandIn
from sandbox.synthetic import BusinessSpec
from sync.cycle import SyncService
from sync.db import create_ledger_engine, ensure_current_schema
from sync.push import PushResult
from sync.tokens import SECRET_KEY_ENV
from tests.quickbooks_support import KEY_TEXT, ledger_customers, source_config

TINY = BusinessSpec(seed=9, customers=25)
FIELDS = [
    {"metric": "net_revenue", "field": "Lifetime revenue", "format": ".2f"},
    {"metric": "orders", "field": "Orders"},
    {"metric": "last_purchase", "field": "Last purchase", "format": "%Y-%m-%d"},
]
BATCH_ROUTE = r"/v3/company/(?P<realm>\d+)/batch"


class Console:
    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)

    def ask(self, question: str) -> str:
        raise AssertionError(f"setup asked {question!r}")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: these tests are about the writer; the push engine's ledger side runs on
    both databases in tests/test_push.py."""
    made = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ensure_current_schema(made)
    yield made
    made.dispose()


@pytest.fixture
def stand_in() -> Iterator[QuickBooksStandIn]:
    with QuickBooksStandIn(TINY) as server:
        yield server


def service(
    stand_in: QuickBooksStandIn,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    **push: Any,
) -> tuple[SyncService, QuickBooksConnector]:
    monkeypatch.setenv(SECRET_KEY_ENV, KEY_TEXT.decode())
    source = source_config(stand_in, push={"fields": FIELDS, **push})
    app = AppConfig(ledger="sqlite:///unused.db", sources=[source])
    sync = SyncService(app, engine)
    made = sync.connector(source)
    assert isinstance(made, QuickBooksConnector)
    made.auth.complete(stand_in.consent(made.auth.consent_url()))
    return sync, made


def pushed(sync: SyncService) -> PushResult:
    outcome = sync.cycle()
    assert [source.status for source in outcome.sources] == ["ok"]
    assert outcome.step is not None
    (result,) = outcome.step.pushes
    return result


def custom_values(stand_in: QuickBooksStandIn, customer_id: str) -> dict[str, str]:
    customer = stand_in.company.objects["Customer"][customer_id]
    return {value["Name"]: value["StringValue"] for value in customer.get("CustomField", [])}


def test_setup_creates_the_missing_definitions_once(
    stand_in: QuickBooksStandIn, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, made = service(stand_in, engine, monkeypatch)
    dry = Console()
    made.set_up(dry, dry_run=True)
    assert stand_in.company.custom_fields == {}
    assert any("would create" in line and "Orders" in line for line in dry.said)

    made.set_up(Console(), dry_run=False)
    again = Console()
    made.set_up(again, dry_run=False)

    labels = sorted(node["label"] for node in stand_in.company.custom_fields.values())
    assert labels == ["Last purchase", "Lifetime revenue", "Orders"]
    assert again.said[-1] == "every mapped custom field exists; nothing to create"


def test_push_writes_the_custom_fields_and_a_second_cycle_sends_nothing(
    stand_in: QuickBooksStandIn, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync, made = service(stand_in, engine, monkeypatch)
    made.set_up(Console(), dry_run=False)

    first = pushed(sync)

    assert first.failed == 0 and first.pushed > 0
    with_fields = [c for c in stand_in.company.live("Customer") if c.get("CustomField")]
    assert len(with_fields) * len(FIELDS) >= first.pushed
    sample = custom_values(stand_in, with_fields[0]["Id"])
    assert set(sample) == {"Lifetime revenue", "Orders", "Last purchase"}
    assert float(sample["Lifetime revenue"]) > 0
    batches = stand_in.server.stats.by_route[BATCH_ROUTE]
    assert batches == -(-len(with_fields) // 10)  # ten customers per batch call

    second = pushed(sync)

    assert (second.planned, second.pushed) == (0, 0)
    assert stand_in.server.stats.by_route[BATCH_ROUTE] == batches


def test_missing_definitions_are_reported_not_sent(
    stand_in: QuickBooksStandIn, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync, _ = service(stand_in, engine, monkeypatch)

    result = pushed(sync)

    assert result.pushed == 0 and result.failed == result.planned > 0
    assert "clm-sync setup qbo" in result.errors[0]
    assert BATCH_ROUTE not in stand_in.server.stats.by_route


def test_a_stale_sync_token_is_read_again_and_sent_once_more(
    stand_in: QuickBooksStandIn, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync, made = service(stand_in, engine, monkeypatch)
    made.set_up(Console(), dry_run=False)
    stand_in.edited_meanwhile = {"1", "2"}

    result = pushed(sync)

    assert result.failed == 0
    assert set(custom_values(stand_in, "1")) == {"Lifetime revenue", "Orders", "Last purchase"}
    assert stand_in.edited_meanwhile == set()


def test_a_validation_fault_is_reported_with_its_text_and_not_retried(
    stand_in: QuickBooksStandIn, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync, made = service(stand_in, engine, monkeypatch)
    made.set_up(Console(), dry_run=False)
    stand_in.invalid_customers = {"3"}

    result = pushed(sync)

    assert result.failed == len(FIELDS)
    assert any(e.startswith("3: ") and "Duplicate Name Exists" in e for e in result.errors)
    assert custom_values(stand_in, "3") == {}
    assert custom_values(stand_in, "4") != {}


USER_NOTES = "Met at the fair.\r\n  Prefers e-mail;\ttabs\tstay.\n\n\u00e9t\u00e9 \U0001f600 "


def test_the_notes_block_leaves_the_users_text_byte_for_byte(
    stand_in: QuickBooksStandIn, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in.company.update("Customer", "2", Notes=USER_NOTES)
    sync, _ = service(stand_in, engine, monkeypatch, target="notes")

    first = pushed(sync)

    assert first.failed == 0 and first.pushed > 0
    notes = stand_in.company.objects["Customer"]["2"]["Notes"]
    assert split_notes(notes).user_text == USER_NOTES
    assert notes.startswith(USER_NOTES)
    assert "Lifetime revenue: " in notes and "Orders: " in notes
    assert len(notes) <= 1024
    other = stand_in.company.objects["Customer"]["4"]["Notes"]
    assert other.startswith(BEGIN)

    second = pushed(sync)

    assert second.planned == 0
    assert stand_in.company.objects["Customer"]["2"]["Notes"] == notes
    # Read back, the customer's notes are the user's own text only (as the ledger stores text).
    assert ledger_customers(engine)["2"]["notes"] == USER_NOTES.strip()


def test_a_notes_block_that_does_not_fit_is_shortened_and_says_so(
    stand_in: QuickBooksStandIn, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_text = "x" * 890
    stand_in.company.update("Customer", "2", Notes=long_text)
    sync, _ = service(stand_in, engine, monkeypatch, target="notes")

    result = pushed(sync)

    notes = stand_in.company.objects["Customer"]["2"]["Notes"]
    assert notes.startswith(long_text) and len(notes) <= 1024
    assert "(more figures in clm-sync)" in notes
    assert any(e.startswith("2: ") and "left out" in e for e in result.errors)
