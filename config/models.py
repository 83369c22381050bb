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
    """The client-side limiter, per mailbox; defaults are Graph's published Outlook limits."""

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
    limits: OutlookLimits = Field(default_factory=OutlookLimits)


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


# A one-member discriminated union already validates as a tagged union (pydantic >= 2.7: an
# unknown `type` is a `union_tag_invalid` error listing the known tags); later source types
# are added as `CsvSource | OtherSource` inside the Annotated.
SourceConfig = Annotated[CsvSource | GraphSource | EwsSource, Field(discriminator="type")]


class LoggingConfig(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: Path | None = Field(default=None, description="Log file; standard error if unset.")


class DaemonConfig(StrictModel):
    misfire_grace: str = Field(
        default=DEFAULT_MISFIRE_GRACE,
        description="A run that is late by less than this still runs (after a pause, say).",
    )

    @field_validator("misfire_grace")
    @classmethod
    def _check_grace(cls, value: str) -> str:
        parse_duration(value)
        return value


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
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
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

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources)
        raise KeyError(f"no source named {name!r} in the config (known: {known})")
