"""A Microsoft Graph stand-in: a Microsoft 365 tenant with mailboxes, contacts and mail.

Serves, in Graph's own JSON shapes (v1.0 reference: contact, message, outlookCategory,
singleValueLegacyExtendedProperty, delta query, JSON batching):

* the Entra ID endpoints MSAL needs for client credentials: the tenant's OpenID
  configuration and ``/oauth2/v2.0/token``;
* ``/v1.0/users/{mailbox}/contactFolders`` and ``.../contactFolders/{id}/contacts/delta``;
* ``/v1.0/users/{mailbox}/mailFolders`` and ``.../mailFolders/{id}/messages/delta``;
* ``/v1.0/users/{mailbox}/messages?$filter=conversationId eq '...'``;
* ``GET``/``PATCH /v1.0/users/{mailbox}/contacts/{id}`` with ``singleValueExtendedProperties``;
* ``/v1.0/users/{mailbox}/outlook/masterCategories``;
* ``POST /v1.0/$batch`` (at most 20 requests; each counts against its mailbox's throttle and
  may be answered 429 with ``Retry-After`` on its own).

Delta links carry the mailbox's change sequence; :meth:`GraphTenant.expire_delta_links`
makes every link issued so far answer ``410 Gone`` with ``syncStateNotFound``, as Exchange
does when its delta token cache dropped a token. Throttling is per mailbox (Graph's Outlook
limits: 4 concurrent requests, 10,000 per 10 minutes per app and mailbox), time-scalable.

:func:`tenant_from_business` builds the tenant from the synthetic business, and
:class:`TenantTruth` says what a connector should find in it.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from sandbox.http import Faults, Request, Response, SandboxServer, Throttle
from sandbox.synthetic import BusinessSpec, Person, generate_persons

TENANT_ID = "5f1e0c6a-7d3b-4c2e-9a41-0b8d2f6e1c99"
CLIENT_ID = "0d4b9f1e-2c7a-4e55-8b3d-6a1c9e2f7b40"
CLIENT_SECRET = "sandbox-secret-not-for-production"  # noqa: S105 (the stand-in's own)
OWN_DOMAIN = "northwind.test"
SALES = f"sales@{OWN_DOMAIN}"
SUPPORT = f"support@{OWN_DOMAIN}"
OWNER = f"owner@{OWN_DOMAIN}"
MAILBOXES = (SALES, SUPPORT, OWNER)
CONTACT_FOLDER = "Contacts"
WELL_KNOWN_MAIL = ("inbox", "sentitems")
MAX_BATCH = 20
RESOLVED = "Resolved"
PS_PUBLIC_STRINGS = "{00020329-0000-0000-C000-000000000046}"
TOKEN_LIFETIME = 3599


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(rng: random.Random) -> str:
    """An opaque id in the style of Exchange's (URL-safe base64, long)."""
    raw = bytes(rng.getrandbits(8) for _ in range(45))
    return "AAMk" + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    return Response.json({"error": {"code": code, "message": message}}, status, **headers)


@dataclass(slots=True)
class Item:
    """A contact or message in one folder, with the change sequence of its last change."""

    id: str
    folder_id: str
    body: dict[str, Any]
    seq: int
    deleted: bool = False
    extended: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Mailbox:
    address: str
    display_name: str
    contact_folders: dict[str, str] = field(default_factory=dict)
    """Display name -> folder id."""
    mail_folders: dict[str, str] = field(default_factory=dict)
    """Well-known or display name -> folder id."""
    contacts: dict[str, Item] = field(default_factory=dict)
    messages: dict[str, Item] = field(default_factory=dict)
    categories: list[dict[str, str]] = field(default_factory=list)
    seq: int = 0
    generation: int = 0

    def bump(self) -> int:
        self.seq += 1
        return self.seq

    def folder_name(self, folder_id: str) -> str | None:
        for name, known in (self.contact_folders | self.mail_folders).items():
            if known == folder_id:
                return name
        return None


