"""The YAML schema as pydantic models.

Every model forbids unknown keys so a typo is an error, not a silently ignored setting. Later
source types (QuickBooks, Graph, EWS, Shopify, WooCommerce) join :data:`SourceConfig` as
further members of the union discriminated by ``type``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

DEFAULT_INTERVAL = "1h"
DEFAULT_PAGE_SIZE = 1000
DEFAULT_PUSH_BATCH_SIZE = 100
DEFAULT_HOME_CURRENCY = "USD"
DEFAULT_PHONE_REGION = "US"
DEFAULT_MISFIRE_GRACE = "10m"

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

# Error type of the duplicate-name check; its context carries the index of the second source
# so the loader can point at that source's `name` rather than at the top of the file.
DUPLICATE_SOURCE_NAME = "duplicate_source_name"


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"`` to a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit, e.g. 30s, 15m, 1h or 1d"
        )
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def check_source_name(value: str) -> str:
    """A source name becomes the ledger's ``system``: short, lower-case, no spaces."""
    if not _SOURCE_NAME.match(value):
        raise ValueError(
            "use lower-case letters, digits, '-' or '_', starting with a letter (max 40)"
        )
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(StrictModel):
    """When a source is pulled: ``every: 15m`` or a crontab line ``cron: "0 */2 * * *"``."""

    every: str | None = Field(default=None, description="Interval such as 30s, 15m, 1h or 1d.")
    cron: str | None = Field(
        default=None, description="Five-field crontab expression, evaluated in `timezone`."
    )
    timezone: str = Field(default="UTC", description="Time zone for `cron`, e.g. Europe/Berlin.")

    @field_validator("every")
    @classmethod
    def _check_every(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) < timedelta(seconds=10):
            raise ValueError("an interval under 10s would hammer the source; use 10s or more")
        return value

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(
                f"{value!r} is not a five-field crontab line (minute hour day month weekday)"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if self.every and self.cron:
            raise ValueError("give either `every` or `cron`, not both")
        return self

    @property
    def interval(self) -> timedelta | None:
        if self.cron:
            return None
        return parse_duration(self.every or DEFAULT_INTERVAL)


class PushField(StrictModel):
    """One metric written to one remote field."""

    metric: str = Field(description="Metric name, e.g. net_revenue (see docs/metrics.md).")
    field: str = Field(description="Name of the custom field in the remote system.")
    format: str = Field(
        default="",
        description=(
            "Python format spec applied to the value: '.2f' for money, '%Y-%m-%d' for dates, "
            "'' for the plain value."
        ),
    )


class PushConfig(StrictModel):
    """What a source's writer receives; only changed values are sent."""

    enabled: bool = Field(default=True, description="Set false to pull only.")
    batch_size: int = Field(
        default=DEFAULT_PUSH_BATCH_SIZE, ge=1, le=1000, description="Updates per write call."
    )
    fields: list[PushField] = Field(default_factory=list, description="Metric-to-field mapping.")


class CsvColumns(StrictModel):
    """Renames: the default column name on the left, the name in your file on the right."""

    customers: dict[str, str] = Field(default_factory=dict)
    transactions: dict[str, str] = Field(default_factory=dict)
    interactions: dict[str, str] = Field(default_factory=dict)
    referrals: dict[str, str] = Field(default_factory=dict)
    marketing_spend: dict[str, str] = Field(default_factory=dict)


class CsvSource(StrictModel):
    """A folder of CSV exports (customers.csv, transactions.csv and optional files)."""

    type: Literal["csv"]
    name: str = Field(description="Unique short name; it becomes the `system` in the ledger.")
    path: Path = Field(description="Folder holding customers.csv, transactions.csv, ...")
    schedule: Schedule = Field(default_factory=Schedule)
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=100_000)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = Field(default="utf-8", description="Text encoding of the files.")
    date_format: str | None = Field(
        default=None,
        description="strptime format for dates if not ISO 8601, e.g. '%d/%m/%Y'.",
    )
    columns: CsvColumns = Field(default_factory=CsvColumns)
    push: PushConfig = Field(
        default_factory=lambda: PushConfig(enabled=False),
        description="Writes changed metric values to clm-sync-updates.csv in the folder.",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_source_name(value)


# QuickBooks Online's published throttle per company (realm): 500 requests a minute, 10 at
# once, and 40 batch calls a minute ("API call limits and throttles", Intuit developer docs).
QUICKBOOKS_REQUESTS_PER_MINUTE = 500
QUICKBOOKS_CONCURRENT = 10
QUICKBOOKS_BATCHES_PER_MINUTE = 40
# Intuit's documents give 10 to 30 items per batch request; 10 is safe everywhere.
QUICKBOOKS_BATCH_ITEMS = 10
QUICKBOOKS_MAX_BATCH_ITEMS = 30
QUICKBOOKS_MINOR_VERSION = 75
QUICKBOOKS_API_URL = "https://quickbooks.api.intuit.com"
QUICKBOOKS_GRAPHQL_URL = "https://qb.api.intuit.com/graphql"
QUICKBOOKS_DISCOVERY_URL = "https://developer.intuit.com/.well-known/openid_configuration/"
QUICKBOOKS_REDIRECT_URI = "https://developer.intuit.com/v2/OAuth2Playground/RedirectUrl"


class QuickBooksThrottle(StrictModel):
    """The client-side limiter; the defaults are Intuit's published limits per company."""

    requests_per_minute: int = Field(default=QUICKBOOKS_REQUESTS_PER_MINUTE, ge=1, le=10_000)
    concurrent: int = Field(default=QUICKBOOKS_CONCURRENT, ge=1, le=100)
    batches_per_minute: int = Field(default=QUICKBOOKS_BATCHES_PER_MINUTE, ge=1, le=1_000)


class QuickBooksPush(PushConfig):
    """Push settings of a QuickBooks source: ``batch_size`` is customers per batch call."""

    batch_size: int = Field(
        default=QUICKBOOKS_BATCH_ITEMS,
        ge=1,
        le=QUICKBOOKS_MAX_BATCH_ITEMS,
        description="Customers updated per batch request (Intuit allows 10 to 30).",
    )
    target: Literal["custom_fields", "notes"] = Field(
        default="custom_fields",
        description=(
            "custom_fields: QuickBooks custom fields on Customer (run `clm-sync setup` first); "
            "notes: a marked block in the customer's Notes, for editions without them."
        ),
    )


class QuickBooksSource(StrictModel):
    """One QuickBooks Online company, connected with OAuth 2.0 (`clm-sync auth NAME`)."""

    type: Literal["quickbooks"]
    name: str = Field(description="Unique short name; it becomes the `system` in the ledger.")
    realm_id: str = Field(
        pattern=r"^[0-9]{1,30}$", description="The company id (realmId) QuickBooks shows."
    )
    client_id: str = Field(description="The app's Client ID; write ${ENV_VAR}.", repr=False)
    client_secret: str = Field(description="The app's Client Secret; write ${ENV_VAR}.", repr=False)
    redirect_uri: str = Field(
        default=QUICKBOOKS_REDIRECT_URI,
        description="A redirect URI registered with the app; `auth` asks for the URL it shows.",
    )
    api_url: str = Field(default=QUICKBOOKS_API_URL, description="Accounting API base URL.")
    graphql_url: str = Field(
        default=QUICKBOOKS_GRAPHQL_URL, description="App Foundations GraphQL endpoint."
    )
    discovery_url: str = Field(
        default=QUICKBOOKS_DISCOVERY_URL, description="Intuit's OpenID discovery document."
    )
    minor_version: int = Field(default=QUICKBOOKS_MINOR_VERSION, ge=QUICKBOOKS_MINOR_VERSION)
    schedule: Schedule = Field(default_factory=Schedule)
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=1000)
    marketing_accounts: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Expense account (name, full name or id) to marketing channel; Purchase and Bill "
            "lines booked to these accounts are marketing spend."
        ),
    )
    roll_up_sub_customers: bool = Field(
        default=False,
        description="Count sub-customers' and jobs' sales for their top-level customer.",
    )
    throttle: QuickBooksThrottle = Field(default_factory=QuickBooksThrottle)
    push: QuickBooksPush = Field(default_factory=QuickBooksPush)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_source_name(value)


