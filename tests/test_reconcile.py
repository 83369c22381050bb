"""Who is who (sync/reconcile.py) on both databases: stable ids, links, splits, retirement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from connectors.records import SourceCustomer
from sync.ledger import CustomerLink, LedgerCustomer, SourceCustomerRow
from sync.reconcile import reconcile
from tests.conftest import ingest_records

SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
LINK = CustomerLink.__table__  # type: ignore[attr-defined]
CUSTOMER = LedgerCustomer.__table__  # type: ignore[attr-defined]
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def person(external_id: str, email: str | None = None, phone: str | None = None) -> SourceCustomer:
    return SourceCustomer(external_id, name=f"Person {external_id}", email=email, phone=phone)


def links(engine: Engine) -> dict[tuple[str, str], tuple[int, str]]:
    """(system, external id) -> (ledger customer id, rule)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                SOURCE.c.system, SOURCE.c.external_id, LINK.c.ledger_customer_id, LINK.c.rule
            ).join(LINK, LINK.c.source_customer_id == SOURCE.c.id)
        )
        return {(system, ext): (ledger_id, rule) for system, ext, ledger_id, rule in rows}


def ledger_ids(engine: Engine, system: str = "shop") -> dict[str, int]:
    return {ext: ledger for (sys, ext), (ledger, _) in links(engine).items() if sys == system}


def link_times(engine: Engine) -> dict[int, datetime]:
    with engine.connect() as connection:
        rows = connection.execute(select(LINK.c.source_customer_id, LINK.c.linked_at))
        return dict(rows.all())


def customers(engine: Engine) -> dict[int, Any]:
    with engine.connect() as connection:
        return {row.id: row for row in connection.execute(select(CUSTOMER))}


def test_adding_records_never_renumbers_existing_customers(engine: Engine) -> None:
    ingest_records(engine, "shop", [person("A", "a@example.com"), person("B", "b@example.com")])
    first = reconcile(engine, T0)
    before = ledger_ids(engine)
    assert (first.new_customers, first.links_changed, first.ledger_customers) == (2, 2, 2)
    assert before["A"] != before["B"]
    linked_at = link_times(engine)

    # A newcomer that sorts first, one that joins A, and one of its own.
    ingest_records(
        engine,
        "shop",
        [person("0", "zero@example.com"), person("D", "A@Example.com"), person("E")],
    )
    second = reconcile(engine, T0 + timedelta(hours=1))

    after = ledger_ids(engine)
    assert {key: after[key] for key in before} == before, "existing customers were renumbered"
    assert after["D"] == before["A"]
    new_ids = {after["0"], after["E"]}
    assert len(new_ids) == 2 and min(new_ids) > max(before.values())
    assert (second.new_customers, second.links_changed, second.ledger_customers) == (2, 3, 4)
    again = link_times(engine)
    assert {key: again[key] for key in linked_at} == linked_at, "unchanged links were rewritten"

    third = reconcile(engine, T0 + timedelta(hours=2))
    assert (third.new_customers, third.links_changed, third.retired, third.revived) == (0, 0, 0, 0)
    assert ledger_ids(engine) == after


def test_same_normalized_email_or_phone_links_records_across_systems(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            person("S1", email=" Ann.Lee@EXAMPLE.com "),
            person("S2", phone="(415) 555-0101"),
            person("S3", email="carl@example.com", phone="415 555 0199"),
        ],
    )
    ingest_records(
        engine,
        "books",
        [
            person("B1", email="ann.lee@example.com"),
            person("B2", email="bob@example.com", phone="+1 415-555-0101"),
            person("B3", email="dora@example.com", phone="+44 20 7946 0958"),
        ],
    )

    result = reconcile(engine, T0)

    linked = links(engine)
    ann, bob = linked["shop", "S1"][0], linked["shop", "S2"][0]
    assert linked["books", "B1"][0] == ann
    assert linked["books", "B2"][0] == bob
    others = {linked["shop", "S3"][0], linked["books", "B3"][0]}
    assert len({ann, bob, *others}) == 4
    assert (result.source_customers, result.ledger_customers, result.new_customers) == (6, 4, 4)
    # The rule says how each record joined its customer; the first of a group is its own.
    assert linked["shop", "S1"][1] == "own record"
    assert linked["books", "B1"][1] == "same email"
    assert linked["shop", "S2"][1] == "own record"
    assert linked["books", "B2"][1] == "same phone"
    assert linked["shop", "S3"][1] == linked["books", "B3"][1] == "own record"


