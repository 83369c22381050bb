"""A minimal Exchange Web Services stand-in: the Graph tenant's mailboxes over SOAP.

Serves the operations the EWS connector (through ``exchangelib``) uses, in EWS's own XML
(Exchange 2016 schema; "EWS reference for Exchange", operations GetFolder, SyncFolderItems,
GetItem, FindItem, UpdateItem):

* ``GetFolder`` for distinguished folders (root, contacts, inbox, sentitems) and folder ids;
* ``SyncFolderItems`` with sync states that page (at most ``MaxChangesReturned``, capped at
  512 like Exchange) and can be expired (``ErrorInvalidSyncStateData``);
* ``GetItem`` and ``FindItem`` (restriction ``item:ConversationId`` is equal to ...);
* ``UpdateItem`` of contacts: body (the notes), categories, and named properties in
  PS_PUBLIC_STRINGS (``DistinguishedPropertySetId="PublicStrings"``).

The data is a :class:`sandbox.graph.GraphTenant`, so both back-ends are tested on the same
tenant and the same truth. Authentication is HTTP Basic with one service account that has
delegate access to every mailbox. Throttling (a :class:`sandbox.http.Throttle` per budget: the
service account, or the impersonated mailbox) answers with EWS's ``ErrorServerBusy`` SOAP fault
carrying ``BackOffMilliseconds``, as Exchange does.
"""

from __future__ import annotations

import base64
import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from sandbox.graph import (
    CONTACT_FOLDER,
    PS_PUBLIC_STRINGS,
    GraphTenant,
    Item,
    Mailbox,
    _canonical_property,
    demo_mail_settings,
    tenant_from_business,
)
from sandbox.http import Faults, Request, Response, SandboxServer, Throttle
from sandbox.synthetic import BusinessSpec

USERNAME = "svc-clm@northwind.test"
PASSWORD = "sandbox-password-not-for-production"  # noqa: S105 (the stand-in's own)
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
MNS = "http://schemas.microsoft.com/exchange/services/2006/messages"
TNS = "http://schemas.microsoft.com/exchange/services/2006/types"
ENS = "http://schemas.microsoft.com/exchange/services/2006/errors"
MAX_SYNC_CHANGES = 512
_NS = {"s": SOAP, "m": MNS, "t": TNS}


def _t(tag: str) -> str:
    return f"{{{TNS}}}{tag}"


def _m(tag: str) -> str:
    return f"{{{MNS}}}{tag}"


def _x(text: Any) -> str:
    """Text as XML; a carriage return escaped, or the reader's line-end handling drops it."""
    return escape(str(text), {"\r": "&#13;"})


def _envelope(body: str) -> Response:
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}"><s:Header>'
        f'<h:ServerVersionInfo xmlns:h="{TNS}" MajorVersion="15" MinorVersion="1" '
        'MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"/>'
        f'</s:Header><s:Body xmlns:m="{MNS}" xmlns:t="{TNS}">{body}</s:Body></s:Envelope>'
    )
    return Response(200, xml.encode("utf-8"), {"Content-Type": "text/xml; charset=utf-8"})


def _messages(operation: str, parts: list[str]) -> Response:
    return _envelope(
        f"<m:{operation}Response><m:ResponseMessages>{''.join(parts)}"
        f"</m:ResponseMessages></m:{operation}Response>"
    )


def _ok(operation: str, inner: str) -> str:
    return (
        f'<m:{operation}ResponseMessage ResponseClass="Success">'
        f"<m:ResponseCode>NoError</m:ResponseCode>{inner}</m:{operation}ResponseMessage>"
    )


def _error(operation: str, code: str, text: str) -> str:
    return (
        f'<m:{operation}ResponseMessage ResponseClass="Error"><m:MessageText>{_x(text)}'
        f"</m:MessageText><m:ResponseCode>{code}</m:ResponseCode>"
        f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:{operation}ResponseMessage>"
    )


