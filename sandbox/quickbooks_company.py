"""The stand-in's QuickBooks company: the synthetic business as QuickBooks objects, edits a
user would make between two cycles, and the filters of the query language the stand-in serves.

Sales become invoices (three in five) or sales receipts, their refunds credit memos or refund
receipts; foreign-currency documents carry ``ExchangeRate`` (invoices and credit memos also
``HomeTotalAmt``). Each month's channel spend is a Purchase or a Bill with one line on the
channel's advertising account and one on office supplies (which is not marketing).
"""

from __future__ import annotations

import csv
import itertools
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox.synthetic import REFERRAL, BusinessSpec, write_csv_folder

ENTITIES = (
    "Customer",
    "Invoice",
    "SalesReceipt",
    "CreditMemo",
    "RefundReceipt",
    "Payment",
    "Purchase",
    "Bill",
)
ADVERTISING = "Advertising"
"""Parent of the marketing expense accounts: ``Advertising:search``, ``Advertising:social`` ..."""
OFFICE = {"value": "7", "name": "Office Supplies"}


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _number(amount: Decimal) -> float:
    return float(amount)


class QuickBooksCompany:
    """Objects by entity and id, deletions with their times, custom-field definitions.

    The company clock (:meth:`now`) can be moved forward (:meth:`advance`); every change
    stamps ``MetaData.LastUpdatedTime`` with it and raises the object's ``SyncToken``.
    """

    def __init__(self, spec: BusinessSpec) -> None:
        self.spec = spec
        self.objects: dict[str, dict[str, dict[str, Any]]] = {entity: {} for entity in ENTITIES}
        self.deleted: dict[str, dict[str, datetime]] = {entity: {} for entity in ENTITIES}
        self.custom_fields: dict[str, dict[str, Any]] = {}
        """Definitions by legacyIDV2."""
        self.ids: Iterator[int] = itertools.count(1)
        self.offset = timedelta(0)
        self.lock = threading.RLock()
        self._load()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        """Move the company clock forward (beyond the CDC look-back window, say)."""
        with self.lock:
            self.offset += delta

    # -- loading the synthetic business -------------------------------------------------------

    def _load(self) -> None:
        """The synthetic business as QuickBooks objects (via its CSV export)."""
        with tempfile.TemporaryDirectory(prefix="qbo-stand-in-") as folder:
            write_csv_folder(self.spec, Path(folder))
            with (Path(folder) / "customers.csv").open(encoding="utf-8", newline="") as handle:
                for row in csv.DictReader(handle):
                    self._customer_from(row)
            # Customer ids come from the export (C000042 is 42); later objects follow them.
            self.ids = itertools.count(len(self.objects["Customer"]) + 1)
            with (Path(folder) / "transactions.csv").open(encoding="utf-8", newline="") as handle:
                sales: dict[str, tuple[str, str]] = {}
                for row in csv.DictReader(handle):
                    self._transaction_from(row, sales)
            with (Path(folder) / "marketing_spend.csv").open(
                encoding="utf-8", newline=""
            ) as handle:
                for number, row in enumerate(csv.DictReader(handle)):
                    self._spend_from(number, row)

    def _next_id(self) -> str:
        return str(next(self.ids))

    @staticmethod
    def _meta(created: datetime, updated: datetime | None = None) -> dict[str, str]:
        return {"CreateTime": stamp(created), "LastUpdatedTime": stamp(updated or created)}

    def customer_id(self, export_id: str) -> str:
        """The QuickBooks id of a synthetic customer (``C000042`` is ``42``)."""
        return str(int(export_id.lstrip("C")))

    def _customer_from(self, row: dict[str, str]) -> None:
        created = datetime.fromisoformat(row["created_at"])
        customer_id = self.customer_id(row["id"])
        customer: dict[str, Any] = {
            "Id": customer_id,
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "MetaData": self._meta(created),
            "DisplayName": row["name"] or row["company"] or f"Customer {customer_id}",
            "Active": True,
            "Job": False,
            "BillWithParent": False,
            "Balance": 0,
            "CurrencyRef": {"value": self.spec.home_currency},
            "BillAddr": {
                "Line1": row["address_line1"],
                "City": row["city"],
                "CountrySubDivisionCode": row["region"],
                "PostalCode": row["postcode"],
                "Country": row["country"],
            },
        }
        optional = {
            "GivenName": row["first_name"],
            "FamilyName": row["last_name"],
            "CompanyName": row["company"],
        }
        customer.update({key: value for key, value in optional.items() if value})
        if row["address_line2"]:
            customer["BillAddr"]["Line2"] = row["address_line2"]
        if row["email"]:
            customer["PrimaryEmailAddr"] = {"Address": row["email"]}
        if row["phone"]:
            customer["PrimaryPhone"] = {"FreeFormNumber": row["phone"]}
        self.objects["Customer"][customer_id] = customer

    def _document(
        self,
        entity: str,
        customer_id: str,
        at: datetime,
        amount: Decimal,
        currency: str,
        home_amount: Decimal,
        number: str,
    ) -> dict[str, Any]:
        document_id = self._next_id()
        document: dict[str, Any] = {
            "Id": document_id,
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "MetaData": self._meta(at),
            "DocNumber": number,
            "TxnDate": at.date().isoformat(),
            "CustomerRef": {"value": customer_id},
            "CurrencyRef": {"value": currency},
            "TotalAmt": _number(amount),
            "Line": [
                {
                    "Id": "1",
                    "LineNum": 1,
                    "Amount": _number(amount),
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Services"}},
                }
            ],
        }
        if currency != self.spec.home_currency:
            document["ExchangeRate"] = _number(self.spec.fx_rate)
            if entity in {"Invoice", "CreditMemo"}:
                document["HomeTotalAmt"] = _number(home_amount)
        self.objects[entity][document_id] = document
        return document

    def _transaction_from(self, row: dict[str, str], sales: dict[str, tuple[str, str]]) -> None:
        """Sales become invoices or sales receipts; refunds credit memos or refund receipts."""
        at = datetime.fromisoformat(row["date"])
        amount = Decimal(row["amount"])
        home = Decimal(row["home_amount"]) if row["home_amount"] else amount
        customer_id = self.customer_id(row["customer_id"])
        if row["kind"] == "refund":
            sale_entity, _ = sales[row["id"].removesuffix("-R")]
            entity = "CreditMemo" if sale_entity == "Invoice" else "RefundReceipt"
        else:
            entity = "Invoice" if int(row["id"].lstrip("T")) % 5 < 3 else "SalesReceipt"
        document = self._document(entity, customer_id, at, amount, row["currency"], home, row["id"])
        sales[row["id"]] = (entity, str(document["Id"]))

    def _spend_from(self, number: int, row: dict[str, str]) -> None:
        """Monthly channel spend, as a Purchase or a Bill with a marketing line and an
        office-supplies line (which is not marketing)."""
        entity = "Purchase" if number % 2 == 0 else "Bill"
        spent = datetime.fromisoformat(row["date"]).replace(tzinfo=UTC)
        channel = row["channel"]
        document_id = self._next_id()
        account = {"value": f"9{sorted([*self._channels(), REFERRAL]).index(channel)}"}
        account["name"] = f"{ADVERTISING}:{channel}"
        amount = Decimal(row["amount"])
        self.objects[entity][document_id] = {
            "Id": document_id,
            "SyncToken": "0",
            "domain": "QBO",
            "MetaData": self._meta(spent),
            "TxnDate": spent.date().isoformat(),
            "CurrencyRef": {"value": row["currency"]},
            "TotalAmt": _number(amount + Decimal("12.50")),
            "Line": [
                {
                    "Id": "1",
                    "Amount": _number(amount),
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {"AccountRef": account},
                },
                {
                    "Id": "2",
                    "Amount": 12.5,
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {"AccountRef": dict(OFFICE)},
                },
            ],
        }

    def _channels(self) -> list[str]:
        return [channel.name for channel in self.spec.channels]

    def marketing_accounts(self) -> dict[str, str]:
        """The YAML mapping that books every synthetic channel's account to its channel."""
        return {f"{ADVERTISING}:{c}": c for c in [*self._channels(), REFERRAL]}

    def touch(self, obj: dict[str, Any]) -> None:
        obj["SyncToken"] = str(int(obj.get("SyncToken", "0")) + 1)
        obj["MetaData"]["LastUpdatedTime"] = stamp(self.now())

    # Edits a user would make in QuickBooks between two cycles.

    def update(self, entity: str, object_id: str, **changes: Any) -> dict[str, Any]:
        with self.lock:
            obj = self.objects[entity][object_id]
            obj.update(changes)
            self.touch(obj)
            return obj

    def delete(self, entity: str, object_id: str) -> None:
        with self.lock:
            del self.objects[entity][object_id]
            self.deleted[entity][object_id] = self.now()

    def deactivate(self, customer_id: str) -> None:
        """How QuickBooks deletes a customer: it stays, inactive, named "... (deleted)"."""
        customer = self.objects["Customer"][customer_id]
        self.update(
            "Customer",
            customer_id,
            Active=False,
            DisplayName=f"{customer['DisplayName']} (deleted)",
        )

    def merge(self, source_id: str, into_id: str) -> None:
        """A merge: the source's documents move to the survivor, the source turns inactive."""
        with self.lock:
            for entity in ENTITIES[1:]:
                for obj in self.objects[entity].values():
                    if (obj.get("CustomerRef") or {}).get("value") == source_id:
                        obj["CustomerRef"] = {"value": into_id}
                        self.touch(obj)
            self.deactivate(source_id)

    def add_customer(self, name: str, parent_id: str | None = None, **extra: Any) -> str:
        with self.lock:
            customer_id = self._next_id()
            now = self.now()
            customer: dict[str, Any] = {
                "Id": customer_id,
                "SyncToken": "0",
                "domain": "QBO",
                "MetaData": self._meta(now),
                "DisplayName": name,
                "Active": True,
                "Job": parent_id is not None,
                "CurrencyRef": {"value": self.spec.home_currency},
                **extra,
            }
            if parent_id is not None:
                customer["ParentRef"] = {"value": parent_id}
                customer["Level"] = 1
            self.objects["Customer"][customer_id] = customer
            return customer_id

    def add_document(
        self,
        entity: str,
        customer_id: str,
        amount: str,
        currency: str | None = None,
        exchange_rate: str | None = None,
    ) -> dict[str, Any]:
        """A new sales document dated today; a foreign one needs ``exchange_rate``."""
        with self.lock:
            currency = currency or self.spec.home_currency
            value = Decimal(amount)
            home = value * Decimal(exchange_rate or "1")
            document = self._document(
                entity, customer_id, self.now(), value, currency, home.quantize(Decimal("0.01")), ""
            )
            document["DocNumber"] = f"N{document['Id']}"
            if exchange_rate is not None:
                document["ExchangeRate"] = _number(Decimal(exchange_rate))
            return document

    def live(self, entity: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.objects[entity].values())

    def define_custom_field(self, label: str) -> dict[str, Any]:
        """A customer custom-field definition, as the App Foundations API keeps it."""
        with self.lock:
            number = str(len(self.custom_fields) + 1)
            node: dict[str, Any] = {
                "id": f"djQuMTo5MzQxNDUzMDUwOjQ{number}",
                "legacyIDV2": number,
                "label": label,
                "active": True,
                "dataType": "STRING",
                "associations": [
                    {
                        "associatedEntity": "/network/Contact",
                        "active": True,
                        "subAssociations": [{"associatedEntity": "CUSTOMER", "active": True}],
                    }
                ],
            }
            self.custom_fields[number] = node
            return node

    def select(self, entity: str, where: str) -> list[dict[str, Any]]:
        """Objects matching a query's WHERE clause, in ``Id`` order (ValueError if unknown)."""
        matches = _Filter(where, entity).select(self.objects[entity].values())
        return sorted(matches, key=lambda obj: int(obj["Id"]))


