"""Push to Outlook contacts through EWS: named properties, a category, the notes block.

Per mailbox, up to ``batch_size`` contacts are read in one ``GetItem`` (notes, categories and
our properties) and written in one ``UpdateItem`` with an item change each; the changes
come from the same planner as Graph's (:mod:`connectors.outlook.changes`). EWS has no call
for the master category list short of rewriting the mailbox's category configuration, so a
new category shows on the contact but is not added to the list with a colour; add it once
in Outlook (the README says so).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from exchangelib import Body, Contact
from exchangelib.indexed_properties import EmailAddress, PhoneNumber

from config.models import EwsSource
from connectors.base import Created, NewCustomer, WriteResult
from connectors.ews.backend import EwsMail
from connectors.ews.client import EwsClient, property_attribute, translate
from connectors.notes_block import NotesTooLong
from connectors.outlook.changes import ChangePlanner, ContactNow
from connectors.outlook.streams import split_contact_id
from connectors.records import FieldUpdate

log = logging.getLogger(__name__)


class EwsWriter:
    def __init__(self, client: EwsClient, mail: EwsMail, source: EwsSource) -> None:
        self.client = client
        self.mail = mail
        self.push = source.push
        self.planner = ChangePlanner(source.push)
        self.attrs = {name: property_attribute(name) for name in self.planner.fields}
        self.max_batch = self.push.batch_size * max(1, len(self.planner.fields))
        self.write_requests = 0
        """UpdateItem calls (for the benchmark)."""

    def write(self, updates: Sequence[FieldUpdate]) -> Sequence[WriteResult]:
        by_contact: dict[str, list[FieldUpdate]] = {}
        for update in updates:
            by_contact.setdefault(update.external_id, []).append(update)
        by_mailbox: dict[str, list[str]] = {}
        for key in by_contact:
            by_mailbox.setdefault(split_contact_id(key)[0], []).append(key)
        results: list[WriteResult] = []
        for mailbox, keys in by_mailbox.items():
            for start in range(0, len(keys), self.push.batch_size):
                chunk = keys[start : start + self.push.batch_size]
                results += self._write_chunk(mailbox, {k: by_contact[k] for k in chunk})
        return results

    @property
    def creates(self) -> bool:
        return self.push.create_contacts is not None

    def create(self, customers: Sequence[NewCustomer]) -> Sequence[Created]:
        """New contacts in the YAML's mailbox and folder, in one CreateItem, figures included."""
        target = self.push.create_contacts
        if target is None:
            return [Created(c, None, "contact creation is off") for c in customers]
        account = self.client.account(target.mailbox)
        folder = self.mail.contact_folder(target.mailbox, target.folder)
        items = []
        for customer in customers:
            updates = [FieldUpdate("", name, value) for name, value in customer.values.items()]
            change = self.planner.plan(ContactNow(), updates)
            item = _new_contact(account, folder, customer)
            for name, value in change.properties.items():
                setattr(item, self.attrs[name], value)
            if change.notes:
                item.body = Body(change.notes)
            if change.categories:
                item.categories = change.categories
            items.append(item)
        self.write_requests += 1
        try:
            answers = account.bulk_create(folder=folder, items=items, chunk_size=len(items))
        except Exception as error:
            raise translate(error, f"{target.mailbox}: CreateItem") from error
        return [
            Created(customer, None, f"{type(answer).__name__}: {answer}")
            if isinstance(answer, Exception)
            else Created(customer, f"{target.mailbox}:{answer.id}")
            for customer, answer in zip(customers, answers, strict=True)
        ]

    def _write_chunk(self, mailbox: str, chunk: dict[str, list[FieldUpdate]]) -> list[WriteResult]:
        account = self.client.account(mailbox)
        keys = list(chunk)
        fields = ["body", "categories", *self.attrs.values()]
        try:
            items = list(
                account.fetch(
                    ids=[(split_contact_id(key)[1], None) for key in keys], only_fields=fields
                )
            )
        except Exception as error:
            raise translate(error, f"{mailbox}: GetItem") from error
        failed: dict[str, str] = {}
        changes: list[tuple[Any, list[str]]] = []
        changed_keys: list[str] = []
        for key, item in zip(keys, items, strict=True):
            if isinstance(item, Exception):
                failed[key] = f"{type(item).__name__}: {item}"
                continue
            now = ContactNow(
                str(item.body) if item.body else "",
                list(item.categories or []),
                {
                    name: value
                    for name, attr in self.attrs.items()
                    if (value := getattr(item, attr))
                },
            )
            try:
                change = self.planner.plan(now, chunk[key])
            except NotesTooLong as error:
                failed[key] = str(error)
                continue
            names: list[str] = []
            for name, value in change.properties.items():
                setattr(item, self.attrs[name], value or None)
                names.append(self.attrs[name])
            if change.notes is not None:
                item.body = Body(change.notes) if change.notes else None
                names.append("body")
            if change.categories is not None:
                item.categories = change.categories or None
                names.append("categories")
            if names:
                changes.append((item, names))
                changed_keys.append(key)
        if changes:
            self.write_requests += 1
            try:
                answers = list(account.bulk_update(items=changes, chunk_size=len(changes)))
            except Exception as error:
                raise translate(error, f"{mailbox}: UpdateItem") from error
            for key, answer in zip(changed_keys, answers, strict=True):
                if isinstance(answer, Exception):
                    failed[key] = f"{type(answer).__name__}: {answer}"
        return [WriteResult(update, failed.get(key)) for key in keys for update in chunk[key]]


def _new_contact(account: Any, folder: Any, customer: NewCustomer) -> Contact:
    """An EWS contact for a customer Exchange does not know yet."""
    shown = customer.name or " ".join(
        part for part in (customer.first_name, customer.last_name) if part
    )
    return Contact(
        account=account,
        folder=folder,
        display_name=shown or customer.email,
        given_name=customer.first_name,
        surname=customer.last_name,
        company_name=customer.company,
        email_addresses=[EmailAddress(label="EmailAddress1", email=customer.email)],
        phone_numbers=(
            [PhoneNumber(label="BusinessPhone", phone_number=customer.phone)]
            if customer.phone
            else None
        ),
    )