def server_busy(back_off_ms: int) -> Response:
    """EWS's throttling answer: a SOAP fault with the back-off the client must honour."""
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}"><s:Body><s:Fault>'
        f'<faultcode xmlns:a="{TNS}">a:ErrorServerBusy</faultcode>'
        '<faultstring xml:lang="en-US">The server cannot service this request right now. '
        "Try again later.</faultstring><detail>"
        f'<e:ResponseCode xmlns:e="{ENS}">ErrorServerBusy</e:ResponseCode>'
        f'<e:Message xmlns:e="{ENS}">The server cannot service this request right now. '
        "Try again later.</e:Message>"
        f'<t:MessageXml xmlns:t="{TNS}"><t:Value Name="BackOffMilliseconds">{back_off_ms}'
        "</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>"
    )
    return Response(500, xml.encode("utf-8"), {"Content-Type": "text/xml; charset=utf-8"})


def _encode(state: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(state).encode()).decode()


def _decode(text: str) -> dict[str, Any] | None:
    try:
        state = json.loads(base64.b64decode(text.encode()))
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def _mailbox_xml(address: dict[str, Any] | None) -> str:
    email = (address or {}).get("emailAddress") or {}
    return (
        f"<t:Mailbox><t:Name>{_x(email.get('name') or email.get('address', ''))}</t:Name>"
        f"<t:EmailAddress>{_x(email.get('address', ''))}</t:EmailAddress>"
        "<t:RoutingType>SMTP</t:RoutingType><t:MailboxType>OneOff</t:MailboxType></t:Mailbox>"
    )


def _categories_xml(categories: list[str]) -> str:
    if not categories:
        return ""
    return (
        "<t:Categories>"
        + "".join(f"<t:String>{_x(c)}</t:String>" for c in categories)
        + ("</t:Categories>")
    )


def _contact_xml(item: Item) -> str:
    body = item.body
    parts = [
        f'<t:ItemId Id="{item.id}" ChangeKey="{item.seq}"/>',
        f'<t:ParentFolderId Id="{item.folder_id}"/>',
        "<t:ItemClass>IPM.Contact</t:ItemClass>",
        f"<t:Subject>{_x(body.get('displayName') or '')}</t:Subject>",
    ]
    if body.get("personalNotes"):
        parts.append(f'<t:Body BodyType="Text">{_x(body["personalNotes"])}</t:Body>')
    parts.append(f"<t:DateTimeCreated>{body.get('createdDateTime')}</t:DateTimeCreated>")
    parts.append(_categories_xml(body.get("categories") or []))
    parts.append(f"<t:LastModifiedTime>{body.get('lastModifiedDateTime')}</t:LastModifiedTime>")
    for key, value in item.extended.items():
        name = key.split(" Name ", 1)[1]
        parts.append(
            f'<t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" '
            f'PropertyName={quoteattr(name)} PropertyType="String"/>'
            f"<t:Value>{_x(value)}</t:Value></t:ExtendedProperty>"
        )
    for name, tag in (("displayName", "DisplayName"), ("givenName", "GivenName")):
        if body.get(name):
            parts.append(f"<t:{tag}>{_x(body[name])}</t:{tag}>")
    if body.get("companyName"):
        parts.append(f"<t:CompanyName>{_x(body['companyName'])}</t:CompanyName>")
    emails = [e.get("address") for e in body.get("emailAddresses") or [] if e.get("address")]
    if emails:
        parts.append(
            "<t:EmailAddresses>"
            + "".join(
                f'<t:Entry Key="EmailAddress{n + 1}">{_x(a)}</t:Entry>'
                for n, a in enumerate(emails[:3])
            )
            + "</t:EmailAddresses>"
        )
    address = body.get("businessAddress") or {}
    if any(address.values()):
        fields = (
            ("street", "Street"),
            ("city", "City"),
            ("state", "State"),
            ("countryOrRegion", "CountryOrRegion"),
            ("postalCode", "PostalCode"),
        )
        inner = "".join(f"<t:{t}>{_x(address[k])}</t:{t}>" for k, t in fields if address.get(k))
        parts.append(f'<t:PhysicalAddresses><t:Entry Key="Business">{inner}</t:Entry>')
        parts.append("</t:PhysicalAddresses>")
    phones = body.get("businessPhones") or []
    if phones:
        parts.append(f'<t:PhoneNumbers><t:Entry Key="BusinessPhone">{_x(phones[0])}</t:Entry>')
        parts.append("</t:PhoneNumbers>")
    if body.get("surname"):
        parts.append(f"<t:Surname>{_x(body['surname'])}</t:Surname>")
    return "<t:Contact>" + "".join(parts) + "</t:Contact>"