@dataclass(frozen=True, slots=True)
class TrueIncident:
    """A support incident as the tenant was built: whose, when opened, our replies."""

    email: str
    opened_at: datetime
    replies: int


@dataclass(slots=True)
class TenantTruth:
    """What the tenant holds, for tests: contacts and customer messages per person e-mail."""

    contacts: dict[str, str] = field(default_factory=dict)
    """Contact key ``mailbox:id`` -> the person's e-mail."""
    messages: int = 0
    customer_emails: set[str] = field(default_factory=set)
    incidents: list[TrueIncident] = field(default_factory=list)

    def incidents_by_email(self) -> dict[str, list[TrueIncident]]:
        found: dict[str, list[TrueIncident]] = {}
        for incident in self.incidents:
            found.setdefault(incident.email, []).append(incident)
        return found


class GraphTenant:
    """The tenant's state; thread-safe through one lock (the server is threaded)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(f"{seed}:graph")
        self.mailboxes: dict[str, Mailbox] = {}
        self.lock = threading.RLock()
        self.tokens: set[str] = set()
        self.patches = 0
        """Contact PATCHes applied (in or out of batches)."""
        self.created = 0
        """Contacts created through the API."""

    # -- building ---------------------------------------------------------------------------

    def add_mailbox(self, address: str, display_name: str) -> Mailbox:
        mailbox = Mailbox(address, display_name)
        mailbox.contact_folders[CONTACT_FOLDER] = _new_id(self.rng)
        for name in WELL_KNOWN_MAIL:
            mailbox.mail_folders[name] = _new_id(self.rng)
        self.mailboxes[address.lower()] = mailbox
        return mailbox

    def add_contact(
        self, mailbox: Mailbox, body: dict[str, Any], folder: str = CONTACT_FOLDER
    ) -> str:
        with self.lock:
            contact_id = _new_id(self.rng)
            folder_id = mailbox.contact_folders[folder]
            now = _stamp(datetime.now(UTC))
            full = {
                "id": contact_id,
                "createdDateTime": body.pop("createdDateTime", now),
                "lastModifiedDateTime": now,
                "changeKey": _new_id(self.rng)[:20],
                "parentFolderId": folder_id,
                "categories": [],
                "personalNotes": "",
                **body,
            }
            mailbox.contacts[contact_id] = Item(contact_id, folder_id, full, mailbox.bump())
            return contact_id

    def add_message(self, mailbox: Mailbox, folder: str, body: dict[str, Any]) -> str:
        with self.lock:
            message_id = _new_id(self.rng)
            folder_id = mailbox.mail_folders[folder]
            full = {"id": message_id, "parentFolderId": folder_id, "isDraft": False, **body}
            mailbox.messages[message_id] = Item(message_id, folder_id, full, mailbox.bump())
            return message_id

    # -- changes a user makes ---------------------------------------------------------------

    def edit_contact(self, mailbox: str, contact_id: str, **changes: Any) -> None:
        with self.lock:
            box = self.mailboxes[mailbox.lower()]
            item = box.contacts[contact_id]
            item.body.update(changes)
            item.body["lastModifiedDateTime"] = _stamp(datetime.now(UTC))
            item.seq = box.bump()

    def delete_contact(self, mailbox: str, contact_id: str) -> None:
        with self.lock:
            box = self.mailboxes[mailbox.lower()]
            item = box.contacts[contact_id]
            item.deleted = True
            item.seq = box.bump()

    def delete_message(self, mailbox: str, message_id: str) -> None:
        with self.lock:
            box = self.mailboxes[mailbox.lower()]
            item = box.messages[message_id]
            item.deleted = True
            item.seq = box.bump()

    def expire_delta_links(self) -> None:
        """Every delta or next link issued so far now answers 410 syncStateNotFound."""
        with self.lock:
            for mailbox in self.mailboxes.values():
                mailbox.generation += 1

    def contact(self, key: str) -> Item:
        """A contact by the connector's key ``mailbox:id``."""
        mailbox, contact_id = key.split(":", 1)
        return self.mailboxes[mailbox.lower()].contacts[contact_id]

    def live_contacts(self) -> Iterator[tuple[str, Item]]:
        for mailbox in self.mailboxes.values():
            for item in mailbox.contacts.values():
                if not item.deleted:
                    yield f"{mailbox.address}:{item.id}", item


