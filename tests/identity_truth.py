"""Helpers for tests against the synthetic business's ground truth."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from connectors.records import SourceCustomer
from sync.identity.features import CustomerInput
from sync.ledger import CustomerLink, SourceCustomerRow

SYSTEMS = ("quickbooks", "outlook", "shop")
_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_LINK = CustomerLink.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class LiveCustomer:
    id: int
    system: str
    external_id: str
    content_hash: str
    item: CustomerInput


def live_customers(connection: Connection) -> list[LiveCustomer]:
    """Every live source customer with the input the matcher featurizes, in id order."""
    rows = connection.execute(
        select(
            _SOURCE.c.id,
            _SOURCE.c.system,
            _SOURCE.c.external_id,
            _SOURCE.c.content_hash,
            _SOURCE.c.name,
            _SOURCE.c.first_name,
            _SOURCE.c.last_name,
            _SOURCE.c.company,
            _SOURCE.c.email_normalized,
            _SOURCE.c.phone_e164,
            _SOURCE.c.address_line1,
            _SOURCE.c.postcode,
            _SOURCE.c.city,
        )
        .where(_SOURCE.c.deleted.is_(False))
        .order_by(_SOURCE.c.id)
    )
    return [
        LiveCustomer(row[0], row[1], row[2], row[3], CustomerInput(row[0], *row[4:]))
        for row in rows
    ]


def system_of(external_id: str) -> str:
    """Spreads the export's records over three systems, so duplicates fall across and within."""
    return SYSTEMS[int(external_id[1:]) * 7 % 3]


def customers_by_system(folder: Path) -> dict[str, list[SourceCustomer]]:
    by_system: dict[str, list[SourceCustomer]] = {system: [] for system in SYSTEMS}
    with (folder / "customers.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            cells = {key: (value or None) for key, value in row.items()}
            by_system[system_of(row["id"])].append(
                SourceCustomer(
                    row["id"],
                    name=cells["name"],
                    first_name=cells["first_name"],
                    last_name=cells["last_name"],
                    company=cells["company"],
                    email=cells["email"],
                    phone=cells["phone"],
                    address_line1=cells["address_line1"],
                    address_line2=cells["address_line2"],
                    city=cells["city"],
                    postcode=cells["postcode"],
                    region=cells["region"],
                    country=cells["country"],
                )
            )
    return by_system


def truth(folder: Path) -> dict[str, str]:
    """Customer external id to the true person id."""
    with (folder / "ground_truth.csv").open(encoding="utf-8", newline="") as handle:
        return {
            row["external_id"]: row["person_id"]
            for row in csv.DictReader(handle)
            if row["stream"] == "customers"
        }


def ledger_clusters(engine: Engine) -> dict[str, int]:
    """Customer external id to its ledger customer."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_SOURCE.c.external_id, _LINK.c.ledger_customer_id).join(
                _LINK, _LINK.c.source_customer_id == _SOURCE.c.id
            )
        )
        return dict(rows.all())


def _pairs(labels: Mapping[str, object]) -> set[tuple[str, str]]:
    groups: dict[object, list[str]] = {}
    for record, label in labels.items():
        groups.setdefault(label, []).append(record)
    return {
        (a, b) for members in groups.values() for a, b in itertools.combinations(sorted(members), 2)
    }


@dataclass(frozen=True, slots=True)
class Scores:
    precision: float
    recall: float
    cluster_f1: float
    true_pairs: int
    found_pairs: int

    @property
    def f1(self) -> float:
        """Pairwise F1."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def score(found: dict[str, int], expected: dict[str, str]) -> Scores:
    """Pairwise precision and recall of same-customer links, and cluster-level F1 (the share
    of true clusters reproduced exactly, as precision and recall over clusters)."""
    found_pairs = _pairs(found)
    true_pairs = _pairs(expected)
    hits = len(found_pairs & true_pairs)
    precision = hits / len(found_pairs) if found_pairs else 1.0
    recall = hits / len(true_pairs) if true_pairs else 1.0
    found_sets = _clusters(found)
    true_sets = _clusters(expected)
    exact = len(found_sets & true_sets)
    cluster_precision = exact / len(found_sets)
    cluster_recall = exact / len(true_sets)
    f1 = 2 * cluster_precision * cluster_recall / (cluster_precision + cluster_recall)
    return Scores(precision, recall, f1, len(true_pairs), len(found_pairs))


def _clusters(labels: Mapping[str, object]) -> set[frozenset[str]]:
    groups: dict[object, set[str]] = {}
    for record, label in labels.items():
        groups.setdefault(label, set()).add(record)
    return {frozenset(members) for members in groups.values()}