def _message_xml(item: Item) -> str:
    body = item.body
    recipients = "".join(_mailbox_xml(r) for r in body.get("toRecipients") or [])
    copies = "".join(_mailbox_xml(r) for r in body.get("ccRecipients") or [])
    return (
        "<t:Message>"
        f'<t:ItemId Id="{item.id}" ChangeKey="{item.seq}"/>'
        f'<t:ParentFolderId Id="{item.folder_id}"/>'
        "<t:ItemClass>IPM.Note</t:ItemClass>"
        f"<t:Subject>{_x(body.get('subject') or '')}</t:Subject>"
        f"<t:DateTimeReceived>{body.get('receivedDateTime')}</t:DateTimeReceived>"
        f"<t:DateTimeSent>{body.get('sentDateTime')}</t:DateTimeSent>"
        f"{_categories_xml(body.get('categories') or [])}"
        f'<t:ConversationId Id="{_x(body.get("conversationId", ""))}"/>'
        f"<t:Sender>{_mailbox_xml(body.get('sender'))}</t:Sender>"
        + (f"<t:ToRecipients>{recipients}</t:ToRecipients>" if recipients else "")
        + (f"<t:CcRecipients>{copies}</t:CcRecipients>" if copies else "")
        + f"<t:From>{_mailbox_xml(body.get('from'))}</t:From>"
        "</t:Message>"
    )