_MAILBOX = r"^[^@\s]+@[^@\s]+$"
_CATEGORY_COLOR = r"^(preset([0-9]|1[0-9]|2[0-4])|none)$"

GRAPH_AUTHORITY_HOST = "https://login.microsoftonline.com"
GRAPH_URL = "https://graph.microsoft.com/v1.0"
# Outlook resources in Graph: 4 concurrent requests and 10,000 requests per 10 minutes per app
# and mailbox ("Microsoft Graph service-specific throttling limits", Outlook service limits).
GRAPH_MAX_CONCURRENT = 4
GRAPH_MAX_REQUESTS = 10_000
GRAPH_WINDOW = "10m"
GRAPH_PAGE_SIZE = 100
GRAPH_BATCH_SIZE = 20
"""Graph's JSON $batch takes at most 20 requests."""


class MailboxFolders(StrictModel):
    """Folders of one mailbox: display names, or well-known names such as ``inbox``."""

    mailbox: str = Field(pattern=_MAILBOX, description="The mailbox's SMTP address.")
    folders: list[str] = Field(min_length=1, description="Folder names in that mailbox.")


class OutlookCategory(StrictModel):
    """An Outlook category: its name in the master category list and its colour preset."""

    name: str = Field(min_length=1, max_length=255)
    color: str = Field(
        default="preset0",
        pattern=_CATEGORY_COLOR,
        description="preset0 (red) ... preset24, or none; Outlook's colour presets.",
    )