_CLAUSE = re.compile(
    r"(?P<field>Active|Job|Id|MetaData\.LastUpdatedTime)\s*"
    r"(?P<op>>=|<=|=|<|>|IN)\s*(?P<value>\(.*\)|'[^']*'|true|false)",
    re.IGNORECASE,
)


class _Filter:
    """The WHERE clauses the stand-in understands, joined by AND."""

    def __init__(self, where: str, entity: str) -> None:
        self.clauses = []
        for text in re.split(r"\s+AND\s+", where.strip(), flags=re.IGNORECASE) if where else []:
            match = _CLAUSE.fullmatch(text.strip())
            if match is None:
                raise ValueError(f"cannot filter on {text!r}")
            self.clauses.append(match)
        filters_active = any(c["field"].lower() == "active" for c in self.clauses)
        self.active_only = entity == "Customer" and not filters_active

    def select(self, objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [obj for obj in objects if self._matches(obj)]

    def _matches(self, obj: dict[str, Any]) -> bool:
        if self.active_only and not obj.get("Active", True):
            return False
        return all(_clause_matches(clause, obj) for clause in self.clauses)


def _values(text: str) -> list[str]:
    inner = text.strip()[1:-1] if text.startswith("(") else text
    return [part.strip().strip("'").lower() for part in inner.split(",")]


def _clause_matches(clause: re.Match[str], obj: dict[str, Any]) -> bool:
    name, op, value = clause["field"].lower(), clause["op"].upper(), clause["value"]
    if name == "metadata.lastupdatedtime":
        actual = datetime.fromisoformat(obj["MetaData"]["LastUpdatedTime"])
        wanted = datetime.fromisoformat(value.strip("'"))
        return {
            ">=": actual >= wanted,
            ">": actual > wanted,
            "<=": actual <= wanted,
            "<": actual < wanted,
            "=": actual == wanted,
        }.get(op, False)
    field_value = {"active": obj.get("Active", True), "job": obj.get("Job", False)}.get(
        name, obj.get("Id")
    )
    text = str(field_value).lower()
    return text in _values(value) if op in {"IN", "="} else False
