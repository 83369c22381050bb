"""The push engine (sync/push.py): mapping checks, formatting, and the diff against
``push_state`` with a fake writer, on both databases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

import sync.push
from config.models import AppConfig, PushField
from connectors.base import Connector, Stream, Writer, WriteResult
from connectors.errors import AuthError
from connectors.records import FieldUpdate, SourceCustomer, SourceTransaction, TransactionKind
from sync.cycle import SyncService
from sync.figures import compute_figures
from sync.ledger import PushState, RunRecord
from sync.push import PushConfigError, mapping_problems, push_system, render
from sync.reconcile import reconcile
from sync.runs import RunStatus
from tests.conftest import ingest_records

STATE = PushState.__table__  # type: ignore[attr-defined]
RUNS = RunRecord.__table__  # type: ignore[attr-defined]
AS_OF = datetime(2024, 7, 1, tzinfo=UTC)
NOW = datetime(2024, 7, 1, 6, 0, tzinfo=UTC)
FIELDS = [
    PushField(metric="net_revenue", field="lifetime_revenue", format=".2f"),
    PushField(metric="orders", field="orders"),
    PushField(metric="last_purchase", field="last_purchase", format="%d.%m.%Y"),
]


# -- mapping and formats --------------------------------------------------------------------


def app_config(*push_fields: dict[str, str], name: str = "shop") -> AppConfig:
    return AppConfig.model_validate(
        {
            "ledger": "sqlite:///unused.db",
            "sources": [
                {
                    "type": "csv",
                    "name": name,
                    "path": ".",
                    "push": {"enabled": True, "fields": list(push_fields)},
                }
            ],
        }
    )


def test_known_metrics_are_no_problem() -> None:
    config = app_config(*({"metric": field.metric, "field": field.field} for field in FIELDS))
    assert mapping_problems(config) == []


def test_an_unknown_metric_is_named_with_its_place_and_a_suggestion() -> None:
    config = app_config(
        {"metric": "orders", "field": "Orders"},
        {"metric": "net_revenu", "field": "Revenue"},
        {"metric": "zodiac_sign", "field": "Sign"},
    )
    problems = mapping_problems(config)
    assert len(problems) == 2
    assert problems[0] == (
        "sources[shop].push.fields[1]: unknown metric 'net_revenu'; did you mean 'net_revenue'?"
    )
    assert problems[1].startswith("sources[shop].push.fields[2]: unknown metric 'zodiac_sign';")
    assert "known: orders, net_revenue, first_purchase, last_purchase, recency_days" in problems[1]


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        ("1234.5", ".2f", "1234.50"),
        ("1234.5", ",.2f", "1,234.50"),
        ("0.125", ".2f", "0.12"),  # Decimal formatting rounds half-even
        ("-7.1", ".2f", "-7.10"),
        ("19.99", "", "19.99"),
        (3, "", "3"),
        (3, "d", "3"),
        (1234, ",", "1,234"),
        (2, ".2f", "2.00"),
        (0, ".2f", "0.00"),
        ("2024-05-01", "%Y-%m-%d", "2024-05-01"),
        ("2024-05-01", "%d.%m.%Y", "01.05.2024"),
        ("2024-05-01", "", "2024-05-01"),
        (None, ".2f", ""),
        (None, "%Y-%m-%d", ""),
        (None, "", ""),
    ],
)
def test_render_applies_the_format(value: Any, spec: str, expected: str) -> None:
    assert render(value, spec) == expected


@pytest.mark.parametrize(
    ("value", "spec"),
    [("abc", ".2f"), ("2024-13-01", "%Y-%m-%d"), (5, "%Y-%m-%d"), ("1.5", "q")],
)
def test_a_format_that_cannot_apply_is_a_config_error(value: Any, spec: str) -> None:
    with pytest.raises(PushConfigError, match="cannot apply to"):
        render(value, spec)


# -- push_system against the ledger ---------------------------------------------------------


class FakeWriter:
    """Accepts everything except the ``reject``ed (record, field) pairs; raises on call
    number ``fail_on_call``."""

    def __init__(
        self,
        max_batch: int = 100,
        reject: Sequence[tuple[str, str]] = (),
        fail_on_call: int | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.reject = set(reject)
        self.fail_on_call = fail_on_call
        self.batches: list[list[FieldUpdate]] = []
        self.accepted: list[FieldUpdate] = []

    def write(self, updates: Sequence[FieldUpdate]) -> Sequence[WriteResult]:
        self.batches.append(list(updates))
        if len(self.batches) == self.fail_on_call:
            raise AuthError("shop refused the access token; reconnect it with `clm-sync auth`")
        results = []
        for update in updates:
            if (update.external_id, update.field) in self.reject:
                results.append(WriteResult(update, "the field is read-only"))
            else:
                results.append(WriteResult(update))
                self.accepted.append(update)
        return results

    def values(self) -> dict[tuple[str, str], str]:
        return {(u.external_id, u.field): u.value for u in self.accepted}


def sale(
    external_id: str, customer: str, day: str, amount: str, refund: bool = False
) -> SourceTransaction:
    kind = TransactionKind.REFUND if refund else TransactionKind.SALE
    moment = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return SourceTransaction(external_id, customer, moment, Decimal(amount), "USD", kind)


def refresh(engine: Engine) -> None:
    reconcile(engine, NOW)
    compute_figures(engine, AS_OF)


def three_customers(engine: Engine, system: str = "shop") -> None:
    ingest_records(
        engine,
        system,
        [
            SourceCustomer("C1"),
            SourceCustomer("C2"),
            SourceCustomer("C3"),  # a prospect
            sale("T1", "C1", "2024-05-01", "10.5"),
            sale("T2", "C1", "2024-06-15", "20.25"),
            sale("T3", "C2", "2024-03-02", "99"),
        ],
    )
    refresh(engine)


FIRST_PUSH = {
    ("C1", "lifetime_revenue"): "30.75",
    ("C1", "orders"): "2",
    ("C1", "last_purchase"): "15.06.2024",
    ("C2", "lifetime_revenue"): "99.00",
    ("C2", "orders"): "1",
    ("C2", "last_purchase"): "02.03.2024",
    ("C3", "lifetime_revenue"): "0.00",
    ("C3", "orders"): "0",
    # C3 has no last purchase: an empty value that was never written is not sent.
}


def push_state(engine: Engine) -> dict[tuple[str, str], tuple[str, datetime]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(STATE.c.external_id, STATE.c.field, STATE.c.value, STATE.c.pushed_at)
        )
        return {(ext, name): (value, at) for ext, name, value, at in rows}


def values(state: dict[tuple[str, str], tuple[str, datetime]]) -> dict[tuple[str, str], str]:
    return {key: value for key, (value, _) in state.items()}


def test_the_fake_writer_is_a_writer() -> None:
    assert isinstance(FakeWriter(), Writer)


def test_first_push_sends_every_value_and_the_next_sends_nothing(engine: Engine) -> None:
    three_customers(engine)
    writer = FakeWriter()

    result = push_system(engine, "shop", writer, FIELDS, NOW)

    assert (result.planned, result.pushed, result.failed, result.errors) == (8, 8, 0, [])
    assert writer.values() == FIRST_PUSH
    assert all(update.previous is None for update in writer.accepted)
    state = push_state(engine)
    assert values(state) == FIRST_PUSH
    assert {at for _, at in state.values()} == {NOW}

    again = FakeWriter()
    second = push_system(engine, "shop", again, FIELDS, NOW)
    assert (second.planned, second.pushed, again.batches) == (0, 0, [])


def test_only_changed_values_are_sent_with_their_previous_value(engine: Engine) -> None:
    three_customers(engine)
    push_system(engine, "shop", FakeWriter(), FIELDS, NOW)
    # A refund changes C2's revenue only: it is neither an order nor a purchase.
    ingest_records(engine, "shop", [sale("T4", "C2", "2024-06-01", "9", refund=True)])
    refresh(engine)

    writer = FakeWriter()
    later = datetime(2024, 7, 2, tzinfo=UTC)
    result = push_system(engine, "shop", writer, FIELDS, later)

    assert (result.planned, result.pushed) == (1, 1)
    assert writer.accepted == [FieldUpdate("C2", "lifetime_revenue", "90.00")]
    assert writer.accepted[0].previous == "99.00"
    state = push_state(engine)
    assert state["C2", "lifetime_revenue"] == ("90.00", later)
    assert state["C1", "orders"] == ("2", NOW), "an unchanged value was rewritten"


def test_a_value_that_becomes_empty_is_sent_as_empty(engine: Engine) -> None:
    three_customers(engine)
    push_system(engine, "shop", FakeWriter(), FIELDS, NOW)
    deleted = SourceTransaction(
        "T3", "C2", datetime(2024, 3, 2, tzinfo=UTC), Decimal(99), "USD", deleted=True
    )
    ingest_records(engine, "shop", [deleted])
    refresh(engine)

    writer = FakeWriter()
    push_system(engine, "shop", writer, FIELDS, NOW)

    assert writer.values() == {
        ("C2", "lifetime_revenue"): "0.00",
        ("C2", "orders"): "0",
        ("C2", "last_purchase"): "",
    }
    assert values(push_state(engine))["C2", "last_purchase"] == ""


def test_batches_never_exceed_the_writers_size_across_customer_chunks(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync.push, "CUSTOMER_CHUNK", 2)
    ingest_records(
        engine,
        "shop",
        [SourceCustomer(f"C{n}") for n in range(7)]
        + [sale(f"T{n}", f"C{n}", "2024-06-01", f"{n}.50") for n in range(7)],
    )
    refresh(engine)
    writer = FakeWriter(max_batch=4)

    result = push_system(engine, "shop", writer, FIELDS, NOW)

    assert [len(batch) for batch in writer.batches] == [4, 2, 4, 2, 4, 2, 3]
    sent = [(u.external_id, u.field) for batch in writer.batches for u in batch]
    assert len(sent) == len(set(sent)) == 21 == result.pushed
    assert writer.values()["C6", "lifetime_revenue"] == "6.50"


def test_a_rejected_update_is_not_remembered_and_is_sent_again_next_time(engine: Engine) -> None:
    three_customers(engine)

    result = push_system(engine, "shop", FakeWriter(reject=[("C1", "orders")]), FIELDS, NOW)

    assert (result.planned, result.pushed, result.failed) == (8, 7, 1)
    assert result.errors == ["C1: the field is read-only"]
    assert ("C1", "orders") not in push_state(engine)

    retry = FakeWriter()
    again = push_system(engine, "shop", retry, FIELDS, NOW)
    assert (again.planned, again.pushed, again.failed) == (1, 1, 0)
    assert retry.values() == {("C1", "orders"): "2"}
    assert values(push_state(engine)) == FIRST_PUSH


def test_a_connector_error_stops_the_push_and_is_reported(engine: Engine) -> None:
    three_customers(engine)
    writer = FakeWriter(max_batch=3, fail_on_call=2)

    result = push_system(engine, "shop", writer, FIELDS, NOW)

    assert len(writer.batches) == 2, "the push went on after the remote refused"
    assert (result.pushed, result.failed) == (3, 3)
    assert result.errors == ["shop refused the access token; reconnect it with `clm-sync auth`"]
    first_batch = {(u.external_id, u.field) for u in writer.batches[0]}
    assert set(push_state(engine)) == first_batch

    retry = FakeWriter()
    again = push_system(engine, "shop", retry, FIELDS, NOW)
    assert again.planned == 5
    assert set(retry.values()) == set(FIRST_PUSH) - first_batch
    assert values(push_state(engine)) == FIRST_PUSH


def test_a_dry_run_plans_but_writes_nothing(engine: Engine) -> None:
    three_customers(engine)
    writer = FakeWriter()

    plan = push_system(engine, "shop", writer, FIELDS, NOW, dry_run=True)

    assert (plan.planned, plan.pushed, plan.failed) == (8, 0, 0)
    assert {(u.external_id, u.field): u.value for u in plan.sample} == FIRST_PUSH
    assert writer.batches == []
    assert push_state(engine) == {}

    push_system(engine, "shop", FakeWriter(), FIELDS, NOW)
    before = push_state(engine)
    ingest_records(engine, "shop", [sale("T4", "C3", "2024-06-30", "5")])
    refresh(engine)

    change = push_system(engine, "shop", writer, FIELDS, datetime.now(UTC), dry_run=True)

    assert change.planned == 3
    assert {(u.external_id, u.field, u.previous, u.value) for u in change.sample} == {
        ("C3", "lifetime_revenue", "0.00", "5.00"),
        ("C3", "orders", "0", "1"),
        ("C3", "last_purchase", None, "30.06.2024"),
    }
    assert writer.batches == []
    assert push_state(engine) == before


def test_only_the_systems_own_records_are_pushed(engine: Engine) -> None:
    three_customers(engine, "shop")
    ingest_records(engine, "books", [SourceCustomer("C1"), sale("B1", "C1", "2024-01-01", "1")])
    refresh(engine)
    writer = FakeWriter()

    push_system(engine, "books", writer, FIELDS, NOW)

    assert writer.values() == {
        ("C1", "lifetime_revenue"): "1.00",
        ("C1", "orders"): "1",
        ("C1", "last_purchase"): "01.01.2024",
    }


# -- one failing system does not stop the others --------------------------------------------


class FakeConnector:
    def __init__(self, system: str, writer: FakeWriter) -> None:
        self.system = system
        self._writer = writer

    def streams(self) -> Sequence[Stream]:
        return []

    def writer(self) -> Writer | None:
        return self._writer


def test_a_failing_system_is_reported_and_the_others_are_pushed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    three_customers(engine, "books")
    three_customers(engine, "shop")
    fields = [{"metric": f.metric, "field": f.field, "format": f.format} for f in FIELDS]
    app = AppConfig.model_validate(
        {
            "ledger": "sqlite:///unused.db",
            "sources": [
                {"type": "csv", "name": name, "path": str(tmp_path), "push": {"fields": fields}}
                for name in ("shop", "books")
            ],
        }
    )
    writers = {"shop": FakeWriter(fail_on_call=1), "books": FakeWriter()}

    def fake_connector(source: Any, _app: AppConfig, _context: object) -> Connector:
        return FakeConnector(source.name, writers[source.name])

    monkeypatch.setattr("sync.cycle.build_connector", fake_connector)

    outcome = SyncService(app, engine).post_pull(AS_OF)

    assert outcome.status == RunStatus.PARTIAL
    assert outcome.error is not None
    assert "push to shop: 8 updates failed" in outcome.error
    assert "shop refused the access token" in outcome.error
    assert writers["books"].values() == FIRST_PUSH
    with engine.connect() as connection:
        run = connection.execute(select(RUNS).where(RUNS.c.id == outcome.run_id)).one()
        shop_state = connection.execute(select(STATE).where(STATE.c.system == "shop")).all()
    assert (run.status, run.pushed, run.push_failed) == ("partial", 8, 8)
    assert run.error == outcome.error
    assert shop_state == []