class StageCategories(StrictModel):
    """One pushed field's value picks the contact's clm-sync category."""

    enabled: bool = Field(default=True, description="Set false to leave categories alone.")
    field: str = Field(description="A `field` of push.fields whose value picks the category.")
    values: dict[str, OutlookCategory] = Field(
        default_factory=dict, description="Field value -> category name and colour."
    )


class CreateContacts(StrictModel):
    """Where contacts are created for ledger customers that have none in Outlook."""

    mailbox: str = Field(pattern=_MAILBOX, description="The mailbox that gets the contacts.")
    folder: str = Field(default="Contacts", description="Its contact folder (display name).")


class OutlookPushConfig(PushConfig):
    """What goes onto Outlook contacts: named properties, a category, a notes block."""

    batch_size: int = Field(
        default=GRAPH_BATCH_SIZE,
        ge=1,
        le=GRAPH_BATCH_SIZE,
        description="Contacts written per batch request (Graph's $batch takes at most 20).",
    )
    properties: bool = Field(
        default=True, description="Write each field as a named property in PS_PUBLIC_STRINGS."
    )
    notes: bool = Field(default=True, description="Keep a clm-sync block in the contact notes.")
    categories: StageCategories | None = Field(
        default=None, description="A category per value of one field (lifecycle stage)."
    )
    create_contacts: CreateContacts | None = Field(
        default=None,
        description="Create contacts for customers with an e-mail but no contact; empty: off.",
    )


class SupportRule(StrictModel):
    """Which conversations are support incidents, and when an incident is closed."""

    mailboxes: list[str] = Field(
        default_factory=list, description="Every conversation in these mailboxes is support."
    )
    folders: list[str] = Field(
        default_factory=list, description="Every conversation in these folders is support."
    )
    category: str | None = Field(
        default=None, description="A message category that makes its conversation support."
    )
    quiet_days: int = Field(
        default=3,
        ge=0,
        le=365,
        description="Closed when our reply is the last message and the customer stayed quiet "
        "this many days.",
    )
    resolved_category: str | None = Field(
        default="Resolved", description="A message category that closes the incident at once."
    )
    cost: Decimal = Field(default=Decimal(0), ge=0, description="Cost of one incident.")
    cost_per_reply: Decimal = Field(
        default=Decimal(0), ge=0, description="Added cost for each reply of ours."
    )