def test_links_are_transitive_and_email_is_named_before_phone(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            person("A", email="a@example.com", phone="+1 415 555 0101"),
            person("B", email="a@example.com", phone="+1 415 555 0101"),
            person("C", email="c@example.com", phone="+1 415 555 0101"),
            person("D", email="c@example.com"),
        ],
    )
    reconcile(engine, T0)
    linked = links(engine)
    assert len({ledger for ledger, _ in linked.values()}) == 1
    assert {ext: rule for (_, ext), (_, rule) in linked.items()} == {
        "A": "own record",
        "B": "same email",
        "C": "same phone",
        "D": "same email",
    }


def test_records_without_keys_or_with_invalid_keys_stay_apart(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [
            person("A"),
            person("B"),
            person("C", email="not an address", phone="12"),
            person("D", email="not an address", phone="12"),
        ],
    )
    result = reconcile(engine, T0)
    assert len(set(ledger_ids(engine).values())) == 4
    assert result.ledger_customers == 4


def test_a_split_gives_the_smaller_part_a_new_id(engine: Engine) -> None:
    ingest_records(
        engine,
        "shop",
        [person(ext, "team@example.com") for ext in ("A", "B", "C")],
    )
    reconcile(engine, T0)
    before = ledger_ids(engine)
    assert len(set(before.values())) == 1
    team = before["A"]

    # The oldest record leaves: the larger part (B, C) keeps the id although A made it.
    ingest_records(engine, "shop", [person("A", "a@example.com")])
    result = reconcile(engine, T0 + timedelta(hours=1))

    after = links(engine)
    assert after["shop", "B"][0] == after["shop", "C"][0] == team
    assert after["shop", "A"][0] not in {team, *before.values()}
    assert after["shop", "A"][1] == "own record"
    # B became the first of its group.
    assert (after["shop", "B"][1], after["shop", "C"][1]) == ("own record", "same email")
    assert (result.new_customers, result.links_changed, result.retired) == (1, 2, 0)
    assert customers(engine)[after["shop", "A"][0]].created_at == T0 + timedelta(hours=1)


def test_an_even_split_leaves_the_id_with_the_older_part(engine: Engine) -> None:
    ingest_records(engine, "shop", [person("A", "ab@example.com"), person("B", "ab@example.com")])
    reconcile(engine, T0)
    shared = ledger_ids(engine)["A"]

    ingest_records(engine, "shop", [person("B", "b@example.com")])
    reconcile(engine, T0 + timedelta(hours=1))

    after = ledger_ids(engine)
    assert after["A"] == shared
    assert after["B"] > shared


def test_a_customer_without_live_records_is_retired_and_revived_with_the_same_id(
    engine: Engine,
) -> None:
    ingest_records(engine, "shop", [person("A", "a@example.com"), person("B", "b@example.com")])
    reconcile(engine, T0)
    ids = ledger_ids(engine)

    ingest_records(engine, "shop", [SourceCustomer("A", deleted=True)])
    retired_at = T0 + timedelta(days=1)
    gone = reconcile(engine, retired_at)

    assert (gone.retired, gone.revived, gone.ledger_customers) == (1, 0, 1)
    state = customers(engine)
    assert set(state) == set(ids.values()), "a ledger customer was deleted"
    assert state[ids["A"]].retired_at == retired_at
    assert state[ids["B"]].retired_at is None
    assert reconcile(engine, retired_at + timedelta(hours=1)).retired == 0, "retired twice"
    assert customers(engine)[ids["A"]].retired_at == retired_at

    ingest_records(engine, "shop", [person("A", "a@example.com")])
    back = reconcile(engine, T0 + timedelta(days=2))

    assert (back.revived, back.retired, back.new_customers) == (1, 0, 0)
    assert ledger_ids(engine) == ids
    assert customers(engine)[ids["A"]].retired_at is None


def test_a_record_that_returns_with_another_customers_email_joins_it(engine: Engine) -> None:
    ingest_records(engine, "shop", [person("A", "a@example.com"), person("B", "b@example.com")])
    reconcile(engine, T0)
    ids = ledger_ids(engine)
    ingest_records(engine, "shop", [SourceCustomer("B", deleted=True)])
    reconcile(engine, T0 + timedelta(hours=1))

    ingest_records(engine, "shop", [person("B", "a@example.com")])
    result = reconcile(engine, T0 + timedelta(hours=2))

    assert ledger_ids(engine) == {"A": ids["A"], "B": ids["A"]}
    assert customers(engine)[ids["B"]].retired_at is not None
    assert (result.new_customers, result.revived) == (0, 0)