# -- the synthetic business as a tenant --------------------------------------------------------


def _address(email: str, name: str) -> dict[str, Any]:
    return {"emailAddress": {"name": name, "address": email}}


def _contact_body(person: Person) -> dict[str, Any]:
    address = person.address
    body: dict[str, Any] = {
        "displayName": f"{person.first_name} {person.last_name}",
        "givenName": person.first_name,
        "surname": person.last_name,
        "companyName": person.company,
        "emailAddresses": (
            [{"name": f"{person.first_name} {person.last_name}", "address": person.email}]
            if person.email
            else []
        ),
        "businessPhones": [person.phone] if person.phone else [],
        "mobilePhone": None,
        "businessAddress": {
            "street": address.line1,
            "city": address.city,
            "state": address.region,
            "countryOrRegion": address.country,
            "postalCode": address.postcode,
        },
        "createdDateTime": _stamp(person.acquired_at),
    }
    return body


def tenant_from_business(
    spec: BusinessSpec, sales_exchanges: int = 0
) -> tuple[GraphTenant, TenantTruth]:
    """Three mailboxes serving the business's persons; returns the tenant and its truth.

    Persons with an e-mail address become contacts in the sales mailbox (and every third also
    in the owner's); their e-mail contacts become conversations with sales, their support
    contacts conversations with support (a customer message, one or two replies of ours, now
    and then a follow-up from the customer, sometimes the ``Resolved`` category). Calls leave
    no mail. Internal mail between the mailboxes is mixed in and must never make a customer.
    ``sales_exchanges`` adds that many more (customer message, our reply) pairs to every sales
    conversation, for a mail-heavy tenant (the benchmark's).
    """
    tenant = GraphTenant(spec.seed)
    truth = TenantTruth()
    sales = tenant.add_mailbox(SALES, "Sales")
    support = tenant.add_mailbox(SUPPORT, "Support")
    owner = tenant.add_mailbox(OWNER, "Owner")
    rng = random.Random(f"{spec.seed}:graph-mail")
    for person in generate_persons(spec):
        if not person.email:
            continue
        name = f"{person.first_name} {person.last_name}"
        truth.contacts[f"{SALES}:{tenant.add_contact(sales, _contact_body(person))}"] = person.email
        if person.index % 3 == 0:
            key = f"{OWNER}:{tenant.add_contact(owner, _contact_body(person))}"
            truth.contacts[key] = person.email
        for contact in person.contacts:
            if contact.kind == "call":
                continue
            box = support if contact.kind == "support" else sales
            conversation = _new_id(rng)
            at = contact.at
            customer = _address(person.email, name)
            us = _address(box.address, box.display_name)

            def message(
                folder: str,
                sender: dict[str, Any],
                to: dict[str, Any],
                when: datetime,
                subject: str,
                categories: list[str],
                *,
                mailbox: Mailbox = box,
                conversation_id: str = conversation,
            ) -> None:
                tenant.add_message(
                    mailbox,
                    folder,
                    {
                        "subject": subject,
                        "from": sender,
                        "sender": sender,
                        "toRecipients": [to],
                        "ccRecipients": [],
                        "receivedDateTime": _stamp(when),
                        "sentDateTime": _stamp(when),
                        "conversationId": conversation_id,
                        "categories": categories,
                        "bodyPreview": f"About {subject.lower()}: please get back to me.",
                    },
                )
                truth.messages += 1

            message("inbox", customer, us, at, contact.subject, [])
            truth.customer_emails.add(person.email)
            support_case = contact.kind == "support"
            replies = 0
            if support_case or rng.random() < 0.6:
                resolved = support_case and rng.random() < 0.3
                reply_at = at + timedelta(hours=rng.uniform(1, 20))
                subject = "RE: " + contact.subject
                message("sentitems", us, customer, reply_at, subject, [RESOLVED] * resolved)
                replies = 1
                if support_case and not resolved and rng.random() < 0.4:
                    follow_at = reply_at + timedelta(hours=rng.uniform(1, 30))
                    message("inbox", customer, us, follow_at, subject, [])
                    message("sentitems", us, customer, follow_at + timedelta(hours=2), subject, [])
                    replies = 2
            if not support_case:
                for number in range(1, sales_exchanges + 1):
                    later = at + timedelta(hours=3 * number)
                    message("inbox", customer, us, later, "RE: " + contact.subject, [])
                    message("sentitems", us, customer, later + timedelta(hours=1), "RE:", [])
            if support_case:
                truth.incidents.append(TrueIncident(person.email, at, replies))
        if person.index % 7 == 0:
            # Internal mail: colleagues about the customer; never a customer address.
            internal = _new_id(rng)
            tenant.add_message(
                owner,
                "inbox",
                {
                    "subject": f"Account review: {name}",
                    "from": _address(SALES, "Sales"),
                    "sender": _address(SALES, "Sales"),
                    "toRecipients": [_address(OWNER, "Owner")],
                    "ccRecipients": [],
                    "receivedDateTime": _stamp(person.acquired_at),
                    "sentDateTime": _stamp(person.acquired_at),
                    "conversationId": internal,
                    "categories": [],
                    "bodyPreview": "Internal note.",
                },
            )
    return tenant, truth


