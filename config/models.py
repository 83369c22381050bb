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


def _check_source_name(value: str) -> str:
    if not _SOURCE_NAME.match(value):
        raise ValueError(
            "use lower-case letters, digits, '-' or '_', starting with a letter (max 40)"
        )
    return value


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
        return _check_source_name(value)


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
        return _check_source_name(value)


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
        return _check_source_name(value)

    @field_validator("customers_every")
    @classmethod
    def _check_every(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


# The union is discriminated by `type` (pydantic: an unknown `type` is a `union_tag_invalid`
# error listing the known tags).
SourceConfig = Annotated[CsvSource | ShopifySource | WooCommerceSource, Field(discriminator="type")]


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
