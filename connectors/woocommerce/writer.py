"""Push to WooCommerce: customer ``meta_data`` through ``customers/batch``, 100 per call.

Every update of one customer goes into one ``update`` entry of the batch (WooCommerce accepts
at most 100 objects per batch call); the meta key is the push field's name. An entry the
shop refuses comes back with an ``error`` object; the others are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.base import WriteResult
from connectors.records import FieldUpdate
from connectors.woocommerce.client import WooClient

MAX_BATCH = 100
"""WooCommerce's batch endpoints take at most 100 objects per request."""


class MetaDataWriter:
    def __init__(self, client: WooClient, batch: int) -> None:
        self.client = client
        self.max_batch = min(batch, MAX_BATCH)

    def write(self, updates: Sequence[FieldUpdate]) -> Sequence[WriteResult]:
        results: list[WriteResult] = []
        by_customer: dict[int, list[FieldUpdate]] = {}
        for update in updates:
            if update.external_id.isdigit():
                by_customer.setdefault(int(update.external_id), []).append(update)
            else:
                results.append(WriteResult(update, "not a WooCommerce customer (a guest order)"))
        if not by_customer:
            return results
        entries = [
            {"id": customer, "meta_data": [{"key": u.field, "value": u.value} for u in own]}
            for customer, own in by_customer.items()
        ]
        body, _ = self.client.call("POST", "customers/batch", body={"update": entries})
        answered: dict[int, Any] = {}
        for entry in (body or {}).get("update") or []:
            if isinstance(entry, dict) and entry.get("id") is not None:
                answered[int(entry["id"])] = entry
        for customer, own in by_customer.items():
            entry = answered.get(customer)
            if entry is None:
                error = "WooCommerce did not answer for this customer"
            elif isinstance(entry.get("error"), dict):
                error = f"WooCommerce refused it: {entry['error'].get('message')}"
            else:
                error = None
            results.extend(WriteResult(update, error) for update in own)
        return results
