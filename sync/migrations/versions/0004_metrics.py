"""metrics runs and baselines

One row per computation of the figures with the fitted models; each customer's basis (what
the metrics need from their own rows, for recomputing only touched customers); baselines
(figures frozen under a name) and their per-customer figures.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 00:43:53.136683
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import sync.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_NAME = sqlmodel.sql.sqltypes.AutoString(length=80)
_MONEY = sync.types.Money(precision=20, scale=4)
_MOMENT = sync.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "baseline",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("as_of", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("business_json", sa.Text(), nullable=False),
        sa.Column("models_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "metrics_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("as_of", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sync.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("recomputed", sa.Integer(), nullable=False),
        sa.Column("settings_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("models_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "customer_basis",
        sa.Column("ledger_customer_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column(
            "acquisition_channel", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True
        ),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("first_purchase", sa.Date(), nullable=True),
        sa.Column("last_purchase", sa.Date(), nullable=True),
        sa.Column("latest_transaction", sa.Date(), nullable=True),
        sa.Column("net_revenue", _MONEY, nullable=False),
        sa.Column("revenue_12m", _MONEY, nullable=False),
        sa.Column("revenue_roc_window", _MONEY, nullable=False),
        sa.Column("purchase_days", sa.Integer(), nullable=True),
        sa.Column("mean_value", sa.Float(), nullable=True),
        sa.Column("support_incidents", sa.Integer(), nullable=False),
        sa.Column("open_incidents", sa.Integer(), nullable=False),
        sa.Column("last_incident", sa.Date(), nullable=True),
        sa.Column("support_cost", _MONEY, nullable=False),
        sa.Column("support_cost_window", _MONEY, nullable=False),
        sa.Column("last_sale", _MOMENT, nullable=True),
        sa.Column("last_refund", _MOMENT, nullable=True),
        sa.Column("discounted", sa.Boolean(), nullable=True),
        sa.Column("complaints", sa.Boolean(), nullable=True),
        sa.Column("admin_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("ledger_customer_id"),
    )
    op.create_table(
        "baseline_customer",
        sa.Column("baseline_name", _NAME, nullable=False),
        sa.Column("ledger_customer_id", sa.Integer(), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["baseline_name"], ["baseline.name"]),
        sa.PrimaryKeyConstraint("baseline_name", "ledger_customer_id"),
    )


def downgrade() -> None:
    op.drop_table("baseline_customer")
    op.drop_table("customer_basis")
    op.drop_table("metrics_run")
    op.drop_table("baseline")
