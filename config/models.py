"""The YAML schema as pydantic models.

Every model forbids unknown keys so a typo is an error, not a silently ignored setting. Later
source types (QuickBooks, Graph, EWS, Shopify, WooCommerce) join :data:`SourceConfig` as
further members of the union discriminated by ``type``.
"""

from __future__ import annotations

import re
from datetime import timedelta
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


def _source_name(value: str) -> str:
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
        return _source_name(value)


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
        return _source_name(value)


SourceConfig = Annotated[CsvSource | QuickBooksSource, Field(discriminator="type")]


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