# -- the server -----------------------------------------------------------------------------


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any] | None:
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def _page_size(request: Request, default: int = 10) -> int:
    prefer = request.header("prefer") or ""
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit():
            return max(1, min(int(value), 1000))
    return default


def _selected(body: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return dict(body)
    keep = {name.strip() for name in select.split(",")} | {"id"}
    return {key: value for key, value in body.items() if key in keep}


def _mailbox_of(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "v1.0" and parts[2] == "users":
        return unquote(parts[3]).lower()
    return ""


class GraphServer(SandboxServer):
    """The tenant over HTTP on 127.0.0.1 (use as a context manager)."""

    def __init__(
        self,
        tenant: GraphTenant,
        *,
        throttle: Throttle | None = None,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(
            faults=faults,
            throttle=throttle or Throttle(max_requests=10_000, window=600, max_concurrent=4),
            throttle_key=self._throttle_key,
            fault_response=self._fault,
            no_delay=True,
        )
        self.tenant = tenant
        self._batch_numbers = itertools.count()
        self._passes: dict[tuple[str, str, int, int, int], list[Item]] = {}
        self.batch_throttled = 0
        """Requests inside $batch answered 429 (each counted in ``throttle.rejected`` too)."""
        self._routes_for_graph()

    def _throttle_key(self, request: Request) -> str:
        if request.path.endswith("/$batch"):
            # The batch itself is not throttled; each request in it counts for its mailbox.
            return f"$batch:{next(self._batch_numbers)}"
        return _mailbox_of(request.path)

    @staticmethod
    def _fault(status: int, retry_after: float) -> Response:
        code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
        return _error(
            status,
            code,
            "Please retry after the time given.",
            **{
                "Retry-After": f"{max(1, round(retry_after)):d}"
                if retry_after >= 1
                else f"{retry_after:g}"
            },
        )

    def __enter__(self) -> GraphServer:
        self.start()
        return self

    @property
    def authority_host(self) -> str:
        return self.url

    @property
    def graph_url(self) -> str:
        return f"{self.url}/v1.0"

    # -- routing ----------------------------------------------------------------------------

    def _routes_for_graph(self) -> None:
        users = r"/v1\.0/users/(?P<mailbox>[^/]+)"
        self.route("GET", r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration")(
            self._openid
        )
        self.route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token")(self._token)
        self.route("POST", r"/v1\.0/\$batch")(self._batch)
        self.route("GET", users + r"/contactFolders")(self._authed(self._contact_folders))
        self.route("GET", users + r"/contactFolders/(?P<folder>[^/]+)/contacts/delta")(
            self._authed(self._contact_delta)
        )
        self.route("POST", users + r"/contactFolders/(?P<folder>[^/]+)/contacts")(
            self._authed(self._create_contact)
        )
        self.route("GET", users + r"/mailFolders")(self._authed(self._mail_folders))
        self.route("GET", users + r"/mailFolders/(?P<folder>[^/]+)")(
            self._authed(self._mail_folder)
        )
        self.route("GET", users + r"/mailFolders/(?P<folder>[^/]+)/messages/delta")(
            self._authed(self._message_delta)
        )
        self.route("GET", users + r"/messages")(self._authed(self._messages))
        self.route("GET", users + r"/contacts/(?P<contact>[^/]+)")(self._authed(self._get_contact))
        self.route("PATCH", users + r"/contacts/(?P<contact>[^/]+)")(
            self._authed(self._patch_contact)
        )
        self.route("GET", users + r"/outlook/masterCategories")(self._authed(self._categories))
        self.route("POST", users + r"/outlook/masterCategories")(self._authed(self._add_category))

    def _authed(self, handler: Any) -> Any:
        def check(request: Request) -> Response:
            auth = request.header("authorization") or ""
            if not auth.startswith("Bearer ") or auth[7:] not in self.tenant.tokens:
                return _error(401, "InvalidAuthenticationToken", "Access token is empty.")
            mailbox = self.tenant.mailboxes.get(request.params["mailbox"].lower())
            if mailbox is None:
                return _error(404, "ErrorInvalidUser", "The requested user is invalid.")
            with self.tenant.lock:
                response: Response = handler(request, mailbox)
                return response

        return check

    # -- identity ---------------------------------------------------------------------------

    def _openid(self, request: Request) -> Response:
        tenant = request.params["tenant"]
        # MSAL insists on https in the documents it reads; the connector maps https to http
        # for 127.0.0.1 only (connectors.graph.client.LoopbackSession).
        base = self.url.replace("http://", "https://") + f"/{tenant}"
        return Response.json(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{base}/v2.0",
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            }
        )

    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in _form(request.body).items()}
        if request.params["tenant"] != TENANT_ID:
            return Response.json(
                {"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found."},
                400,
            )
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return Response.json(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
                401,
            )
        if form.get("grant_type") != "client_credentials":
            return Response.json({"error": "unsupported_grant_type"}, 400)
        token = secrets.token_urlsafe(24)
        self.tenant.tokens.add(token)
        return Response.json(
            {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "access_token": token}
        )

    # -- folders and delta ------------------------------------------------------------------

    def _contact_folders(self, request: Request, mailbox: Mailbox) -> Response:
        return Response.json(
            {
                "value": [
                    {"id": fid, "displayName": name, "parentFolderId": None}
                    for name, fid in mailbox.contact_folders.items()
                ]
            }
        )

    def _mail_folders(self, request: Request, mailbox: Mailbox) -> Response:
        shown = {"inbox": "Inbox", "sentitems": "Sent Items"}
        return Response.json(
            {
                "value": [
                    {"id": fid, "displayName": shown.get(name, name)}
                    for name, fid in mailbox.mail_folders.items()
                ]
            }
        )

    def _mail_folder(self, request: Request, mailbox: Mailbox) -> Response:
        name = request.params["folder"]
        folder = mailbox.mail_folders.get(name.lower(), name)
        if folder not in mailbox.mail_folders.values():
            return _error(404, "ErrorInvalidIdMalformed", "Id is malformed.")
        shown = next(k for k, v in mailbox.mail_folders.items() if v == folder)
        return Response.json({"id": folder, "displayName": shown})

    def _contact_delta(self, request: Request, mailbox: Mailbox) -> Response:
        folder = request.params["folder"]
        if folder not in mailbox.contact_folders.values():
            return _error(404, "ErrorItemNotFound", "The specified folder could not be found.")
        return self._delta(request, mailbox, mailbox.contacts, folder, "contact")

    def _message_delta(self, request: Request, mailbox: Mailbox) -> Response:
        folder = mailbox.mail_folders.get(
            request.params["folder"].lower(), request.params["folder"]
        )
        if folder not in mailbox.mail_folders.values():
            return _error(404, "ErrorItemNotFound", "The specified folder could not be found.")
        return self._delta(request, mailbox, mailbox.messages, folder, "message")

    def _delta(
        self,
        request: Request,
        mailbox: Mailbox,
        items: dict[str, Item],
        folder: str,
        kind: str,
    ) -> Response:
        token = request.arg("$deltatoken") or request.arg("$skiptoken")
        if token:
            state = _decode(token)
            if state is None or state.get("f") != folder:
                return _error(400, "BadRequest", "The delta token is not valid.")
            if state.get("g") != mailbox.generation:
                return _error(
                    410,
                    "syncStateNotFound",
                    "The sync state generation is not found. The delta token is expired and "
                    "data must be synchronized again.",
                )
        else:
            state = {
                "f": folder,
                "s": 0,
                "o": 0,
                "g": mailbox.generation,
                "sel": request.arg("$select") or "",
            }
        since, offset = int(state["s"]), int(state.get("o", 0))
        upto = int(state.get("u", mailbox.seq))
        initial = since == 0
        # The pages of one pass share the list (recomputed only when the mailbox changed).
        key = (mailbox.address, folder, since, upto, mailbox.seq)
        changed = self._passes.get(key)
        if changed is None:
            changed = sorted(
                (
                    item
                    for item in items.values()
                    if item.folder_id == folder
                    and since < item.seq <= upto
                    and not (initial and item.deleted)
                ),
                key=lambda item: (item.seq, item.id),
            )
            if len(self._passes) > 64:
                self._passes.clear()
            self._passes[key] = changed
        size = _page_size(request)
        page = changed[offset : offset + size]
        values = []
        for item in page:
            if item.deleted:
                values.append(
                    {
                        "@odata.type": f"#microsoft.graph.{kind}",
                        "id": item.id,
                        "@removed": {"reason": "deleted"},
                    }
                )
            else:
                values.append(
                    {"@odata.type": f"#microsoft.graph.{kind}"}
                    | _selected(item.body, state.get("sel"))
                )
        base = f"{self.url}{request.path}"
        payload: dict[str, Any] = {
            "@odata.context": f"{self.url}/v1.0/$metadata#Collection({kind})"
        }
        if offset + size < len(changed):
            following = state | {"u": upto, "o": offset + size}
            payload["@odata.nextLink"] = f"{base}?$skiptoken={_encode(following)}"
        else:
            done = {
                "f": folder,
                "s": upto,
                "o": 0,
                "g": mailbox.generation,
                "sel": state.get("sel"),
            }
            payload["@odata.deltaLink"] = f"{base}?$deltatoken={_encode(done)}"
        payload["value"] = values
        return Response.json(payload)

    def _messages(self, request: Request, mailbox: Mailbox) -> Response:
        wanted = request.arg("$filter") or ""
        prefix = "conversationId eq '"
        if not wanted.startswith(prefix) or not wanted.endswith("'"):
            return _error(400, "BadRequest", "Only $filter=conversationId eq '...' is served.")
        conversation = wanted[len(prefix) : -1].replace("''", "'")
        found = [
            _selected(item.body, request.arg("$select"))
            for item in mailbox.messages.values()
            if not item.deleted and item.body.get("conversationId") == conversation
        ]
        return Response.json({"value": found})

    # -- contacts ---------------------------------------------------------------------------

    def _find_contact(self, request: Request, mailbox: Mailbox) -> Item | None:
        item = mailbox.contacts.get(request.params["contact"])
        return None if item is None or item.deleted else item

    def _get_contact(self, request: Request, mailbox: Mailbox) -> Response:
        item = self._find_contact(request, mailbox)
        if item is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found.")
        body = _selected(item.body, request.arg("$select"))
        expand = request.arg("$expand") or ""
        if expand.startswith("singleValueExtendedProperties"):
            body["singleValueExtendedProperties"] = [
                {"id": key, "value": value} for key, value in item.extended.items()
            ]
        return Response.json(body)

    def _patch_contact(self, request: Request, mailbox: Mailbox) -> Response:
        item = self._find_contact(request, mailbox)
        if item is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found.")
        changes = request.json() or {}
        for prop in changes.pop("singleValueExtendedProperties", []):
            if not str(prop.get("id", "")).startswith("String {"):
                return _error(400, "ErrorInvalidProperty", "The extended property id is invalid.")
            item.extended[_canonical_property(prop["id"])] = str(prop.get("value", ""))
        read_only = {"id", "createdDateTime", "lastModifiedDateTime", "parentFolderId"}
        if read_only & changes.keys():
            return _error(400, "ErrorInvalidPropertyUpdateSentAttempt", "Read-only property.")
        item.body.update(changes)
        item.body["lastModifiedDateTime"] = _stamp(datetime.now(UTC))
        item.seq = mailbox.bump()
        self.tenant.patches += 1
        return Response.json(dict(item.body))

    def _create_contact(self, request: Request, mailbox: Mailbox) -> Response:
        folder = request.params["folder"]
        name = next((n for n, f in mailbox.contact_folders.items() if f == folder), None)
        if name is None:
            return _error(404, "ErrorItemNotFound", "The specified folder could not be found.")
        body = request.json() or {}
        extended = body.pop("singleValueExtendedProperties", [])
        contact_id = self.tenant.add_contact(mailbox, body, name)
        item = mailbox.contacts[contact_id]
        for prop in extended:
            item.extended[_canonical_property(prop["id"])] = str(prop.get("value", ""))
        self.tenant.created += 1
        return Response.json(dict(item.body), 201)

    def _categories(self, request: Request, mailbox: Mailbox) -> Response:
        return Response.json({"value": list(mailbox.categories)})

    def _add_category(self, request: Request, mailbox: Mailbox) -> Response:
        body = request.json() or {}
        name = str(body.get("displayName", ""))
        if any(c["displayName"].lower() == name.lower() for c in mailbox.categories):
            return _error(409, "ErrorDuplicateCategory", "A category with that name exists.")
        category = {"id": _new_id(self.tenant.rng)[:36], "displayName": name}
        category["color"] = str(body.get("color", "none"))
        mailbox.categories.append(category)
        return Response.json(category, 201)

    # -- $batch -----------------------------------------------------------------------------

    def _batch(self, request: Request) -> Response:
        body = request.json() or {}
        requests = body.get("requests") or []
        if len(requests) > MAX_BATCH:
            return _error(
                400, "BadRequest", f"Batch request has {len(requests)} requests; 20 is the limit."
            )
        responses = []
        for sub in requests:
            url = str(sub.get("url", ""))
            path, _, query = url.partition("?")
            path = "/v1.0" + (path if path.startswith("/") else "/" + path)
            inner = Request(
                method=str(sub.get("method", "GET")).upper(),
                path=path,
                query={k: [v] for k, v in _query(query).items()},
                headers={k.lower(): v for k, v in (sub.get("headers") or {}).items()}
                | {"authorization": request.header("authorization") or ""},
                body=json.dumps(sub["body"]).encode() if "body" in sub else b"",
            )
            key = _mailbox_of(inner.path)
            with self._lock:
                admitted = self.throttle.admit(key, time.monotonic())
            if not admitted:
                self.batch_throttled += 1
                answer = self._fault(429, self.throttle.retry_after)
            else:
                try:
                    found = self._find(inner)
                    if found is None:
                        answer = _error(404, "BadRequest", f"no route for {inner.method} {path}")
                    else:
                        _, handler, match = found
                        answer = handler(
                            Request(
                                inner.method,
                                inner.path,
                                inner.query,
                                inner.headers,
                                inner.body,
                                match.groupdict(),
                            )
                        )
                finally:
                    with self._lock:
                        self.throttle.release(key)
            responses.append(
                {
                    "id": sub.get("id"),
                    "status": answer.status,
                    "headers": {k: v for k, v in answer.headers.items()},
                    "body": json.loads(answer.body) if answer.body else None,
                }
            )
        return Response.json({"responses": responses})


def _canonical_property(prop_id: str) -> str:
    """Property set GUIDs compare case-insensitively; keep one spelling."""
    kind, guid, rest = prop_id.split(" ", 2)
    return f"{kind} {guid.upper()} {rest}"


def _form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode("utf-8"))


