"""Push to Outlook contacts through Graph: named properties, a stage category, a notes block.

For each contact with changed values, one ``PATCH`` carries what the YAML turned on:

* every pushed field as a named string property in **PS_PUBLIC_STRINGS**
  (``String {00020329-0000-0000-C000-000000000046} Name <field>``), the property set of
  Outlook's user-defined fields, so Outlook's field chooser and custom views can show them;
* the contact's clm-sync **category** (``CLM: Champion`` ...), picked by the value of one
  pushed field; categories the user set stay, ours are swapped; missing ones are first added
  to the mailbox's master category list with their colour;
* the **notes block** (:mod:`connectors.notes_block`): the user's text outside it is kept
  byte for byte.

Contacts are read first (notes, categories, our properties) and then written, each in JSON
batches of up to 20 requests per mailbox, so a batch of 20 changed contacts costs one write
request. The push engine sends only changed values, so an unchanged ledger writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from config.models import GraphSource
from connectors.base import Created, NewCustomer, WriteResult
from connectors.errors import SourceError
from connectors.graph.client import GraphClient, SubResponse, mailbox_path, property_id
from connectors.notes_block import NotesTooLong
from connectors.outlook.changes import ChangePlanner, ContactNow
from connectors.outlook.streams import split_contact_id
from connectors.records import FieldUpdate

log = logging.getLogger(__name__)


class GraphWriter:
    """Writes changed figures onto contacts; ``max_batch`` holds 20 contacts' updates."""

    def __init__(self, client: GraphClient, source: GraphSource) -> None:
        self.client = client
        self.source = source
        self.push = source.push
        self.planner = ChangePlanner(source.push)
        self.fields = self.planner.fields
        self.max_batch = self.push.batch_size * max(1, len(self.fields))
        self.categories = self.planner.categories
        self._master_checked: set[str] = set()
        self.write_requests = 0
        """``$batch`` calls that carried writes (for the benchmark)."""

    def write(self, updates: Sequence[FieldUpdate]) -> Sequence[WriteResult]:
        by_contact: dict[str, list[FieldUpdate]] = {}
        for update in updates:
            by_contact.setdefault(update.external_id, []).append(update)
        results: list[WriteResult] = []
        by_mailbox: dict[str, list[str]] = {}
        for key in by_contact:
            by_mailbox.setdefault(split_contact_id(key)[0], []).append(key)
        for mailbox, keys in by_mailbox.items():
            for start in range(0, len(keys), self.push.batch_size):
                chunk = keys[start : start + self.push.batch_size]
                results += self._write_chunk(mailbox, {k: by_contact[k] for k in chunk})
        return results

    def _write_chunk(
        self, mailbox: str, chunk: Mapping[str, list[FieldUpdate]]
    ) -> list[WriteResult]:
        self._ensure_categories(mailbox)
        current = self._read(mailbox, list(chunk))
        requests: list[dict[str, Any]] = []
        failed: dict[str, str] = {}
        for number, (key, updates) in enumerate(chunk.items()):
            answer = current.get(str(number))
            if answer is not None and not answer.ok:
                failed[key] = answer.error_text()
                continue
            body = answer.body if answer is not None else {}
            try:
                patch = self._patch(body if isinstance(body, dict) else {}, updates)
            except NotesTooLong as error:
                failed[key] = str(error)
                continue
            requests.append(
                {
                    "id": str(number),
                    "method": "PATCH",
                    "url": f"{mailbox_path(mailbox)}/contacts/{split_contact_id(key)[1]}",
                    "body": patch,
                    "headers": {"Content-Type": "application/json"},
                }
            )
        answers = self.client.batch(mailbox, requests) if requests else {}
        self.write_requests += (len(requests) + 19) // 20
        results: list[WriteResult] = []
        for number, (key, updates) in enumerate(chunk.items()):
            written = answers.get(str(number))
            problem = failed.get(key)
            if problem is None and (written is None or not written.ok):
                problem = written.error_text() if written else "no answer in the batch"
            results += [WriteResult(update, problem) for update in updates]
        return results

    def _read(self, mailbox: str, keys: list[str]) -> dict[str, SubResponse]:
        """The contacts' notes, categories and our properties, when the YAML needs them."""
        if not self.planner.needs_read:
            return {}
        wanted = " or ".join(f"id eq '{property_id(name)}'" for name in self.fields)
        expand = f"&$expand=singleValueExtendedProperties($filter={wanted})" if wanted else ""
        requests = [
            {
                "id": str(number),
                "method": "GET",
                "url": f"{mailbox_path(mailbox)}/contacts/{split_contact_id(key)[1]}"
                f"?$select=personalNotes,categories{expand}",
            }
            for number, key in enumerate(keys)
        ]
        return self.client.batch(mailbox, requests)

    def _patch(self, contact: Mapping[str, Any], updates: Sequence[FieldUpdate]) -> dict[str, Any]:
        ours = {}
        for prop in contact.get("singleValueExtendedProperties") or []:
            ours[str(prop.get("id", "")).rpartition(" Name ")[2]] = str(prop.get("value", ""))
        now = ContactNow(contact.get("personalNotes") or "", contact.get("categories") or [], ours)
        change = self.planner.plan(now, updates)
        patch: dict[str, Any] = {}
        if change.properties:
            patch["singleValueExtendedProperties"] = [
                {"id": property_id(name), "value": value}
                for name, value in change.properties.items()
            ]
        if change.notes is not None:
            patch["personalNotes"] = change.notes
        if change.categories is not None:
            patch["categories"] = change.categories
        return patch

    @property
    def creates(self) -> bool:
        return self.push.create_contacts is not None

    def create(self, customers: Sequence[NewCustomer]) -> Sequence[Created]:
        """New contacts in the YAML's mailbox and folder, carrying their figures already."""
        target = self.push.create_contacts
        if target is None:
            return [Created(c, None, "contact creation is off") for c in customers]
        mailbox = target.mailbox
        folders = self.client.folder_ids(mailbox, "contactFolders")
        folder_id = folders.get(target.folder.lower())
        if folder_id is None:
            raise SourceError(
                f"{mailbox} has no contact folder {target.folder!r} for new contacts; fix "
                "push.create_contacts in the source's YAML"
            )
        self._ensure_categories(mailbox)
        requests = []
        for number, customer in enumerate(customers):
            updates = [FieldUpdate("", name, value) for name, value in customer.values.items()]
            body = _new_contact(customer) | self._patch({}, updates)
            requests.append(
                {
                    "id": str(number),
                    "method": "POST",
                    "url": f"{mailbox_path(mailbox)}/contactFolders/{folder_id}/contacts",
                    "body": body,
                    "headers": {"Content-Type": "application/json"},
                }
            )
        answers = self.client.batch(mailbox, requests) if requests else {}
        self.write_requests += (len(requests) + 19) // 20
        results = []
        for number, customer in enumerate(customers):
            answer = answers.get(str(number))
            if answer is not None and answer.ok and isinstance(answer.body, dict):
                results.append(Created(customer, f"{mailbox}:{answer.body['id']}"))
            else:
                results.append(
                    Created(customer, None, answer.error_text() if answer else "no answer")
                )
        return results

    def _ensure_categories(self, mailbox: str) -> None:
        """Add our categories to the mailbox's master list, with their colours, once."""
        if self.categories is None or mailbox.lower() in self._master_checked:
            return
        path = f"{mailbox_path(mailbox)}/outlook/masterCategories".lstrip("/")
        present = {
            str(c.get("displayName", "")).lower()
            for c in self.client.get(mailbox, path).get("value", [])
        }
        for category in self.categories.values.values():
            if category.name.lower() not in present:
                self.client.mailbox(mailbox).json(
                    "POST",
                    path,
                    json_body={"displayName": category.name, "color": category.color},
                )
                present.add(category.name.lower())
                log.info("%s: added category %r to the master list", mailbox, category.name)
        self._master_checked.add(mailbox.lower())


def _new_contact(customer: NewCustomer) -> dict[str, Any]:
    """A Graph contact for a customer Outlook does not know yet."""
    shown = customer.name or " ".join(
        part for part in (customer.first_name, customer.last_name) if part
    )
    body: dict[str, Any] = {
        "displayName": shown or customer.email,
        "emailAddresses": [{"address": customer.email, "name": shown or customer.email}],
    }
    for key, value in (
        ("givenName", customer.first_name),
        ("surname", customer.last_name),
        ("companyName", customer.company),
    ):
        if value:
            body[key] = value
    if customer.phone:
        body["businessPhones"] = [customer.phone]
    return body
