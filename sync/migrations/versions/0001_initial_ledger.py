"""initial ledger

Revision ID: 0001
Revises:
Create Date: 2026-11-25 06:36:34.549307
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import sync.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "ingest_seen",
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("pass_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.PrimaryKeyConstraint("system", "stream", "external_id"),
    )
    op.create_table(
        "ledger_customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sync.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "oauth_token",
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("access_expires_at", sync.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refresh_expires_at", sync.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system"),
    )
    op.create_table(
        "push_state",
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("field", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("pushed_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system", "external_id", "field"),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("started_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sync.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("records_in", sa.Integer(), nullable=False),
        sa.Column("records_new", sa.Integer(), nullable=False),
        sa.Column("records_changed", sa.Integer(), nullable=False),
        sa.Column("records_unchanged", sa.Integer(), nullable=False),
        sa.Column("records_deleted", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("pushed", sa.Integer(), nullable=False),
        sa.Column("push_failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.create_index("ix_run_source_started", ["source", "started_at"], unique=False)

    op.create_table(
        "source_customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("first_name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("last_name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("company", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("email_normalized", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("phone_e164", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("address_line1", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("address_line2", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("city", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("postcode", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("region", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sync.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("system", "stream", "external_id", name="uq_source_customer_key"),
    )
    with op.batch_alter_table("source_customer", schema=None) as batch_op:
        batch_op.create_index("ix_source_customer_email", ["email_normalized"], unique=False)
        batch_op.create_index("ix_source_customer_phone", ["phone_e164"], unique=False)

    op.create_table(
        "source_interaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("customer_external_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("occurred_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("interaction_kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("cost", sync.types.Money(precision=20, scale=4), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("system", "stream", "external_id", name="uq_source_interaction_key"),
    )
    with op.batch_alter_table("source_interaction", schema=None) as batch_op:
        batch_op.create_index(
            "ix_source_interaction_customer", ["system", "customer_external_id"], unique=False
        )

    op.create_table(
        "source_referral",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("referrer_external_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("referred_external_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("occurred_at", sync.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("system", "stream", "external_id", name="uq_source_referral_key"),
    )
    op.create_table(
        "source_spend",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("spent_on", sa.Date(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("amount", sync.types.Money(precision=20, scale=4), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("home_amount", sync.types.Money(precision=20, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("system", "stream", "external_id", name="uq_source_spend_key"),
    )
    op.create_table(
        "source_transaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("customer_external_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("occurred_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("amount", sync.types.Money(precision=20, scale=4), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("transaction_kind", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("home_amount", sync.types.Money(precision=20, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("system", "stream", "external_id", name="uq_source_transaction_key"),
    )
    with op.batch_alter_table("source_transaction", schema=None) as batch_op:
        batch_op.create_index(
            "ix_source_transaction_customer", ["system", "customer_external_id"], unique=False
        )

    op.create_table(
        "stream_cursor",
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("updated_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system", "stream"),
    )
    op.create_table(
        "customer_link",
        sa.Column("source_customer_id", sa.Integer(), nullable=False),
        sa.Column("ledger_customer_id", sa.Integer(), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("linked_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_customer_id"],
            ["ledger_customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["source_customer_id"],
            ["source_customer.id"],
        ),
        sa.PrimaryKeyConstraint("source_customer_id"),
    )
    with op.batch_alter_table("customer_link", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_link_ledger_customer_id"), ["ledger_customer_id"], unique=False
        )

    op.create_table(
        "customer_metrics",
        sa.Column("ledger_customer_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_customer_id"],
            ["ledger_customer.id"],
        ),
        sa.PrimaryKeyConstraint("ledger_customer_id"),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("created_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index("ix_quarantine_system_stream", ["system", "stream"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_system_stream")

    op.drop_table("quarantine")
    op.drop_table("customer_metrics")
    with op.batch_alter_table("customer_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_link_ledger_customer_id"))

    op.drop_table("customer_link")
    op.drop_table("stream_cursor")
    with op.batch_alter_table("source_transaction", schema=None) as batch_op:
        batch_op.drop_index("ix_source_transaction_customer")

    op.drop_table("source_transaction")
    op.drop_table("source_spend")
    op.drop_table("source_referral")
    with op.batch_alter_table("source_interaction", schema=None) as batch_op:
        batch_op.drop_index("ix_source_interaction_customer")

    op.drop_table("source_interaction")
    with op.batch_alter_table("source_customer", schema=None) as batch_op:
        batch_op.drop_index("ix_source_customer_phone")
        batch_op.drop_index("ix_source_customer_email")

    op.drop_table("source_customer")
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_index("ix_run_source_started")

    op.drop_table("run")
    op.drop_table("push_state")
    op.drop_table("oauth_token")
    op.drop_table("ledger_customer")
    op.drop_table("ingest_seen")
