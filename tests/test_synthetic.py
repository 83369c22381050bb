"""The synthetic business: the export is well formed, deterministic and true to its model."""

from __future__ import annotations

import csv
import math
import re
import statistics
import tracemalloc
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.names import NICKNAMES
from sandbox.synthetic import (
    BusinessSpec,
    Person,
    SyntheticSummary,
    expected_transactions_per_person,
    generate_persons,
    spec_for_transactions,
    write_csv_folder,
)

HEADERS = {
    "customers.csv": [
        "id",
        "name",
        "first_name",
        "last_name",
        "company",
        "email",
        "phone",
        "address_line1",
        "address_line2",
        "city",
        "postcode",
        "region",
        "country",
        "created_at",
    ],
    "transactions.csv": ["id", "customer_id", "date", "amount", "currency", "kind", "home_amount"],
    "interactions.csv": ["id", "customer_id", "date", "kind", "subject", "cost"],
    "referrals.csv": ["referrer_id", "referred_id", "date"],
    "marketing_spend.csv": ["date", "channel", "amount", "currency"],
    "ground_truth.csv": ["stream", "external_id", "person_id"],
}
SPEC = BusinessSpec(seed=3, customers=2000)
MONEY = re.compile(r"^\d+\.\d\d$")
MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

Row = dict[str, str]


def read(folder: Path, filename: str) -> list[Row]:
    with (folder / filename).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def normalized_email(text: str) -> str:
    return "".join(text.split()).casefold()


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)[-10:]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticSummary]:
    folder = tmp_path_factory.mktemp("synthetic")
    return folder, write_csv_folder(SPEC, folder)


@pytest.fixture(scope="module")
def folder(export: tuple[Path, SyntheticSummary]) -> Path:
    return export[0]


@pytest.fixture(scope="module")
def persons() -> list[Person]:
    return list(generate_persons(SPEC))


@pytest.fixture(scope="module")
def records_by_person(folder: Path) -> dict[str, list[Row]]:
    customers = {row["id"]: row for row in read(folder, "customers.csv")}
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in read(folder, "ground_truth.csv"):
        if row["stream"] == "customers":
            grouped[row["person_id"]].append(customers[row["external_id"]])
    return grouped


def test_headers_are_exactly_as_documented(folder: Path) -> None:
    for filename, header in HEADERS.items():
        with (folder / filename).open(encoding="utf-8", newline="") as handle:
            assert next(csv.reader(handle)) == header, filename


def test_same_seed_gives_identical_bytes_and_another_seed_other_bytes(tmp_path: Path) -> None:
    spec = BusinessSpec(seed=5, customers=300)
    write_csv_folder(spec, tmp_path / "one")
    write_csv_folder(spec, tmp_path / "two")
    write_csv_folder(BusinessSpec(seed=6, customers=300), tmp_path / "other")
    for filename in HEADERS:
        same = (tmp_path / "one" / filename).read_bytes()
        assert same == (tmp_path / "two" / filename).read_bytes(), filename
        if filename != "marketing_spend.csv":
            assert same != (tmp_path / "other" / filename).read_bytes(), filename


def test_persons_are_lazy_and_deterministic() -> None:
    spec = BusinessSpec(seed=9, customers=1_000_000)
    first = [next(generate_persons(spec)) for _ in range(2)]
    assert first[0] == first[1]
    assert next(generate_persons(BusinessSpec(seed=10))) != first[0]


def test_ids_are_unique_and_well_formed(folder: Path) -> None:
    patterns = {
        "customers.csv": r"C\d{6}",
        "transactions.csv": r"T\d{7}(-R)?",
        "interactions.csv": r"I\d{7}",
    }
    for filename, pattern in patterns.items():
        ids = [row["id"] for row in read(folder, filename)]
        assert len(ids) == len(set(ids)), filename
        assert all(re.fullmatch(pattern, external_id) for external_id in ids), filename


