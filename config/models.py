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
        if not _SOURCE_NAME.match(value):
            raise ValueError(
                "use lower-case letters, digits, '-' or '_', starting with a letter (max 40)"
            )
        return value


# A one-member discriminated union already validates as a tagged union (pydantic >= 2.7: an
# unknown `type` is a `union_tag_invalid` error listing the known tags); later source types
# are added as `CsvSource | OtherSource` inside the Annotated.
SourceConfig = Annotated[CsvSource, Field(discriminator="type")]


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