class OutlookLimits(StrictModel):
    """The client-side limiter per throttling budget; defaults are Graph's published limits.

    Graph budgets per app and mailbox. Exchange Server budgets per account: the service
    account's one budget for every mailbox under delegate access, or each mailbox's own under
    ApplicationImpersonation; Graph's figures stay well inside its default policy
    (EWSMaxConcurrency 27).
    """

    max_concurrent: int = Field(default=GRAPH_MAX_CONCURRENT, ge=1, le=64)
    max_requests: int = Field(default=GRAPH_MAX_REQUESTS, ge=1)
    window: str = Field(default=GRAPH_WINDOW, description="The window max_requests counts in.")

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        parse_duration(value)
        return value


class OutlookSource(StrictModel):
    """What the two Outlook back-ends share: mailboxes, folders, support rule, push."""

    name: str = Field(description="Unique short name; it becomes the `system` in the ledger.")
    schedule: Schedule = Field(default_factory=Schedule)
    contacts: list[MailboxFolders] = Field(
        default_factory=list, description="Contact folders read as customers."
    )
    conversations: list[MailboxFolders] = Field(
        default_factory=list, description="Mail folders read as conversations with customers."
    )
    own_domains: list[str] = Field(
        min_length=1, description="The business's own e-mail domains: never customers."
    )
    body_preview: bool = Field(
        default=False, description="Keep Outlook's short body preview (complaint signals)."
    )
    support: SupportRule = Field(default_factory=SupportRule)
    page_size: int = Field(default=GRAPH_PAGE_SIZE, ge=1, le=1000)
    limits: OutlookLimits = Field(default_factory=OutlookLimits)
    push: OutlookPushConfig = Field(default_factory=OutlookPushConfig)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_source_name(value)

    @field_validator("own_domains")
    @classmethod
    def _lower_domains(cls, value: list[str]) -> list[str]:
        return [domain.strip().lower().lstrip("@") for domain in value]

    @model_validator(mode="after")
    def _category_field_is_pushed(self) -> OutlookSource:
        rule = self.push.categories
        if rule is not None and rule.field not in {f.field for f in self.push.fields}:
            raise ValueError(
                f"push.categories.field {rule.field!r} is not a `field` of push.fields; "
                "the category follows one of the pushed values"
            )
        return self


class GraphSource(OutlookSource):
    """Microsoft 365 mailboxes through Microsoft Graph (app-only, client credentials)."""

    type: Literal["graph"]
    tenant_id: str = Field(min_length=1, description="Directory (tenant) id of the app.")
    client_id: str = Field(min_length=1, description="Application (client) id.")
    client_secret: str = Field(min_length=1, repr=False, description="Client secret value.")
    authority_host: str = Field(default=GRAPH_AUTHORITY_HOST)
    graph_url: str = Field(default=GRAPH_URL)


EWS_MAX_SYNC_CHANGES = 512
"""SyncFolderItems returns at most 512 changes a call."""


class EwsSource(OutlookSource):
    """On-premises Exchange Server mailboxes through EWS (a service account with access)."""

    type: Literal["ews"]
    ews_url: str = Field(description="https://mail.example.com/EWS/Exchange.asmx")
    username: str = Field(min_length=1, description="The service account (DOMAIN\\user or UPN).")
    password: str = Field(min_length=1, repr=False, description="Its password.")
    auth_type: Literal["ntlm", "basic"] = Field(
        default="ntlm", description="How the account signs in to EWS."
    )
    impersonation: bool = Field(
        default=False,
        description="Use the ApplicationImpersonation role instead of delegate access.",
    )
    max_connections: int = Field(
        default=4, ge=1, le=27, description="Concurrent EWS connections (throttling)."
    )
    max_wait: str = Field(
        default="5m", description="How long to keep retrying when Exchange says it is busy."
    )

    @field_validator("max_wait")
    @classmethod
    def _check_wait(cls, value: str) -> str:
        parse_duration(value)
        return value