def test_every_reference_points_to_an_existing_customer(folder: Path) -> None:
    customers = {row["id"]: row for row in read(folder, "customers.csv")}
    for filename in ("transactions.csv", "interactions.csv"):
        for row in read(folder, filename):
            owner = customers[row["customer_id"]]
            assert moment(owner["created_at"]) <= moment(row["date"]), row
    referrals = read(folder, "referrals.csv")
    assert referrals
    for row in referrals:
        referrer, referred = customers[row["referrer_id"]], customers[row["referred_id"]]
        assert moment(referrer["created_at"]) < moment(referred["created_at"]), row


def test_values_are_well_formed(folder: Path) -> None:
    end = SPEC.horizon
    for row in read(folder, "transactions.csv"):
        assert MONEY.match(row["amount"]) and Decimal(row["amount"]) > 0, row
        assert MOMENT.match(row["date"]) and moment(row["date"]) < end, row
        assert row["kind"] in {"sale", "refund"}
        if row["currency"] == SPEC.home_currency:
            assert row["home_amount"] == ""
        else:
            assert row["currency"] == SPEC.foreign_currency
            assert MONEY.match(row["home_amount"]), row
    for row in read(folder, "interactions.csv"):
        assert row["kind"] in {"support", "email", "call"}
        assert MONEY.match(row["cost"]) and row["subject"], row
    for row in read(folder, "customers.csv"):
        assert MOMENT.match(row["created_at"]), row


def test_refunds_never_exceed_their_sale(folder: Path) -> None:
    transactions = {row["id"]: row for row in read(folder, "transactions.csv")}
    refunds = [row for row in transactions.values() if row["kind"] == "refund"]
    sales = len(transactions) - len(refunds)
    assert 0.6 * SPEC.refund_rate < len(refunds) / sales < 1.4 * SPEC.refund_rate
    partial = 0
    for refund in refunds:
        assert refund["id"].endswith("-R")
        sale = transactions[refund["id"].removesuffix("-R")]
        assert sale["kind"] == "sale"
        assert refund["customer_id"] == sale["customer_id"]
        assert refund["currency"] == sale["currency"]
        assert moment(refund["date"]) > moment(sale["date"])
        assert Decimal(refund["amount"]) <= Decimal(sale["amount"])
        if refund["home_amount"]:
            assert Decimal(refund["home_amount"]) <= Decimal(sale["home_amount"])
        partial += Decimal(refund["amount"]) < Decimal(sale["amount"])
    assert 0 < partial < len(refunds)


def test_ground_truth_covers_every_record(folder: Path) -> None:
    truth = read(folder, "ground_truth.csv")
    keys = [(row["stream"], row["external_id"]) for row in truth]
    assert len(keys) == len(set(keys))
    expected = {
        (stream, row["id"])
        for stream in ("customers", "transactions", "interactions")
        for row in read(folder, f"{stream}.csv")
    }
    assert set(keys) == expected
    assert len({row["person_id"] for row in truth}) == SPEC.customers


def test_export_matches_the_truth(
    export: tuple[Path, SyntheticSummary], persons: list[Person]
) -> None:
    folder, summary = export
    person_of = {
        row["external_id"]: row["person_id"]
        for row in read(folder, "ground_truth.csv")
        if row["stream"] == "transactions"
    }
    sales = Counter(
        person_of[row["id"]] for row in read(folder, "transactions.csv") if row["kind"] == "sale"
    )
    assert sales == Counter({person.person_id: len(person.sales) for person in persons})
    revenue = sum(
        (
            sale.home_amount - (sale.refund.home_amount if sale.refund else 0)
            for person in persons
            for sale in person.sales
        ),
        Decimal(0),
    )
    assert summary.net_revenue == revenue
    assert summary.persons == SPEC.customers
    counts = {
        "customers.csv": summary.customers,
        "transactions.csv": summary.transactions,
        "interactions.csv": summary.interactions,
        "referrals.csv": summary.referrals,
        "marketing_spend.csv": summary.marketing_spend,
        "ground_truth.csv": summary.ground_truth,
    }
    for filename, count in counts.items():
        assert len(read(folder, filename)) == count, filename
    assert summary.customers == SPEC.customers + summary.duplicate_records