class EwsServer(SandboxServer):
    """The tenant over SOAP at ``/EWS/Exchange.asmx`` on 127.0.0.1."""

    def __init__(
        self,
        tenant: GraphTenant,
        *,
        throttle: Throttle | None = None,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(
            faults=faults,
            throttle=throttle or Throttle(max_requests=10_000, window=600, max_concurrent=10),
            throttle_key=self._throttle_key,
            fault_response=self._fault,
            no_delay=True,
        )
        self.tenant = tenant
        self.route("POST", r"/EWS/Exchange\.asmx")(self._soap)

    def __enter__(self) -> EwsServer:
        self.start()
        return self

    @property
    def endpoint(self) -> str:
        return f"{self.url}/EWS/Exchange.asmx"

    @staticmethod
    def _fault(status: int, retry_after: float) -> Response:
        if status == 429:
            return server_busy(max(1, round(retry_after * 1000)))
        return Response.text("Service Unavailable", 503)

    @staticmethod
    def _throttle_key(request: Request) -> str:
        """Exchange's budget: the impersonated mailbox, else the calling (service) account.

        Under delegate access every mailbox's requests are charged to the service account;
        under ApplicationImpersonation each to the mailbox named in ``ExchangeImpersonation``.
        """
        text = request.body.decode("utf-8", "replace")
        header = text.find("ExchangeImpersonation")
        start = text.find("PrimarySmtpAddress>", header) if header >= 0 else -1
        if start < 0:
            return USERNAME
        start += len("PrimarySmtpAddress>")
        return text[start : text.find("<", start)].strip().lower()

    # -- dispatch -----------------------------------------------------------------------------

    def _soap(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        if request.header("authorization") != expected:
            return Response(401, b"", {"WWW-Authenticate": 'Basic realm="ews"'})
        root = ET.fromstring(request.body)  # noqa: S314 (our own client, on 127.0.0.1)
        body = root.find("s:Body", _NS)
        if body is None or len(body) == 0:
            return Response.text("no SOAP body", 400)
        operation = body[0]
        name = operation.tag.split("}", 1)[1]
        handler = getattr(self, f"_op_{name}", None)
        if handler is None:
            return Response.text(f"operation {name} is not served", 400)
        mailbox = self._mailbox(operation)
        with self.tenant.lock:
            result: Response = handler(operation, mailbox)
            return result

    def _mailbox(self, operation: ET.Element) -> Mailbox | None:
        address = operation.find(".//t:Mailbox/t:EmailAddress", _NS)
        if address is not None and address.text:
            return self.tenant.mailboxes.get(address.text.lower())
        return None

    def _folder_of(self, mailbox: Mailbox, element: ET.Element) -> tuple[str, str] | None:
        """(folder id, kind) of a FolderId or DistinguishedFolderId element."""
        if element.tag == _t("DistinguishedFolderId"):
            name = element.get("Id", "")
            if name == "contacts":
                return mailbox.contact_folders[CONTACT_FOLDER], "contacts"
            if name in mailbox.mail_folders:
                return mailbox.mail_folders[name], "mail"
            if name in ("root", "msgfolderroot"):
                return f"{name}:{mailbox.address}", "root"
            return None
        folder_id = element.get("Id", "")
        if folder_id in mailbox.contact_folders.values():
            return folder_id, "contacts"
        if folder_id in mailbox.mail_folders.values():
            return folder_id, "mail"
        return None

    def _find_mailbox_of_item(self, item_id: str) -> tuple[Mailbox, Item] | None:
        for mailbox in self.tenant.mailboxes.values():
            item = mailbox.contacts.get(item_id) or mailbox.messages.get(item_id)
            if item is not None:
                return mailbox, item
        return None

    # -- operations ---------------------------------------------------------------------------

    def _op_GetFolder(self, operation: ET.Element, mailbox: Mailbox | None) -> Response:  # noqa: N802
        parts = []
        for element in operation.find("m:FolderIds", _NS) or []:
            found = self._folder_of(mailbox, element) if mailbox else None
            if found is None or mailbox is None:
                parts.append(_error("GetFolder", "ErrorFolderNotFound", "Folder not found."))
                continue
            folder_id, kind = found
            tag, folder_class, shown = {
                "contacts": ("ContactsFolder", "IPF.Contact", CONTACT_FOLDER),
                "mail": ("Folder", "IPF.Note", mailbox.folder_name(folder_id) or ""),
                "root": ("Folder", "", "Root"),
            }[kind]
            distinguished = (
                element.get("Id") if element.tag == _t("DistinguishedFolderId") else None
            )
            parts.append(
                _ok(
                    "GetFolder",
                    f'<m:Folders><t:{tag}><t:FolderId Id="{folder_id}" ChangeKey="1"/>'
                    + (f"<t:FolderClass>{folder_class}</t:FolderClass>" if folder_class else "")
                    + f"<t:DisplayName>{_x(shown)}</t:DisplayName>"
                    + (
                        f"<t:DistinguishedFolderId>{distinguished}</t:DistinguishedFolderId>"
                        if distinguished
                        else ""
                    )
                    + f"<t:TotalCount>0</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount>"
                    f"</t:{tag}></m:Folders>",
                )
            )
        return _messages("GetFolder", parts)

    def _op_SyncFolderItems(  # noqa: N802
        self, operation: ET.Element, mailbox: Mailbox | None
    ) -> Response:
        target = operation.find("m:SyncFolderId", _NS)
        found = (
            self._folder_of(mailbox, target[0])
            if mailbox is not None and target is not None
            else None
        )
        if found is None or mailbox is None:
            return _messages(
                "SyncFolderItems", [_error("SyncFolderItems", "ErrorFolderNotFound", "No folder.")]
            )
        folder_id, kind = found
        text = operation.findtext("m:SyncState", default="", namespaces=_NS)
        limit = int(operation.findtext("m:MaxChangesReturned", default="100", namespaces=_NS))
        limit = max(1, min(limit, MAX_SYNC_CHANGES))
        if text:
            state = _decode(text)
            if state is None or state.get("f") != folder_id or state.get("g") != mailbox.generation:
                # Exchange's error answer still carries the (empty) sync elements.
                refused = _error(
                    "SyncFolderItems",
                    "ErrorInvalidSyncStateData",
                    "Synchronization state data is corrupt or otherwise invalid.",
                ).replace(
                    "</m:SyncFolderItemsResponseMessage>",
                    "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"
                    "</m:SyncFolderItemsResponseMessage>",
                )
                return _messages("SyncFolderItems", [refused])
        else:
            state = {"f": folder_id, "s": 0, "g": mailbox.generation}
        since = int(state["s"])
        items = mailbox.contacts if kind == "contacts" else mailbox.messages
        changed = sorted(
            (
                i
                for i in items.values()
                if i.folder_id == folder_id and i.seq > since and not (since == 0 and i.deleted)
            ),
            key=lambda i: i.seq,
        )
        page = changed[:limit]
        render = _contact_xml if kind == "contacts" else _message_xml
        changes = []
        for item in page:
            if item.deleted:
                changes.append(
                    f'<t:Delete><t:ItemId Id="{item.id}" ChangeKey="{item.seq}"/></t:Delete>'
                )
            else:
                changes.append(f"<t:Create>{render(item)}</t:Create>")
        last = page[-1].seq if page else since
        new_state = _encode({"f": folder_id, "s": last, "g": mailbox.generation})
        done = "true" if len(changed) <= limit else "false"
        return _messages(
            "SyncFolderItems",
            [
                _ok(
                    "SyncFolderItems",
                    f"<m:SyncState>{new_state}</m:SyncState>"
                    f"<m:IncludesLastItemInRange>{done}</m:IncludesLastItemInRange>"
                    f"<m:Changes>{''.join(changes)}</m:Changes>",
                )
            ],
        )

    def _op_GetItem(self, operation: ET.Element, mailbox: Mailbox | None) -> Response:  # noqa: N802
        parts = []
        for element in operation.find("m:ItemIds", _NS) or []:
            found = self._find_mailbox_of_item(element.get("Id", ""))
            if found is None or found[1].deleted:
                parts.append(_error("GetItem", "ErrorItemNotFound", "The item was not found."))
                continue
            box, item = found
            render = _contact_xml if item.id in box.contacts else _message_xml
            parts.append(_ok("GetItem", f"<m:Items>{render(item)}</m:Items>"))
        return _messages("GetItem", parts)

    def _op_FindItem(self, operation: ET.Element, mailbox: Mailbox | None) -> Response:  # noqa: N802
        if mailbox is None:
            return _messages("FindItem", [_error("FindItem", "ErrorFolderNotFound", "No folder.")])
        folders = [
            found[0]
            for element in operation.find("m:ParentFolderIds", _NS) or []
            if (found := self._folder_of(mailbox, element)) is not None
        ]
        wanted = None
        restriction = operation.find("m:Restriction", _NS)
        if restriction is not None:
            uri = restriction.find(".//t:FieldURI", _NS)
            constant = restriction.find(".//t:Constant", _NS)
            if uri is None or uri.get("FieldURI") != "item:ConversationId" or constant is None:
                return _messages(
                    "FindItem",
                    [_error("FindItem", "ErrorUnsupportedQueryFilter", "Only ConversationId.")],
                )
            wanted = constant.get("Value")
        parts = []
        for folder in folders:  # one response message per parent folder, as Exchange does
            found_items = [
                item
                for item in mailbox.messages.values()
                if not item.deleted
                and item.folder_id == folder
                and (wanted is None or item.body.get("conversationId") == wanted)
            ]
            inner = "".join(_message_xml(item) for item in found_items)
            parts.append(
                _ok(
                    "FindItem",
                    f'<m:RootFolder IndexedPagingOffset="{len(found_items)}" '
                    f'TotalItemsInView="{len(found_items)}" IncludesLastItemInRange="true">'
                    f"<t:Items>{inner}</t:Items></m:RootFolder>",
                )
            )
        return _messages("FindItem", parts)

    def _op_CreateItem(self, operation: ET.Element, mailbox: Mailbox | None) -> Response:  # noqa: N802
        target = operation.find("m:SavedItemFolderId", _NS)
        folder_element = target[0] if target is not None and len(target) else None
        if mailbox is None and folder_element is not None:
            wanted = folder_element.get("Id", "")
            mailbox = next(
                (m for m in self.tenant.mailboxes.values() if wanted in m.contact_folders.values()),
                None,
            )
        found = (
            self._folder_of(mailbox, folder_element)
            if mailbox is not None and folder_element is not None
            else None
        )
        if mailbox is None or found is None or found[1] != "contacts":
            return _messages("CreateItem", [_error("CreateItem", "ErrorFolderNotFound", "No.")])
        folder_name = next(n for n, f in mailbox.contact_folders.items() if f == found[0])
        parts = []
        for element in operation.find("m:Items", _NS) or []:
            if element.tag != _t("Contact"):
                parts.append(_error("CreateItem", "ErrorInvalidItemForOperation", "Contacts."))
                continue
            contact_id = self.tenant.add_contact(mailbox, _contact_body(element), folder_name)
            item = mailbox.contacts[contact_id]
            for prop in element.findall("t:ExtendedProperty", _NS):
                uri = prop.find("t:ExtendedFieldURI", _NS)
                name = uri.get("PropertyName", "") if uri is not None else ""
                key = _canonical_property(f"String {PS_PUBLIC_STRINGS} Name {name}")
                item.extended[key] = prop.findtext("t:Value", "", _NS)
            self.tenant.created += 1
            parts.append(
                _ok(
                    "CreateItem",
                    f'<m:Items><t:Contact><t:ItemId Id="{item.id}" ChangeKey="{item.seq}"/>'
                    "</t:Contact></m:Items>",
                )
            )
        return _messages("CreateItem", parts)

    def _op_UpdateItem(self, operation: ET.Element, mailbox: Mailbox | None) -> Response:  # noqa: N802
        parts = []
        for change in operation.find("m:ItemChanges", _NS) or []:
            item_id = change.find("t:ItemId", _NS)
            found = self._find_mailbox_of_item(item_id.get("Id", "") if item_id is not None else "")
            if found is None or found[1].deleted or found[1].id not in found[0].contacts:
                parts.append(_error("UpdateItem", "ErrorItemNotFound", "The item was not found."))
                continue
            box, item = found
            for update in change.find("t:Updates", _NS) or []:
                self._apply(item, update)
            item.body["lastModifiedDateTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            item.seq = box.bump()
            self.tenant.patches += 1
            parts.append(
                _ok(
                    "UpdateItem",
                    f'<m:Items><t:Contact><t:ItemId Id="{item.id}" ChangeKey="{item.seq}"/>'
                    "</t:Contact></m:Items>"
                    "<m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>",
                )
            )
        return _messages("UpdateItem", parts)

    def _apply(self, item: Item, update: ET.Element) -> None:
        delete = update.tag == _t("DeleteItemField")
        uri = update.find("t:FieldURI", _NS)
        extended = update.find("t:ExtendedFieldURI", _NS)
        contact = update.find("t:Contact", _NS)
        if extended is not None:
            name = extended.get("PropertyName", "")
            key = _canonical_property(f"String {PS_PUBLIC_STRINGS} Name {name}")
            value = None if delete or contact is None else contact.findtext(".//t:Value", "", _NS)
            if value is None:
                item.extended.pop(key, None)
            else:
                item.extended[key] = value
            return
        field = uri.get("FieldURI") if uri is not None else ""
        if field == "item:Body":
            item.body["personalNotes"] = (
                "" if delete or contact is None else contact.findtext("t:Body", "", _NS)
            )
        elif field == "item:Categories":
            item.body["categories"] = (
                []
                if delete or contact is None
                else [s.text or "" for s in contact.findall("t:Categories/t:String", _NS)]
            )


def _contact_body(element: ET.Element) -> dict[str, Any]:
    """A t:Contact of a CreateItem request in the tenant's (Graph) shape."""

    def text(tag: str) -> str | None:
        return element.findtext(f"t:{tag}", None, _NS)

    phones = [e.text for e in element.findall("t:PhoneNumbers/t:Entry", _NS) if e.text]
    return {
        "displayName": text("DisplayName"),
        "givenName": text("GivenName"),
        "surname": text("Surname"),
        "companyName": text("CompanyName"),
        "emailAddresses": [
            {"address": e.text} for e in element.findall("t:EmailAddresses/t:Entry", _NS) if e.text
        ],
        "businessPhones": phones,
        "personalNotes": text("Body") or "",
        "categories": [c.text or "" for c in element.findall("t:Categories/t:String", _NS)],
    }


DEMO_PASSWORD_FILE = "ews-password.txt"  # noqa: S105 (a file name)


def start_demo_exchange(spec: BusinessSpec, folder: Path, servers: ExitStack) -> str:
    """``clm-sync demo``: the business's on-premises Exchange on 127.0.0.1, and its source.

    A tenant of its own (the same people, contacts and mail as the Graph one), so both
    back-ends write their figures without seeing each other's.
    """
    tenant, _ = tenant_from_business(spec)
    server = servers.enter_context(EwsServer(tenant))
    (folder / DEMO_PASSWORD_FILE).write_text(PASSWORD + "\n", encoding="utf-8")
    return f"""\
  - name: exchange
    type: ews
    ews_url: {server.endpoint}
    username: {USERNAME}
    password: ${{file:{DEMO_PASSWORD_FILE}}}
    auth_type: basic
""" + demo_mail_settings(spec)
