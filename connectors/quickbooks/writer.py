"""Push: metric values into QuickBooks customers, by sparse updates through the batch endpoint.

Two targets (``push.target``):

* ``custom_fields``: the Custom Fields API. Definitions live in the App Foundations GraphQL
  API (``appFoundationsCustomFieldDefinitions``; ``clm-sync setup`` creates missing ones with
  ``appFoundationsCreateCustomFieldDefinition``); values go in the REST ``CustomField`` array
  as ``{"DefinitionId": <legacyIDV2>, "StringValue": ...}`` with
  ``include=enhancedAllCustomFields``.
* ``notes``: for editions without customer custom fields, a marked block at the end of the
  customer's ``Notes`` (:mod:`connectors.notes_block`); the user's text stays byte for byte,
  and the whole field within :data:`NOTES_LIMIT` characters.

Each write reads the customers first (their ``SyncToken``, notes and fields), then sends one
batch of sparse updates. An item refused for a stale ``SyncToken`` (someone edited the customer
meanwhile) is read again and sent once more; any other fault is reported for its updates, with
the fault's text, and not retried (the push engine plans it again next cycle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config.models import QuickBooksSource
from connectors.base import Console, WriteResult
from connectors.notes_block import NotesTooLong, split_notes, with_block
from connectors.quickbooks.client import STALE_OBJECT, Fault, QuickBooksClient, fault_of
from connectors.records import FieldUpdate

NOTES_LIMIT = 1024
"""Published limits of Customer.Notes differ (1024 to 2000 characters); stay within the lowest."""
CUSTOMER_ENTITY = "/network/Contact"
CUSTOMER_SUB_ENTITY = "CUSTOMER"

DEFINITIONS_QUERY = """
query CustomFieldDefinitions {
  appFoundationsCustomFieldDefinitions {
    edges { node { id legacyIDV2 label active dataType
                   associations { associatedEntity active
                                  subAssociations { associatedEntity active } } } }
  }
}
"""
CREATE_DEFINITION = """
mutation CreateCustomFieldDefinition($input: AppFoundations_CustomFieldDefinitionCreateInput!) {
  appFoundationsCreateCustomFieldDefinition(input: $input) {
    id legacyIDV2 label active dataType
  }
}
"""


def _for_customers(node: Mapping[str, Any]) -> bool:
    for association in node.get("associations") or []:
        if association.get("associatedEntity") != CUSTOMER_ENTITY or not association.get(
            "active", True
        ):
            continue
        subs = association.get("subAssociations") or []
        if not subs or any(
            sub.get("associatedEntity") == CUSTOMER_SUB_ENTITY and sub.get("active", True)
            for sub in subs
        ):
            return True
    return False


def _block_lines(notes: str | None) -> dict[str, str]:
    """``Label: value`` lines of our block in ``notes``, in order."""
    block = split_notes(notes).block
    values: dict[str, str] = {}
    for line in (block or "").splitlines()[1:-1]:
        label, separator, value = line.partition(": ")
        if separator:
            values[label] = value
    return values


@dataclass(slots=True)
class _Item:
    customer_id: str
    updates: list[FieldUpdate]


_Outcome = str | Fault | list[WriteResult]
"""Of one customer: a reason all its updates failed, QuickBooks's fault, or the updates that
could not go in (the others were written)."""


class QuickBooksWriter:
    """Writes one batch of customers per call (``push.batch_size`` customers)."""

    def __init__(self, source: QuickBooksSource, client: QuickBooksClient) -> None:
        self.source = source
        self.client = client
        self.fields = list(dict.fromkeys(mapping.field for mapping in source.push.fields))
        self.customers_per_batch = source.push.batch_size
        self.max_batch = source.push.batch_size * max(len(self.fields), 1)
        self._definitions: dict[str, str] | None = None

    # -- custom-field definitions ---------------------------------------------------------------

    def definitions(self, refresh: bool = False) -> dict[str, str]:
        """Active customer custom fields: label to the id REST calls use (``legacyIDV2``)."""
        if self._definitions is None or refresh:
            data = self.client.graphql(DEFINITIONS_QUERY)
            edges = (data.get("appFoundationsCustomFieldDefinitions") or {}).get("edges") or []
            self._definitions = {
                str(node["label"]): str(node["legacyIDV2"])
                for node in (edge.get("node") or {} for edge in edges)
                if node.get("active", True) and _for_customers(node)
            }
        return self._definitions

    def set_up(self, console: Console, dry_run: bool) -> None:
        if self.source.push.target != "custom_fields":
            console.say(
                f"source {self.source.name!r} pushes into the customers' Notes; nothing to set up"
            )
            return
        existing = self.definitions(refresh=True)
        missing = [label for label in dict.fromkeys(self.fields) if label not in existing]
        for label in self.fields:
            if label in existing:
                console.say(f"custom field {label!r} exists (id {existing[label]})")
        for label in missing:
            if dry_run:
                console.say(f"would create the customer custom field {label!r}")
                continue
            created = self.client.graphql(
                CREATE_DEFINITION,
                {
                    "input": {
                        "label": label,
                        "dataType": "STRING",
                        "active": True,
                        "associations": [
                            {
                                "associatedEntity": CUSTOMER_ENTITY,
                                "active": True,
                                "associationCondition": "INCLUDED",
                                "subAssociations": [
                                    {"associatedEntity": CUSTOMER_SUB_ENTITY, "active": True}
                                ],
                            }
                        ],
                    }
                },
            )
            node = created.get("appFoundationsCreateCustomFieldDefinition") or {}
            console.say(
                f"created the customer custom field {label!r} (id {node.get('legacyIDV2')})"
            )
        if not missing:
            console.say("every mapped custom field exists; nothing to create")
        self._definitions = None

    # -- writing --------------------------------------------------------------------------------

    def write(self, updates: Sequence[FieldUpdate]) -> Sequence[WriteResult]:
        items: dict[str, _Item] = {}
        for update in updates:
            items.setdefault(update.external_id, _Item(update.external_id, [])).updates.append(
                update
            )
        results: list[WriteResult] = []
        pending = list(items.values())
        for start in range(0, len(pending), self.customers_per_batch):
            results.extend(self._write_batch(pending[start : start + self.customers_per_batch]))
        return results

    def _write_batch(self, items: Sequence[_Item]) -> list[WriteResult]:
        results: list[WriteResult] = []
        stale: list[_Item] = []
        for item, outcome in self._send(items):
            if isinstance(outcome, Fault) and outcome.code == STALE_OBJECT:
                stale.append(item)
            else:
                results.extend(_results(item, outcome))
        if stale:  # edited meanwhile: read again and send once more
            for item, outcome in self._send(stale):
                results.extend(_results(item, outcome))
        return results

    def _send(self, items: Sequence[_Item]) -> list[tuple[_Item, _Outcome]]:
        """Read the customers, send one batch; each item's outcome."""
        current = self.client.customers([item.customer_id for item in items])
        outcomes: list[tuple[_Item, _Outcome]] = []
        requests: list[dict[str, Any]] = []
        sent: dict[str, tuple[_Item, list[WriteResult]]] = {}
        for number, item in enumerate(items, 1):
            customer = current.get(item.customer_id)
            if customer is None:
                outcomes.append((item, "the customer is not in QuickBooks (deleted or merged?)"))
                continue
            body, problems = self._sparse(customer, item)
            if body is None:
                outcomes.append((item, problems))
                continue
            sent[str(number)] = (item, problems)
            requests.append({"bId": str(number), "operation": "update", "Customer": body})
        answers = self.client.batch(requests) if requests else {}
        for bid, (item, problems) in sent.items():
            answer = answers.get(bid)
            fault = fault_of(answer.get("Fault")) if answer is not None else None
            if answer is None:
                outcomes.append((item, "QuickBooks's batch answer left this customer out"))
            else:
                outcomes.append((item, fault if fault is not None else problems))
        return outcomes

    def _sparse(
        self, customer: Mapping[str, Any], item: _Item
    ) -> tuple[dict[str, Any] | None, list[WriteResult]]:
        """The sparse update for one customer, and updates that cannot go into it."""
        body: dict[str, Any] = {
            "Id": str(customer["Id"]),
            "SyncToken": str(customer.get("SyncToken", "0")),
            "sparse": True,
        }
        if self.source.push.target == "notes":
            return self._notes_update(customer, item, body)
        definitions = self.definitions()
        values: list[dict[str, str]] = []
        problems: list[WriteResult] = []
        for update in item.updates:
            definition = definitions.get(update.field)
            if definition is None:
                problems.append(
                    WriteResult(
                        update,
                        f"custom field {update.field!r} is not defined in QuickBooks; run "
                        f"`clm-sync setup {self.source.name}`",
                    )
                )
                continue
            values.append(
                {"DefinitionId": definition, "StringValue": update.value, "Type": "StringType"}
            )
        if not values:
            return None, problems
        body["CustomField"] = values
        return body, problems

    def _notes_update(
        self, customer: Mapping[str, Any], item: _Item, body: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, list[WriteResult]]:
        notes = customer.get("Notes")
        values = _block_lines(notes)
        for update in item.updates:
            values[update.field] = update.value
        # In the mapping's order; a line of a field no longer mapped goes with the next write.
        lines = [f"{label}: {values[label]}" for label in self.fields if values.get(label)]
        try:
            new = with_block(notes, lines, NOTES_LIMIT)
        except NotesTooLong as error:
            return None, [WriteResult(update, str(error)) for update in item.updates]
        problems: list[WriteResult] = []
        if not new.fits:
            kept = set(new.text.splitlines())
            reason = (
                f"the Notes field holds at most {NOTES_LIMIT} characters; {new.omitted} figure "
                "lines were left out of the clm-sync block"
            )
            problems = [
                WriteResult(update, reason)
                for update in item.updates
                if update.value and f"{update.field}: {update.value}" not in kept
            ]
        if new.text == (notes or ""):
            return None, problems
        body["Notes"] = new.text
        return body, problems


def _results(item: _Item, outcome: _Outcome) -> list[WriteResult]:
    """Every update of the item: failed with the reason, or done (``problems`` excepted)."""
    if isinstance(outcome, str | Fault):
        return [WriteResult(update, str(outcome)) for update in item.updates]
    failed = {id(result.update) for result in outcome}
    return [*outcome, *(WriteResult(u) for u in item.updates if id(u) not in failed)]
