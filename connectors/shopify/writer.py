"""Push to Shopify: customer metafields in one namespace, 25 per ``metafieldsSet`` call.

The metafield key is the push field's name (made lower-case, other characters to ``_``); its
type follows the field's format — ``%Y-%m-%d`` a ``date``, a fixed-point format such as
``.2f`` a ``number_decimal``, ``d`` a ``number_integer``, anything else a
``single_line_text_field`` — so the values show typed on the customer page once ``clm-sync
setup`` has created the definitions. An empty value deletes the metafield. ``metafieldsSet``
is atomic: when Shopify refuses one input, the others are sent again without it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from config.models import PushField
from connectors.base import Console, WriteResult
from connectors.records import FieldUpdate
from connectors.shopify.client import ShopifyClient

MAX_METAFIELDS_PER_CALL = 25
"""metafieldsSet accepts at most 25 metafields per call."""
TEXT_TYPE = "single_line_text_field"
SET_METAFIELDS = (
    "mutation SetMetafields($metafields: [MetafieldsSetInput!]!) { "
    "metafieldsSet(metafields: $metafields) { metafields { key namespace } "
    "userErrors { field message code } } }"
)
DELETE_METAFIELDS = (
    "mutation DeleteMetafields($metafields: [MetafieldIdentifierInput!]!) { "
    "metafieldsDelete(metafields: $metafields) { deletedMetafields { key } "
    "userErrors { field message } } }"
)
LIST_DEFINITIONS = (
    "query Definitions($namespace: String!) { metafieldDefinitions(ownerType: CUSTOMER, "
    "namespace: $namespace, first: 250) { nodes { namespace key type { name } } } }"
)
CREATE_DEFINITION = (
    "mutation CreateDefinition($definition: MetafieldDefinitionInput!) { "
    "metafieldDefinitionCreate(definition: $definition) { createdDefinition { id name } "
    "userErrors { field message code } } }"
)
_FIXED_POINT = re.compile(r"^[,_]?\.\d+f$")
_NOT_KEY = re.compile(r"[^a-z0-9_-]+")


def metafield_key(field: str) -> str:
    return _NOT_KEY.sub("_", field.strip().lower()).strip("_")[:64] or "value"


def metafield_type(format_spec: str) -> str:
    if format_spec == "%Y-%m-%d":
        return "date"
    if _FIXED_POINT.match(format_spec):
        return "number_decimal"
    if format_spec == "d":
        return "number_integer"
    return TEXT_TYPE


def customer_gid(external_id: str) -> str | None:
    return f"gid://shopify/Customer/{external_id}" if external_id.isdigit() else None


class MetafieldWriter:
    """Writes push fields as customer metafields of one namespace."""

    def __init__(
        self, client: ShopifyClient, namespace: str, fields: Sequence[PushField], batch: int
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.types = {field.field: metafield_type(field.format) for field in fields}
        self.max_batch = min(batch, MAX_METAFIELDS_PER_CALL)

    def write(self, updates: Sequence[FieldUpdate]) -> Sequence[WriteResult]:
        results: list[WriteResult] = []
        to_set: list[FieldUpdate] = []
        to_delete: list[FieldUpdate] = []
        for update in updates:
            if customer_gid(update.external_id) is None:
                results.append(WriteResult(update, "not a Shopify customer (a guest checkout)"))
            elif update.value == "":
                to_delete.append(update)
            else:
                to_set.append(update)
        if to_delete:
            self.client.query(
                DELETE_METAFIELDS,
                {"metafields": [self._identifier(update) for update in to_delete]},
            )
            results.extend(WriteResult(update) for update in to_delete)
        results.extend(self._set(to_set))
        return results

    def _identifier(self, update: FieldUpdate) -> dict[str, Any]:
        return {
            "ownerId": customer_gid(update.external_id),
            "namespace": self.namespace,
            "key": metafield_key(update.field),
        }

    def _set(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        if not updates:
            return []
        inputs = [
            self._identifier(update)
            | {"type": self.types.get(update.field, TEXT_TYPE), "value": update.value}
            for update in updates
        ]
        answer = self.client.query(SET_METAFIELDS, {"metafields": inputs})
        errors = (answer.data.get("metafieldsSet") or {}).get("userErrors") or []
        if not errors:
            return [WriteResult(update) for update in updates]
        refused: dict[int, str] = {}
        for error in errors:
            path = error.get("field") or []
            if len(path) >= 2 and str(path[1]).isdigit() and int(path[1]) < len(updates):
                refused[int(path[1])] = f"Shopify refused it: {error.get('message')}"
        if not refused:  # not tied to one input: the whole call failed
            reason = "; ".join(str(error.get("message")) for error in errors)
            return [
                WriteResult(update, f"Shopify refused the call: {reason}") for update in updates
            ]
        rest = [update for index, update in enumerate(updates) if index not in refused]
        failed = [WriteResult(updates[index], reason) for index, reason in refused.items()]
        return failed + self._set(rest)


def set_up_definitions(
    client: ShopifyClient,
    namespace: str,
    fields: Sequence[PushField],
    console: Console,
    dry_run: bool,
) -> int:
    """Create a pinned customer metafield definition per push field that lacks one."""
    answer = client.query(LIST_DEFINITIONS, {"namespace": namespace})
    nodes = (answer.data.get("metafieldDefinitions") or {}).get("nodes") or []
    existing = {str(node.get("key")) for node in nodes if node.get("namespace") == namespace}
    created = 0
    for field in fields:
        key, kind = metafield_key(field.field), metafield_type(field.format)
        if key in existing:
            console.say(f"metafield {namespace}.{key} is already defined")
            continue
        if dry_run:
            console.say(f"would define metafield {namespace}.{key} ({kind}) for customers")
            continue
        definition = {
            "name": field.field,
            "namespace": namespace,
            "key": key,
            "type": kind,
            "ownerType": "CUSTOMER",
            "description": f"clm-sync: {field.metric}",
            "pin": True,
        }
        result = client.query(CREATE_DEFINITION, {"definition": definition}).data
        errors = (result.get("metafieldDefinitionCreate") or {}).get("userErrors") or []
        if errors and not any(error.get("code") == "TAKEN" for error in errors):
            reason = "; ".join(str(error.get("message")) for error in errors)
            console.say(f"could not define metafield {namespace}.{key}: {reason}")
            continue
        existing.add(key)
        created += 1
        console.say(f"defined metafield {namespace}.{key} ({kind}) for customers")
    return created