def _query(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            found[unquote(name)] = unquote(value)
    return found


DEMO_SECRET_FILE = "graph-client-secret.txt"  # noqa: S105 (a file name)


def demo_mail_settings(spec: BusinessSpec) -> str:
    """The YAML every demo Outlook source shares: mailboxes, support rule, pushed fields."""
    years = range(spec.start.year, spec.as_of.year + 1)
    colors = ("preset7", "preset4", "preset9", "preset3")
    categories = "".join(
        f'          "{year}": {{name: "CLM: Customer since {year}", color: '
        f"{colors[number % len(colors)]}}}\n"
        for number, year in enumerate(years)
    )
    conversations = "".join(
        f"      - {{mailbox: {mailbox}, folders: [inbox, sentitems]}}\n" for mailbox in MAILBOXES
    )
    return f"""\
    contacts:
      - {{mailbox: {SALES}, folders: [{CONTACT_FOLDER}]}}
      - {{mailbox: {OWNER}, folders: [{CONTACT_FOLDER}]}}
    conversations:
{conversations}\
    own_domains: [{OWN_DOMAIN}]
    support: {{mailboxes: [{SUPPORT}], cost: "12.50", cost_per_reply: "4.00"}}
    push:
      categories:
        field: customer_since
        values:
{categories}\
      fields:
        - {{metric: net_revenue, field: lifetime_revenue, format: ".2f"}}
        - {{metric: orders, field: orders}}
        - {{metric: last_purchase, field: last_purchase, format: "%Y-%m-%d"}}
        - {{metric: first_purchase, field: customer_since, format: "%Y"}}
"""


def start_demo_tenant(spec: BusinessSpec, folder: Path, servers: ExitStack) -> str:
    """``clm-sync demo``: the business's Microsoft 365 tenant on 127.0.0.1, and its source."""
    tenant, _ = tenant_from_business(spec)
    server = servers.enter_context(GraphServer(tenant))
    (folder / DEMO_SECRET_FILE).write_text(CLIENT_SECRET + "\n", encoding="utf-8")
    return f"""\
  - name: outlook
    type: graph
    tenant_id: {TENANT_ID}
    client_id: {CLIENT_ID}
    client_secret: ${{file:{DEMO_SECRET_FILE}}}
    authority_host: {server.authority_host}
    graph_url: {server.graph_url}
""" + demo_mail_settings(spec)