def test_duplicates_at_the_configured_rate_and_of_every_kind(
    records_by_person: dict[str, list[Row]],
) -> None:
    duplicated = [records for records in records_by_person.values() if len(records) > 1]
    share = len(duplicated) / SPEC.customers
    assert abs(share - SPEC.duplicate_rate) < 0.03
    same_email = messy_email = phone_only = company = nickname = typo = 0
    for first, *others in duplicated:
        for other in others:
            email_a, email_b = normalized_email(first["email"]), normalized_email(other["email"])
            if email_a and email_a == email_b:
                same_email += 1
                messy_email += first["email"] != other["email"]
            elif first["phone"] and digits(first["phone"]) == digits(other["phone"]):
                phone_only += 1
                assert first["phone"] != other["phone"], "the phone should be reformatted"
            if other["company"] and not other["first_name"]:
                company += 1
            names = {first["first_name"], other["first_name"]}
            if len(names) == 2 and any(
                names <= {formal, *nicks} for formal, nicks in NICKNAMES.items()
            ):
                nickname += 1
            elif other["first_name"] and (first["first_name"], first["last_name"]) != (
                other["first_name"],
                other["last_name"],
            ):
                typo += 1
    assert min(same_email, messy_email, phone_only, company, nickname, typo) > 0, (
        same_email,
        messy_email,
        phone_only,
        company,
        nickname,
        typo,
    )


def test_records_look_like_real_people(
    folder: Path, records_by_person: dict[str, list[Row]]
) -> None:
    customers = read(folder, "customers.csv")
    assert any(not row["name"].isascii() for row in customers)
    assert any("'" in row["last_name"] for row in customers)
    shapes = {re.sub(r"\d", "9", row["phone"]) for row in customers if row["phone"]}
    assert len(shapes) >= 5
    primaries = [records[0] for records in records_by_person.values()]
    no_email = sum(not row["email"] for row in primaries) / len(primaries)
    no_phone = sum(not row["phone"] for row in primaries) / len(primaries)
    assert abs(no_email - SPEC.no_email_share) < 0.03
    assert abs(no_phone - SPEC.no_phone_share) < 0.04
    emails = [normalized_email(row["email"]) for row in primaries if row["email"]]
    assert len(emails) == len(set(emails)), "distinct persons never share an e-mail"
    phones = [digits(row["phone"]) for row in primaries if row["phone"]]
    assert len(phones) == len(set(phones)), "distinct persons never share a phone"


def test_transactions_are_spread_over_a_persons_records(
    folder: Path, records_by_person: dict[str, list[Row]]
) -> None:
    transactions = read(folder, "transactions.csv")
    used = {row["customer_id"] for row in transactions}
    second_records = [
        records[1]["id"] for records in records_by_person.values() if len(records) > 1
    ]
    assert sum(record in used for record in second_records) > len(second_records) / 3


def test_referrals_come_from_earlier_persons_and_evangelists(persons: list[Person]) -> None:
    referred = [person for person in persons if person.referred_by is not None]
    assert abs(len(referred) / len(persons) - SPEC.referral_share) < 0.025
    assert all(person.channel == "referral" for person in referred)
    assert all(p.referred_by is not None and p.referred_by < p.index for p in referred)
    per_referrer = Counter(person.referred_by for person in referred)
    assert max(per_referrer.values()) >= 4


