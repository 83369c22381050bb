"""The ledger's tables (SQLModel). The ledger is the only shared state of the service.

Source tables hold what the remote systems said, one row per ``(system, stream,
external_id)``, with a content hash (so an unchanged record is never rewritten) and a deleted
flag (deletions are recorded, never erased). Everything else — ledger customers and their
links, cursors, tokens, push state, run history, quarantine, metrics — is the service's own.

Schema changes go through alembic (``sync/migrations``); a test checks that the migrations
produce exactly these tables.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Index, LargeBinary, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from connectors.records import RecordKind
from sync.types import Money, TextList, UTCDateTime

HASH_LENGTH = 32


def _source_key(table: str) -> tuple[UniqueConstraint]:
    return (UniqueConstraint("system", "stream", "external_id", name=f"uq_{table}_key"),)


class SourceRow(SQLModel):
    """Columns every source table shares."""

    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(max_length=40)
    stream: str = Field(max_length=60)
    external_id: str = Field(max_length=255)
    content_hash: str = Field(max_length=HASH_LENGTH)
    deleted: bool = False
    first_seen_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class SourceCustomerRow(SourceRow, table=True):
    __tablename__ = "source_customer"
    __table_args__ = (
        *_source_key("source_customer"),
        Index("ix_source_customer_email", "email_normalized"),
        Index("ix_source_customer_phone", "phone_e164"),
    )

    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    email: str | None = None
    email_normalized: str | None = None
    phone: str | None = None
    phone_e164: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postcode: str | None = None
    region: str | None = None
    country: str | None = None
    created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    parent_external_id: str | None = Field(default=None, max_length=255)
    notes: str | None = Field(default=None, sa_type=Text)
    labels: tuple[str, ...] = Field(default=(), sa_type=TextList, nullable=True)
    acquisition_channel: str | None = Field(default=None, max_length=80)
    guest: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class SourceTransactionRow(SourceRow, table=True):
    __tablename__ = "source_transaction"
    __table_args__ = (
        *_source_key("source_transaction"),
        Index("ix_source_transaction_customer", "system", "customer_external_id"),
    )

    customer_external_id: str | None = None
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    amount: Decimal = Field(sa_type=Money)
    currency: str = Field(max_length=3)
    transaction_kind: str = Field(max_length=10)
    home_amount: Decimal = Field(sa_type=Money)
    document_kind: str | None = Field(default=None, max_length=40)
    reference: str | None = Field(default=None, max_length=255)
    memo: str | None = Field(default=None, sa_type=Text)
    discount: Decimal | None = Field(default=None, sa_type=Money)
    refund_of: str | None = Field(default=None, max_length=255)
    channel: str | None = Field(default=None, max_length=80)
    lines: str | None = Field(default=None, sa_type=Text)
    """The line items as a JSON list (``sync.rows.lines_json``), if the source gives them."""


class SourceInteractionRow(SourceRow, table=True):
    __tablename__ = "source_interaction"
    __table_args__ = (
        *_source_key("source_interaction"),
        Index("ix_source_interaction_customer", "system", "customer_external_id"),
    )

    customer_external_id: str | None = None
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    interaction_kind: str = Field(max_length=40)
    subject: str | None = Field(default=None, sa_type=Text)
    cost: Decimal | None = Field(default=None, sa_type=Money)
    direction: str | None = Field(default=None, max_length=10)
    conversation_id: str | None = Field(default=None, max_length=255)
    support: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    labels: tuple[str, ...] = Field(default=(), sa_type=TextList, nullable=True)
    preview: str | None = Field(default=None, sa_type=Text)


class SourceReferralRow(SourceRow, table=True):
    __tablename__ = "source_referral"
    __table_args__ = _source_key("source_referral")

    referrer_external_id: str
    referred_external_id: str
    occurred_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    method: str | None = Field(default=None, max_length=40)
    first_order_external_id: str | None = Field(default=None, max_length=255)


class SourceSpendRow(SourceRow, table=True):
    __tablename__ = "source_spend"
    __table_args__ = _source_key("source_spend")

    spent_on: date
    channel: str = Field(max_length=80)
    amount: Decimal = Field(sa_type=Money)
    currency: str = Field(max_length=3)
    home_amount: Decimal = Field(sa_type=Money)


class LedgerCustomer(SQLModel, table=True):
    """One real customer. Ids are stable: new records never renumber existing customers."""

    __tablename__ = "ledger_customer"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    retired_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="Set when no live source record is left."
    )


class CustomerLink(SQLModel, table=True):
    """Which ledger customer a source customer belongs to, and by which rule."""

    __tablename__ = "customer_link"

    source_customer_id: int = Field(primary_key=True, foreign_key="source_customer.id")
    ledger_customer_id: int = Field(foreign_key="ledger_customer.id", index=True)
    rule: str = Field(max_length=40)
    linked_at: datetime = Field(sa_type=UTCDateTime)


class StreamCursor(SQLModel, table=True):
    """Where a stream stopped; written in the same transaction as the page it covers."""

    __tablename__ = "stream_cursor"

    system: str = Field(primary_key=True, max_length=40)
    stream: str = Field(primary_key=True, max_length=60)
    cursor: str = Field(sa_type=Text, description="JSON object owned by the stream.")
    updated_at: datetime = Field(sa_type=UTCDateTime)


class IngestSeen(SQLModel, table=True):
    """Ids seen so far in the running pass of a full-refresh stream.

    Lets ingest mark what a complete pass did not see as deleted and catch an id that occurs
    twice, without holding the ids in memory and without rewriting unchanged rows.
    """

    __tablename__ = "ingest_seen"

    system: str = Field(primary_key=True, max_length=40)
    stream: str = Field(primary_key=True, max_length=60)
    external_id: str = Field(primary_key=True, max_length=255)
    pass_id: str = Field(max_length=40)


class OAuthToken(SQLModel, table=True):
    """A system's tokens, Fernet-encrypted with the key from ``CLM_SYNC_SECRET_KEY``."""

    __tablename__ = "oauth_token"

    system: str = Field(primary_key=True, max_length=40)
    ciphertext: bytes = Field(sa_type=LargeBinary)
    access_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    refresh_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class PushState(SQLModel, table=True):
    """The value last written to one field of one remote record."""

    __tablename__ = "push_state"

    system: str = Field(primary_key=True, max_length=40)
    external_id: str = Field(primary_key=True, max_length=255)
    field: str = Field(primary_key=True, max_length=120)
    value: str = Field(sa_type=Text)
    pushed_at: datetime = Field(sa_type=UTCDateTime)