class ReferralRules(StrictModel):
    """How a referral shows in a shop; every rule that is set is applied to every order.

    A *value* found in an order attribute, the note or the landing page is a referral code
    (resolved through ``codes`` or ``code_pattern``) or the referrer's customer id.
    """

    code_pattern: str | None = Field(
        default=None,
        description=(
            "Regular expression a referral discount code matches; its first group is the "
            "referrer's customer id, e.g. '^REF-(\\d+)$'."
        ),
    )
    codes: dict[str, str] = Field(
        default_factory=dict,
        description="Referral codes and the customer id each belongs to (case-insensitive).",
    )
    order_attribute: str | None = Field(
        default=None,
        description=(
            "Order attribute (Shopify custom attribute, WooCommerce order meta key) holding "
            "a referral code or the referrer's customer id."
        ),
    )
    note_pattern: str | None = Field(
        default=None,
        description="Regular expression on the order note; its first group is a code or id.",
    )
    landing_parameter: str | None = Field(
        default=None,
        description="Query parameter of the landing-page URL holding a code or customer id.",
    )

    @field_validator("code_pattern", "note_pattern")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        if compiled.groups < 1:
            raise ValueError("the pattern needs a group ( ... ) around the id or code")
        return value

    @property
    def any(self) -> bool:
        return bool(
            self.code_pattern
            or self.codes
            or self.order_attribute
            or self.note_pattern
            or self.landing_parameter
        )


SHOPIFY_API_VERSION = "2025-10"
"""The Admin API version the Shopify connector is written and tested against."""
DEFAULT_METAFIELD_NAMESPACE = "clm_sync"


class ShopifySource(StrictModel):
    """A Shopify store through the GraphQL Admin API (an admin API access token)."""

    type: Literal["shopify"]
    name: str = Field(description="Unique short name; it becomes the `system` in the ledger.")
    store_url: str = Field(description="https://STORE.myshopify.com")
    access_token: str = Field(
        repr=False, description="Admin API access token (shpat_...), from ${ENV} or ${file:}."
    )
    api_version: str = Field(
        default=SHOPIFY_API_VERSION,
        pattern=r"^\d{4}-(01|04|07|10)$",
        description="Admin API version, e.g. 2025-10 (the one clm-sync is tested against).",
    )
    schedule: Schedule = Field(default_factory=Schedule)
    page_size: int = Field(default=250, ge=1, le=250, description="Records per query page.")
    bulk_backfill: bool = Field(
        default=True, description="Read the first full order history with a bulk operation."
    )
    customer_deletions_every: str = Field(
        default="1d",
        description=(
            "How often to read every customer id to find customers deleted in Shopify, which "
            "keeps no record of them (e.g. 1d; 0s: every cycle)."
        ),
    )
    referrals: ReferralRules = Field(default_factory=ReferralRules)
    metafield_namespace: str = Field(
        default=DEFAULT_METAFIELD_NAMESPACE,
        pattern=r"^[a-z0-9_-]{3,255}$",
        description="Namespace of the customer metafields clm-sync writes.",
    )
    webhook_secret: str | None = Field(
        default=None,
        repr=False,
        description="The app's client secret, to verify webhooks (X-Shopify-Hmac-Sha256).",
    )
    push: PushConfig = Field(default_factory=PushConfig)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_source_name(value)

    @field_validator("customer_deletions_every")
    @classmethod
    def _check_deletions_every(cls, value: str) -> str:
        parse_duration(value)
        return value