def test_purchases_follow_the_bgnbd_expectation() -> None:
    spec = BusinessSpec(seed=11, customers=6000)
    persons = list(generate_persons(spec))
    rates = [person.purchase_rate for person in persons]
    dropouts = [person.dropout for person in persons]
    assert statistics.fmean(rates) == pytest.approx(spec.r / spec.alpha, rel=0.08)
    assert statistics.fmean(dropouts) == pytest.approx(spec.a / (spec.a + spec.b), rel=0.05)
    # E[sales | λ, p, T] = 1 + (1 - exp(-λ p T)) / p: the first purchase at acquisition, then
    # a dropout chance after every repeat purchase only.
    expected = statistics.fmean(
        1 + (1 - math.exp(-p.purchase_rate * p.dropout * p.observed_days)) / p.dropout
        for p in persons
    )
    observed = statistics.fmean(len(person.sales) for person in persons)
    assert observed == pytest.approx(expected, rel=0.05)
    assert 4.0 < observed < 6.0
    for person in persons:
        times = [sale.at for sale in person.sales]
        assert times == sorted(times) and times[0] == person.acquired_at
        assert times[-1] < spec.horizon
        assert person.alive or person.dropped_out_at == times[-1]
    order_values = [float(sale.home_amount) for person in persons for sale in person.sales]
    mean_order = spec.p * spec.gamma / (spec.q - 1)
    assert statistics.fmean(order_values) == pytest.approx(mean_order, rel=0.1)


def test_acquisitions_grow_over_the_window(persons: list[Person]) -> None:
    acquired = [person.acquired_at for person in persons]
    assert acquired == sorted(acquired)
    middle = SPEC.origin + (SPEC.horizon - SPEC.origin) / 2
    early = sum(moment < middle for moment in acquired)
    # density ∝ 1 + x: the first half holds (1/2 + 1/8) / (3/2) = 5/12 of the persons
    assert early / len(acquired) == pytest.approx(5 / 12, abs=0.03)


def test_marketing_spend_follows_acquisitions(folder: Path, persons: list[Person]) -> None:
    acquired = Counter(
        (person.acquired_at.strftime("%Y-%m-01"), person.channel) for person in persons
    )
    cost = {channel.name: channel.cost_per_customer for channel in SPEC.channels}
    cost["referral"] = SPEC.referral_bonus
    spend = read(folder, "marketing_spend.csv")
    assert {row["channel"] for row in spend} == {"search", "social", "email", "events", "referral"}
    assert len(spend) == len(acquired)
    for row in spend:
        per_customer = float(row["amount"]) / acquired[row["date"], row["channel"]]
        assert 0.84 < per_customer / cost[row["channel"]] < 1.16, row


def test_support_contacts_are_more_frequent_after_refunds(persons: list[Person]) -> None:
    with_refund = [p for p in persons if any(sale.refund for sale in p.sales)]
    without = [p for p in persons if not any(sale.refund for sale in p.sales)]
    mean_with = statistics.fmean(len(p.contacts) for p in with_refund)
    mean_without = statistics.fmean(len(p.contacts) for p in without)
    assert mean_with > mean_without + 1


def test_spec_for_transactions_hits_the_target(tmp_path: Path) -> None:
    spec = spec_for_transactions(3000, 30_000)
    summary = write_csv_folder(spec, tmp_path)
    assert summary.transactions == pytest.approx(30_000, rel=0.1)
    assert expected_transactions_per_person(spec) == pytest.approx(10, rel=1e-4)
    assert spec_for_transactions(200_000, 1_000_000).alpha == pytest.approx(25, rel=0.1)
    with pytest.raises(ValueError, match="out of reach"):
        spec_for_transactions(1000, 500)


def test_invalid_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate_rate"):
        BusinessSpec(duplicate_rate=1.5)


def test_memory_stays_bounded_while_writing(tmp_path: Path) -> None:
    """Per person only a few small values stay (~300 bytes); holding a person's ~5 sales and
    contacts would take over 2,000 bytes."""
    peaks = []
    for customers in (1000, 4000):
        tracemalloc.start()
        try:
            write_csv_folder(BusinessSpec(seed=2, customers=customers), tmp_path / str(customers))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    per_person = (peaks[1] - peaks[0]) / 3000
    assert per_person < 800, f"{per_person:.0f} bytes per person"
