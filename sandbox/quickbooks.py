"""A QuickBooks Online stand-in: the synthetic business as one company, in the v3 JSON shapes.

What the connector uses, shaped as Intuit's API reference shows it:

* OAuth 2.0: an OpenID discovery document, the consent step (:meth:`QuickBooksStandIn.consent`
  plays the admin pressing Connect), and the token endpoint. Refresh tokens rotate on every
  refresh; the previous value keeps working until its successor is first used (so a client
  that crashed before storing a new value recovers), after that it fails with
  ``invalid_grant``. Each answer carries ``x_refresh_token_expires_in`` (the hard expiry).
* ``GET``/``POST /v3/company/{realm}/query``: ``SELECT * FROM Entity [WHERE ...] [ORDERBY Id]
  [STARTPOSITION n] [MAXRESULTS m]`` (m at most 1000, default 100) answering ``QueryResponse``.
  Filters: ``Active``, ``Job``, ``Id`` (``=``/``IN``) and ``MetaData.LastUpdatedTime``
  comparisons, joined by ``AND``. Customers are active-only unless ``Active`` is filtered.
* ``GET /v3/company/{realm}/cdc``: ``CDCResponse``; ``changedSince`` at most 30 days back; at
  most 1000 objects across the entities asked for, cut in ``Id`` order (not by time, so a
  client cannot lean on the order); deleted objects as ``{"status": "Deleted", "Id": ...}``.
* ``GET``/``POST /v3/company/{realm}/customer``: read, and sparse update checked against the
  ``SyncToken`` (fault 5010 when stale); ``CustomField`` values with
  ``include=enhancedAllCustomFields``; Notes longer than :data:`NOTES_LIMIT` refused.
* ``POST /v3/company/{realm}/batch``: up to 30 items, each answered with the object or a
  ``Fault``; at most ``batches_per_minute`` batch calls a minute (429 beyond).
* ``POST /graphql``: the App Foundations custom-field definitions (list and create).

The company itself (objects, edits, query filters) is :mod:`sandbox.quickbooks_company`; its
clock can be moved forward, so tests reach beyond the CDC look-back window.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from sandbox.http import Faults, Request, Response, SandboxServer, Throttle
from sandbox.quickbooks_company import QuickBooksCompany, stamp
from sandbox.synthetic import BusinessSpec

REALM_ID = "9341453050000000"
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 (the stand-in's own fixed test secret)
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
CUSTOM_FIELD_SCOPE = "app-foundations.custom-field-definitions"
ACCESS_TTL = 3600
REFRESH_LIFETIME = timedelta(days=5 * 365)
LOOKBACK = timedelta(days=30)
CDC_CAP = 1000
MAX_RESULTS = 1000
DEFAULT_RESULTS = 100
MAX_BATCH_ITEMS = 30
NOTES_LIMIT = 2000


def fault(
    status: int, kind: str, code: str, message: str, detail: str = "", **headers: str
) -> Response:
    """A ``Fault`` body as QuickBooks sends it."""
    body = {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail or message, "code": code}],
            "type": kind,
        },
        "time": stamp(datetime.now(UTC)),
    }
    return Response.json(body, status, **headers)


def _fault_response(status: int, retry_after: float) -> Response:
    wait = {"Retry-After": f"{retry_after:g}"}
    if status == 429:
        return fault(
            429,
            "ThrottleExceeded",
            "003001",
            "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            "The request limit was reached.",
            **wait,
        )
    return fault(status, "SERVICE", "10000", "An application error has occurred.", **wait)


@dataclass(slots=True)
class _Grant:
    """The refresh-token chain of one consent."""

    current: str
    previous: str | None
    expires_at: datetime
    scopes: frozenset[str]
    revoked: bool = False


class QuickBooksStandIn:
    """The stand-in server and its company; use as a context manager (starts and stops)."""

    def __init__(
        self,
        spec: BusinessSpec | None = None,
        *,
        faults: Faults | None = None,
        throttle: Throttle | None = None,
        batches_per_minute: int = 40,
        access_ttl: int = ACCESS_TTL,
        refresh_lifetime: timedelta = REFRESH_LIFETIME,
    ) -> None:
        self.company = QuickBooksCompany(spec or BusinessSpec())
        self.access_ttl = access_ttl
        self.refresh_lifetime = refresh_lifetime
        self.server = SandboxServer(
            faults=faults,
            throttle=throttle,
            throttle_key=_throttle_scope,
            fault_response=_fault_response,
        )
        self.batch_throttle = Throttle(max_requests=batches_per_minute, window=60.0)
        self.codes: dict[str, tuple[str, frozenset[str]]] = {}
        self.grants: list[_Grant] = []
        self.access_tokens: dict[str, tuple[datetime, frozenset[str]]] = {}
        self.refreshes = 0
        self.cut_cdc_answers = 0
        """CDC answers that left changes out (the 1000-object cap)."""
        self.invalid_customers: set[str] = set()
        """Customers whose updates are refused with a validation fault (a test switch)."""
        self.shapeless_answers = 0
        """The next this many query answers are valid JSON without a ``QueryResponse``."""
        self.edited_meanwhile: set[str] = set()
        """Customers a user edits just before our next update of them lands (once each)."""
        self._routes()

    # -- lifecycle and clock --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid_configuration"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def __enter__(self) -> QuickBooksStandIn:
        self.server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop()

    # -- OAuth ----------------------------------------------------------------------------------

    def consent(self, consent_url: str) -> str:
        """The admin grants access: the address the browser is sent back to."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(consent_url).query).items()}
        if query.get("client_id") != CLIENT_ID:
            raise ValueError(f"unknown client_id {query.get('client_id')!r}")
        code = secrets.token_urlsafe(16)
        with self.company.lock:
            scopes = frozenset(query.get("scope", "").split())
            self.codes[code] = (query["redirect_uri"], scopes)
        back = {"code": code, "state": query.get("state", ""), "realmId": REALM_ID}
        return f"{query['redirect_uri']}?{urlencode(back)}"

    def revoke(self) -> None:
        """The company disconnected the app: every grant and access token stops working."""
        with self.company.lock:
            for grant in self.grants:
                grant.revoked = True
            self.access_tokens.clear()

    def latest_refresh_token(self) -> str:
        return self.grants[-1].current

    def _issue(self, grant: _Grant) -> Response:
        access = secrets.token_urlsafe(24)
        now = self.company.now()
        self.access_tokens[access] = (now + timedelta(seconds=self.access_ttl), grant.scopes)
        return Response.json(
            {
                "token_type": "bearer",
                "access_token": access,
                "expires_in": self.access_ttl,
                "refresh_token": grant.current,
                "x_refresh_token_expires_in": int((grant.expires_at - now).total_seconds()),
            }
        )

    def _token(self, request: Request) -> Response:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.header("authorization") != f"Basic {expected}":
            return Response.json({"error": "invalid_client"}, 401)
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8")).items()}
        with self.company.lock:
            if form.get("grant_type") == "authorization_code":
                redirect, scopes = self.codes.pop(form.get("code", ""), ("", frozenset()))
                if not redirect or redirect != form.get("redirect_uri"):
                    return Response.json({"error": "invalid_grant"}, 400)
                expires = self.company.now() + self.refresh_lifetime
                grant = _Grant(secrets.token_urlsafe(24), None, expires, scopes)
                self.grants.append(grant)
                return self._issue(grant)
            if form.get("grant_type") != "refresh_token":
                return Response.json({"error": "unsupported_grant_type"}, 400)
            token = form.get("refresh_token", "")
            for grant in self.grants:
                if grant.revoked or grant.expires_at <= self.company.now():
                    continue
                if token == grant.current:
                    grant.previous, grant.current = grant.current, secrets.token_urlsafe(24)
                elif token == grant.previous:
                    grant.current = secrets.token_urlsafe(24)  # the unused successor is dropped
                else:
                    continue
                self.refreshes += 1
                return self._issue(grant)
        return Response.json({"error": "invalid_grant"}, 400)

    def _scopes(self, request: Request) -> frozenset[str] | None:
        """The scopes of the request's access token; None if it has none that is valid."""
        header = request.header("authorization") or ""
        with self.company.lock:
            found = self.access_tokens.get(header.removeprefix("Bearer "))
        return found[1] if found is not None and found[0] > self.company.now() else None

    # -- routes ---------------------------------------------------------------------------------

    def _routes(self) -> None:
        route = self.server.route
        company = r"/v3/company/(?P<realm>\d+)"

        @route("GET", r"/\.well-known/openid_configuration/?")
        def discovery(_request: Request) -> Response:
            return Response.json(
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/connect/oauth2",
                    "token_endpoint": f"{self.url}/oauth2/v1/tokens/bearer",
                    "revocation_endpoint": f"{self.url}/oauth2/v1/tokens/revoke",
                    "userinfo_endpoint": f"{self.url}/v1/openid_connect/userinfo",
                    "jwks_uri": f"{self.url}/op/v1/jwks",
                }
            )

        route("POST", r"/oauth2/v1/tokens/bearer")(self._token)

        def api(handler: Any) -> Any:
            def checked(request: Request) -> Response:
                scopes = self._scopes(request)
                if scopes is None:
                    return fault(
                        401,
                        "AUTHENTICATION",
                        "3200",
                        "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                        "Token expired or invalid",
                    )
                realm = request.params.get("realm", REALM_ID)
                needed = CUSTOM_FIELD_SCOPE if request.path == "/graphql" else ACCOUNTING_SCOPE
                if realm != REALM_ID or needed not in scopes:
                    return fault(403, "AUTHORIZATION", "3100", "ApplicationAuthorizationFailed")
                with self.company.lock:
                    return handler(request)  # type: ignore[no-any-return]

            return checked

        route("POST", f"{company}/query")(api(self._query))
        route("GET", f"{company}/query")(api(self._query))
        route("GET", f"{company}/cdc")(api(self._cdc))
        route("GET", f"{company}/customer/(?P<id>\\d+)")(api(self._read_customer))
        route("POST", f"{company}/customer")(api(self._post_customer))
        route("POST", f"{company}/batch")(api(self._batch))
        route("POST", r"/graphql")(api(self._graphql))

    def _visible(self, entity: str, obj: dict[str, Any], include_fields: bool) -> dict[str, Any]:
        shown = dict(obj)
        if entity == "Customer" and not include_fields:
            shown.pop("CustomField", None)
        return shown

    def _query(self, request: Request) -> Response:
        """GET with ``?query=`` as documented, or POST with the statement as the body."""
        statement = (request.arg("query") or request.body.decode("utf-8")).strip()
        parsed = _QUERY.fullmatch(statement)
        if parsed is None:
            return fault(400, "ValidationFault", "4000", "QueryParserError", statement)
        entity = parsed["entity"]
        if entity not in self.company.objects:
            return fault(400, "ValidationFault", "4001", f"Invalid entity {entity}")
        limit = int(parsed["max"] or DEFAULT_RESULTS)
        if limit > MAX_RESULTS:
            return fault(
                400, "ValidationFault", "4001", f"MAXRESULTS {limit} exceeds {MAX_RESULTS}"
            )
        try:
            matches = self.company.select(entity, parsed["where"] or "")
        except ValueError as error:
            return fault(400, "ValidationFault", "4000", "QueryParserError", str(error))
        start = int(parsed["start"] or 1)
        page = matches[start - 1 : start - 1 + limit]
        include = request.arg("include") == "enhancedAllCustomFields"
        if self.shapeless_answers > 0:
            self.shapeless_answers -= 1
            return Response.json({"time": stamp(self.company.now())})
        response: dict[str, Any] = {}
        if page:
            response = {
                entity: [self._visible(entity, obj, include) for obj in page],
                "startPosition": start,
                "maxResults": len(page),
            }
        return Response.json({"QueryResponse": response, "time": stamp(self.company.now())})

    def _cdc(self, request: Request) -> Response:
        entities = [name for name in (request.arg("entities") or "").split(",") if name]
        since_text = request.arg("changedSince") or ""
        try:
            since = datetime.fromisoformat(since_text)
        except ValueError:
            return fault(400, "ValidationFault", "4001", f"Invalid changedSince {since_text!r}")
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        if since < self.company.now() - LOOKBACK:
            return fault(
                400,
                "ValidationFault",
                "4001",
                "Invalid changedSince",
                "changedSince must be within the last 30 days",
            )
        room = CDC_CAP
        responses: list[dict[str, Any]] = []
        for entity in entities:
            if entity not in self.company.objects:
                return fault(400, "ValidationFault", "4001", f"Invalid entity {entity}")
            changed: list[tuple[int, dict[str, Any]]] = [
                (int(obj["Id"]), self._visible(entity, obj, False))
                for obj in self.company.objects[entity].values()
                if datetime.fromisoformat(obj["MetaData"]["LastUpdatedTime"]) >= since
            ]
            changed += [
                (
                    int(object_id),
                    {
                        "domain": "QBO",
                        "status": "Deleted",
                        "Id": object_id,
                        "MetaData": {"LastUpdatedTime": stamp(when)},
                    },
                )
                for object_id, when in self.company.deleted[entity].items()
                if when >= since
            ]
            changed.sort(key=lambda pair: pair[0])
            kept = [obj for _, obj in changed[:room]]
            if len(kept) < len(changed):
                self.cut_cdc_answers += 1
            room -= len(kept)
            if kept:
                responses.append({entity: kept, "startPosition": 1, "maxResults": len(kept)})
        return Response.json(
            {"CDCResponse": [{"QueryResponse": responses}], "time": stamp(self.company.now())}
        )

    def _read_customer(self, request: Request) -> Response:
        customer = self.company.objects["Customer"].get(request.params["id"])
        if customer is None:
            return fault(400, "ValidationFault", "610", "Object Not Found")
        include = request.arg("include") == "enhancedAllCustomFields"
        shown = self._visible("Customer", customer, include)
        return Response.json({"Customer": shown, "time": stamp(self.company.now())})

    def _update_customer(self, body: dict[str, Any], include: bool) -> dict[str, Any]:
        """A sparse update: the object, or the ``Fault`` object of why it was refused."""
        customer = self.company.objects["Customer"].get(str(body.get("Id")))
        if customer is None:
            return _fault_object("ValidationFault", "610", "Object Not Found")
        if customer["Id"] in self.edited_meanwhile:
            self.edited_meanwhile.discard(customer["Id"])
            self.company.touch(customer)
        if str(body.get("SyncToken")) != customer["SyncToken"]:
            return _fault_object(
                "ValidationFault",
                "5010",
                "Stale Object Error",
                "You and another user were working on the same thing at the same time.",
            )
        if customer["Id"] in self.invalid_customers:
            return _fault_object(
                "ValidationFault", "6240", "Duplicate Name Exists Error", "The name is in use."
            )
        if len(str(body.get("Notes", ""))) > NOTES_LIMIT:
            return _fault_object(
                "ValidationFault",
                "2050",
                "String length is either shorter or longer than supported",
                "Notes",
            )
        values = {str(v.get("DefinitionId")): v for v in body.get("CustomField") or []}
        unknown = [key for key in values if key not in self.company.custom_fields]
        if unknown:
            return _fault_object("ValidationFault", "2010", "Invalid custom field", unknown[0])
        if body.get("sparse") is not True:
            return _fault_object("ValidationFault", "2020", "Only sparse updates are served here")
        changes = {k: v for k, v in body.items() if k not in {"Id", "SyncToken", "sparse"}}
        if values:
            current = {str(v["DefinitionId"]): v for v in customer.get("CustomField") or []}
            for key, value in values.items():
                definition = self.company.custom_fields[key]
                current[key] = {
                    "DefinitionId": key,
                    "Name": definition["label"],
                    "Type": "StringType",
                    "StringValue": str(value.get("StringValue", "")),
                }
            changes["CustomField"] = list(current.values())
        customer.update(changes)
        self.company.touch(customer)
        return {"Customer": self._visible("Customer", customer, include)}

    def _post_customer(self, request: Request) -> Response:
        answer = self._update_customer(request.json() or {}, request.arg("include") is not None)
        if "Fault" in answer:
            return Response.json({**answer, "time": stamp(self.company.now())}, 400)
        return Response.json({**answer, "time": stamp(self.company.now())})

    def _batch(self, request: Request) -> Response:
        if not self.batch_throttle.admit(REALM_ID, time.monotonic()):
            return _fault_response(429, self.batch_throttle.retry_after)
        try:
            items = (request.json() or {}).get("BatchItemRequest") or []
            if len(items) > MAX_BATCH_ITEMS:
                return fault(
                    400, "ValidationFault", "4001", f"at most {MAX_BATCH_ITEMS} batch items"
                )
            include = request.arg("include") is not None
            answers = []
            for item in items:
                if item.get("operation") != "update" or "Customer" not in item:
                    answer = _fault_object("ValidationFault", "4001", "Unsupported batch item")
                else:
                    answer = self._update_customer(item["Customer"], include)
                answers.append({"bId": item.get("bId"), **answer})
            return Response.json({"BatchItemResponse": answers, "time": stamp(self.company.now())})
        finally:
            self.batch_throttle.release(REALM_ID)

    def _graphql(self, request: Request) -> Response:
        body = request.json() or {}
        query = str(body.get("query", ""))
        if "appFoundationsCreateCustomFieldDefinition" in query:
            given = (body.get("variables") or {}).get("input") or {}
            node = self.company.define_custom_field(str(given.get("label", "")))
            node["associations"] = given.get("associations") or node["associations"]
            return Response.json({"data": {"appFoundationsCreateCustomFieldDefinition": node}})
        if "appFoundationsCustomFieldDefinitions" in query:
            edges = [{"node": node} for node in self.company.custom_fields.values()]
            return Response.json(
                {"data": {"appFoundationsCustomFieldDefinitions": {"edges": edges}}}
            )
        return Response.json({"errors": [{"message": "unknown operation"}]})


def _throttle_scope(request: Request) -> str:
    """The company's API calls share one allowance; OAuth calls are not counted with them."""
    return "company" if request.path.startswith(("/v3/", "/graphql")) else "oauth"


def _fault_object(kind: str, code: str, message: str, detail: str = "") -> dict[str, Any]:
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail or message, "code": code}],
            "type": kind,
        }
    }


_QUERY = re.compile(
    r"SELECT \* FROM (?P<entity>\w+)(?: WHERE (?P<where>.+?))?(?: ORDERBY Id)?"
    r"(?: STARTPOSITION (?P<start>\d+))?(?: MAXRESULTS (?P<max>\d+))?",
    re.IGNORECASE,
)