class WooCommerceSource(StrictModel):
    """A WooCommerce store through its REST API v3 (consumer key and secret)."""

    type: Literal["woocommerce"]
    name: str = Field(description="Unique short name; it becomes the `system` in the ledger.")
    url: str = Field(description="The site's address, e.g. https://shop.example.com")
    consumer_key: str = Field(repr=False, description="REST API key (ck_...), from ${ENV}.")
    consumer_secret: str = Field(repr=False, description="REST API secret (cs_...), from ${ENV}.")
    query_string_auth: bool = Field(
        default=False,
        description=(
            "Send the key and secret as query parameters from the start (for servers that "
            "strip the Authorization header; clm-sync also switches by itself on a 401)."
        ),
    )
    schedule: Schedule = Field(default_factory=Schedule)
    customers_every: str | None = Field(
        default=None,
        description=(
            "Re-read all customers at most this often (e.g. 1d); empty: every cycle. The "
            "customers endpoint has no modified filter, so each read is a full pass."
        ),
    )
    page_size: int = Field(default=100, ge=1, le=100, description="Records per page.")
    referrals: ReferralRules = Field(default_factory=ReferralRules)
    webhook_secret: str | None = Field(
        default=None, repr=False, description="Webhook secret, to verify X-WC-Webhook-Signature."
    )
    push: PushConfig = Field(default_factory=PushConfig)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_source_name(value)

    @field_validator("customers_every")
    @classmethod
    def _check_every(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


# The union is discriminated by `type` (pydantic: an unknown `type` is a `union_tag_invalid`
# error listing the known tags).
SourceConfig = Annotated[
    CsvSource | QuickBooksSource | GraphSource | EwsSource | ShopifySource | WooCommerceSource,
    Field(discriminator="type"),
]


class LoggingConfig(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: Path | None = Field(default=None, description="Log file; standard error if unset.")


class WebhookListener(StrictModel):
    """Where `clm-sync run` listens for shop webhooks (POST /webhooks/SOURCE-NAME)."""

    port: int | None = Field(
        default=None, ge=1, le=65535, description="TCP port; empty: no listener."
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; put a TLS reverse proxy in front of it.",
    )


class DaemonConfig(StrictModel):
    misfire_grace: str = Field(
        default=DEFAULT_MISFIRE_GRACE,
        description="A run that is late by less than this still runs (after a pause, say).",
    )
    webhooks: WebhookListener = Field(default_factory=WebhookListener)

    @field_validator("misfire_grace")
    @classmethod
    def _check_grace(cls, value: str) -> str:
        parse_duration(value)
        return value


_RECORD_REF = re.compile(r"^[a-z][a-z0-9_-]{0,39}:.+$")


class ReconcileConfig(StrictModel):
    """How records are matched into customers, and which rules override the model."""

    link_threshold: float = Field(
        default=0.95, gt=0, lt=1, description="Model probability at or above which records link."
    )
    review_threshold: float = Field(
        default=0.5, gt=0, lt=1, description="Pairs from here up to link_threshold go to review."
    )
    guard_threshold: float = Field(
        default=0.999,
        gt=0,
        le=1,
        description="A pair below this may not join two clusters of two or more records.",
    )
    min_training_records: int = Field(
        default=1000, ge=10, description="Train the model by itself once this many customers."
    )
    always_merge: list[tuple[str, str]] = Field(
        default_factory=list, description="Pairs of SYSTEM:EXTERNAL_ID that are one customer."
    )
    never_merge: list[tuple[str, str]] = Field(
        default_factory=list, description="Pairs of SYSTEM:EXTERNAL_ID kept apart."
    )
    revenue_authority: str | None = Field(
        default=None,
        description="System whose booking counts when a sale is recorded in two systems.",
    )
    transaction_window: str = Field(
        default="3d", description="How far apart two bookings of one sale may be dated."
    )

    @field_validator("always_merge", "never_merge")
    @classmethod
    def _check_refs(cls, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for pair in pairs:
            for ref in pair:
                if not _RECORD_REF.match(ref):
                    raise ValueError(
                        f"{ref!r} is not a record: write SOURCE_NAME:EXTERNAL_ID, e.g. shop:1042"
                    )
        return pairs

    @field_validator("transaction_window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> ReconcileConfig:
        if self.review_threshold > self.link_threshold:
            raise ValueError("review_threshold must not be above link_threshold")
        return self


class RfmSegment(StrictModel):
    """A named RFM segment: the customers whose R and F scores fall in both ranges."""

    name: str = Field(description="Segment name, e.g. champions.")
    recency: tuple[int, int] = Field(description="Lowest and highest R score (1 to 5).")
    frequency: tuple[int, int] = Field(description="Lowest and highest F score (1 to 5).")


DEFAULT_RFM_SEGMENTS = (
    RfmSegment(name="champions", recency=(4, 5), frequency=(4, 5)),
    RfmSegment(name="loyal", recency=(3, 5), frequency=(3, 5)),
    RfmSegment(name="new", recency=(5, 5), frequency=(1, 1)),
    RfmSegment(name="potential_loyalists", recency=(4, 5), frequency=(1, 3)),
    RfmSegment(name="cannot_lose", recency=(1, 2), frequency=(5, 5)),
    RfmSegment(name="at_risk", recency=(1, 2), frequency=(3, 5)),
    RfmSegment(name="hibernating", recency=(1, 2), frequency=(1, 2)),
    RfmSegment(name="need_attention", recency=(1, 5), frequency=(1, 5)),
)


class LifecycleSettings(StrictModel):
    """Lifecycle stages, judged by recency against the customer's own purchase rhythm."""

    at_risk_after: float = Field(
        default=1.5, gt=0, description="At risk when recency exceeds this many usual gaps."
    )
    lapsed_after: float = Field(default=3.0, gt=0, description="Lapsed after this many gaps.")
    lost_after: float = Field(default=6.0, gt=0, description="Lost after this many gaps.")
    default_gap_days: int = Field(
        default=90,
        ge=1,
        description="Usual gap between orders when no customer has bought twice yet.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleSettings:
        if not self.at_risk_after < self.lapsed_after < self.lost_after:
            raise ValueError("at_risk_after < lapsed_after < lost_after must hold")
        return self


class PredictionSettings(StrictModel):
    """BG/NBD and Gamma-Gamma: when to fit, what to predict."""

    min_customers: int = Field(
        default=50, ge=3, description="Fewer buyers than this: no model, history only."
    )
    min_repeat_buyers: int = Field(
        default=10, ge=3, description="Fewer customers with a second order: no model."
    )
    purchases_horizon_days: int = Field(
        default=90, ge=1, description="Expected purchases are counted over this many days."
    )
    clv_horizon_months: int = Field(
        default=12, ge=1, le=120, description="Discounted CLV covers this many months."
    )
    annual_discount_rate: float = Field(
        default=0.10, ge=0, lt=1, description="Discount rate per year for CLV, 0.10 = 10%."
    )
    next_order_min_p_alive: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The expected next order date is given only above this P(alive).",
    )


class SupportSettings(StrictModel):
    """What support costs: per incident (a conversation) plus per message."""

    cost_per_incident: Decimal = Field(default=Decimal(0), ge=0)
    cost_per_message: Decimal = Field(default=Decimal(0), ge=0)
    cost_per_message_by_kind: dict[str, Decimal] = Field(
        default_factory=dict,
        description="Per-channel message cost (e.g. phone: 6.50) replacing cost_per_message.",
    )
    resolved_labels: list[str] = Field(
        default_factory=lambda: ["resolved", "closed"],
        description="A conversation with a message carrying one of these labels is closed.",
    )


class AcquisitionSettings(StrictModel):
    period: Literal["month", "quarter", "year"] = Field(
        default="month", description="Spend and new customers are matched per this period."
    )


class ReferralSettings(StrictModel):
    """An evangelist: still active and referred enough customers or revenue."""

    evangelist_min_referrals: int = Field(default=2, ge=1)
    evangelist_min_referred_revenue: Decimal = Field(default=Decimal(500), ge=0)


class LossSettings(StrictModel):
    """Loss-reason signals of lapsed and lost customers."""

    note_tag: str = Field(
        default="loss reason",
        description="An admin's reason in a note: 'loss reason: moved away'.",
    )
    label_prefix: str = Field(
        default="lost:", description="An admin's reason as a label: 'Lost: price'."
    )
    complaint_words: list[str] = Field(
        default_factory=lambda: ["complaint", "refund", "broken", "disappointed", "cancel"],
        description="Words that mark a complaint in a conversation's subject or preview.",
    )
    complaint_messages: int = Field(
        default=5, ge=1, description="How many of the latest messages are searched."
    )
    high_support_factor: float = Field(
        default=3.0, gt=0, description="Support cost above this times the peers' median."
    )


class BusinessSettings(StrictModel):
    """Business-level figures (``clm-sync report``)."""

    frequency_buckets: list[int] = Field(
        default_factory=lambda: [2, 3, 5, 10],
        description="Lower ends of the order-count groups of repeat purchasers.",
    )
    top_evangelists: int = Field(default=10, ge=1, description="How many the report lists.")


class BaselineSettings(StrictModel):
    """Comparisons with a baseline and the waiting rule."""

    fast_share: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="Compare no sooner than the usual gap of this share of fastest repeaters.",
    )
    slow_share: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="Results are preliminary until the usual gap of this share of slowest.",
    )
    bootstrap_samples: int = Field(default=500, ge=50, le=10_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


class MetricsConfig(StrictModel):
    """Thresholds and rules of the metrics (docs/metrics.md gives every formula)."""

    revenue_window_days: int = Field(
        default=365, ge=1, description="Window of revenue_12m (days up to the as-of date)."
    )
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    rfm_segments: list[RfmSegment] = Field(
        default_factory=lambda: list(DEFAULT_RFM_SEGMENTS),
        description="Named segments, the first that matches wins.",
    )
    prediction: PredictionSettings = Field(default_factory=PredictionSettings)
    support: SupportSettings = Field(default_factory=SupportSettings)
    acquisition: AcquisitionSettings = Field(default_factory=AcquisitionSettings)
    referrals: ReferralSettings = Field(default_factory=ReferralSettings)
    roc_window_days: int = Field(
        default=365, ge=1, description="Return on customer counts this many days of activity."
    )
    loss: LossSettings = Field(default_factory=LossSettings)
    business: BusinessSettings = Field(default_factory=BusinessSettings)
    baseline: BaselineSettings = Field(default_factory=BaselineSettings)


class AppConfig(StrictModel):
    """The whole file. The smallest valid one is a ledger URL and one source."""

    ledger: str = Field(
        description="sqlite:///path/to/ledger.db (default, one file) or postgresql://...",
        repr=False,  # a PostgreSQL URL may carry the password
    )
    sources: list[SourceConfig] = Field(min_length=1)
    home_currency: str = Field(
        default=DEFAULT_HOME_CURRENCY,
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code all revenue figures are reported in.",
    )
    phone_region: str = Field(
        default=DEFAULT_PHONE_REGION,
        pattern=r"^[A-Z]{2}$",
        description="Country assumed for phone numbers written without +country code.",
    )
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("ledger")
    @classmethod
    def _check_ledger(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("the ledger must be a sqlite:///FILE or postgresql://USER@HOST/DB URL")
        return value

    @model_validator(mode="after")
    def _unique_source_names(self) -> AppConfig:
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            if source.name in seen:
                raise PydanticCustomError(
                    DUPLICATE_SOURCE_NAME,
                    # pydantic fills in {name} itself; it knows no conversions such as !r
                    "two sources are named '{name}'; names must be unique",
                    {"name": source.name, "index": index},
                )
            seen.add(source.name)
        return self

    @model_validator(mode="after")
    def _reconcile_names_sources(self) -> AppConfig:
        names = {source.name for source in self.sources}
        authority = self.reconcile.revenue_authority
        if authority is not None and authority not in names:
            raise ValueError(
                f"reconcile.revenue_authority: {authority!r} is not a source; "
                f"use one of {', '.join(sorted(names))}"
            )
        return self

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources)
        raise KeyError(f"no source named {name!r} in the config (known: {known})")