class RunRecord(SQLModel, table=True):
    """One pull of one source, or one reconcile-metrics-push step (``source`` is None)."""

    __tablename__ = "run"
    __table_args__ = (Index("ix_run_source_started", "source", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str | None = Field(default=None, max_length=40)
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default="running", max_length=20)
    records_in: int = 0
    records_new: int = 0
    records_changed: int = 0
    records_unchanged: int = 0
    records_deleted: int = 0
    quarantined: int = 0
    pushed: int = 0
    push_failed: int = 0
    error: str | None = Field(default=None, sa_type=Text)


class QuarantineRow(SQLModel, table=True):
    """A record that failed validation: why, where from, and the payload as received."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_system_stream", "system", "stream"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    system: str = Field(max_length=40)
    stream: str = Field(max_length=60)
    external_id: str | None = Field(default=None, max_length=255)
    reason: str = Field(sa_type=Text)
    location: str | None = Field(default=None, sa_type=Text)
    raw: str = Field(sa_type=Text)
    created_at: datetime = Field(sa_type=UTCDateTime)


class CustomerMetrics(SQLModel, table=True):
    """The latest per-customer figures, as a JSON object of metric name to value."""

    __tablename__ = "customer_metrics"

    ledger_customer_id: int = Field(primary_key=True, foreign_key="ledger_customer.id")
    as_of: datetime = Field(sa_type=UTCDateTime)
    values_json: str = Field(sa_type=Text)


class MatchModel(SQLModel, table=True):
    """A version of the matching model: the Splink settings with their m/u probabilities."""

    __tablename__ = "match_model"

    id: int | None = Field(default=None, primary_key=True)
    trained_at: datetime = Field(sa_type=UTCDateTime)
    records: int = Field(description="Source customers it was trained on (0: built-in).")
    settings_json: str = Field(sa_type=Text)


class MatchPair(SQLModel, table=True):
    """A scored candidate pair of source customers (``source_a < source_b``) worth keeping:
    at or above the review threshold."""

    __tablename__ = "match_pair"
    __table_args__ = (Index("ix_match_pair_b", "source_b"),)

    source_a: int = Field(primary_key=True, foreign_key="source_customer.id")
    source_b: int = Field(primary_key=True, foreign_key="source_customer.id")
    probability: float
    match_weight: float
    two_people: bool = Field(
        default=False,
        description="Different first names, no e-mail or phone in common: not linked by the model.",
    )
    scored_at: datetime = Field(sa_type=UTCDateTime)


class MatchFeatures(SQLModel, table=True):
    """A live source customer's match features (the model's input row), computed from the
    content it had (``content_hash``): a changed hash means the record is featurized and
    compared again at the next cycle; nothing else is featurized twice.

    The indexes serve the blocking rules, so an incremental cycle finds the candidates of its
    new records by index lookups instead of reading the whole ledger.
    """

    __tablename__ = "match_features"
    __table_args__ = (
        Index("ix_match_features_email", "email"),
        Index("ix_match_features_phone", "phone"),
        Index("ix_match_features_postcode", "postcode", "street_number"),
        Index("ix_match_features_last_postcode", "last_name", "postcode"),
        Index("ix_match_features_first_postcode", "first_name", "postcode"),
        Index("ix_match_features_street", "street", "street_number"),
        Index("ix_match_features_last_first", "last_name", "first_canonical"),
        Index("ix_match_features_first_last", "first_name", "last_name"),
    )

    source_customer_id: int = Field(primary_key=True, foreign_key="source_customer.id")
    content_hash: str = Field(max_length=HASH_LENGTH)
    first_name: str | None = None
    last_name: str | None = None
    first_canonical: str | None = None
    first_groups: str | None = Field(default=None, description="Name groups, space separated.")
    email: str | None = None
    email_domain: str | None = None
    phone: str | None = None
    phone_last7: str | None = None
    company: str | None = None
    postcode: str | None = None
    street_number: str | None = None
    street: str | None = None
    city: str | None = None


class ReconcileState(SQLModel, table=True):
    """What the last reconcile applied (one row): the admin rules, as a JSON list. A cycle
    re-clusters the records a rule added or dropped since then names, as well as the changed
    ones; every other cluster stays as it is."""

    __tablename__ = "reconcile_state"

    id: int | None = Field(default=None, primary_key=True)
    rules_json: str = Field(sa_type=Text)


class MergeLog(SQLModel, table=True):
    """Every admin merge, split and review decision: who, when, why; undoable."""

    __tablename__ = "merge_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=120)
    action: str = Field(max_length=20)
    records: str = Field(sa_type=Text, description="The source records named, space separated.")
    reason: str | None = Field(default=None, sa_type=Text)
    undone_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    undone_by: str | None = Field(default=None, max_length=120)


class MatchRule(SQLModel, table=True):
    """An always- or never-merge rule written by an admin command or a review decision.

    Records are named ``system:external_id`` so a rule survives re-ingesting the records.
    """

    __tablename__ = "match_rule"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=10)
    record_a: str = Field(max_length=300)
    record_b: str = Field(max_length=300)
    log_id: int = Field(foreign_key="merge_log.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LinkHistory(SQLModel, table=True):
    """A ledger customer a source customer belonged to before; lets an undone merge give the
    split-off records their old customer id back."""

    __tablename__ = "link_history"
    __table_args__ = (Index("ix_link_history_source", "source_customer_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source_customer_id: int = Field(foreign_key="source_customer.id")
    ledger_customer_id: int = Field(foreign_key="ledger_customer.id")
    until: datetime = Field(sa_type=UTCDateTime)


class TransactionMatch(SQLModel, table=True):
    """A transaction that records the same sale as another one: it is not counted."""

    __tablename__ = "transaction_match"

    transaction_id: int = Field(primary_key=True, foreign_key="source_transaction.id")
    counted_id: int = Field(foreign_key="source_transaction.id")
    rule: str = Field(max_length=80)
    matched_at: datetime = Field(sa_type=UTCDateTime)


SOURCE_TABLES: dict[RecordKind, type[SourceRow]] = {
    RecordKind.CUSTOMER: SourceCustomerRow,
    RecordKind.TRANSACTION: SourceTransactionRow,
    RecordKind.INTERACTION: SourceInteractionRow,
    RecordKind.REFERRAL: SourceReferralRow,
    RecordKind.SPEND: SourceSpendRow,
}


class MetricsRun(SQLModel, table=True):
    """One computation of the figures: when, as of when, and the models fitted (JSON)."""

    __tablename__ = "metrics_run"

    id: int | None = Field(default=None, primary_key=True)
    as_of: datetime = Field(sa_type=UTCDateTime)
    computed_at: datetime = Field(sa_type=UTCDateTime)
    customers: int
    changed: int
    recomputed: int = Field(description="Customers whose basis was recomputed.")
    settings_hash: str = Field(max_length=64, description="Of the metrics: YAML section.")
    models_json: str = Field(sa_type=Text, description="Fitted parameters and messages.")


class Baseline(SQLModel, table=True):
    """Figures frozen under a name; nothing but ``baseline create`` ever writes here."""

    __tablename__ = "baseline"

    name: str = Field(primary_key=True, max_length=80)
    as_of: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    business_json: str = Field(sa_type=Text)
    models_json: str = Field(sa_type=Text)


class BaselineCustomer(SQLModel, table=True):
    """A customer's figures in a baseline. No foreign key to ``ledger_customer``: later
    merges, splits and retirements must not touch a frozen baseline."""

    __tablename__ = "baseline_customer"

    baseline_name: str = Field(primary_key=True, foreign_key="baseline.name", max_length=80)
    ledger_customer_id: int = Field(primary_key=True)
    values_json: str = Field(sa_type=Text)


class CustomerBasis(SQLModel, table=True):
    """What the metrics need from one customer's own rows (``clm_metrics.basis``), kept so
    that the next run recomputes only customers whose rows changed. ``fingerprint`` sums up
    the customer's links and rows (counts and latest updates) and their sales matched to
    another booking, when the basis was computed."""

    __tablename__ = "customer_basis"

    ledger_customer_id: int = Field(primary_key=True)
    fingerprint: str = Field(sa_type=Text)
    acquisition_channel: str | None = Field(default=None, max_length=80)
    orders: int
    first_purchase: date | None = None
    last_purchase: date | None = None
    latest_transaction: date | None = None
    net_revenue: Decimal = Field(sa_type=Money)
    revenue_12m: Decimal = Field(sa_type=Money)
    revenue_roc_window: Decimal = Field(sa_type=Money)
    purchase_days: int | None = None
    mean_value: float | None = None
    support_incidents: int
    open_incidents: int
    last_incident: date | None = None
    support_cost: Decimal = Field(sa_type=Money)
    support_cost_window: Decimal = Field(sa_type=Money)
    last_sale: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_refund: datetime | None = Field(default=None, sa_type=UTCDateTime)
    discounted: bool | None = None
    complaints: bool | None = None
    admin_reason: str | None = Field(default=None, sa_type=Text)
