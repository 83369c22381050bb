"""source record details the connectors deliver

Notes, labels, channels and guest flags on customers; document kind, reference, memo,
discount and refunded sale on transactions; direction, conversation, support flag, labels and
preview on interactions; method and first order on referrals. All optional, so existing rows
stay valid.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:46:16.612635
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import sync.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sqlmodel.sql.sqltypes.AutoString(length=255)


def upgrade() -> None:
    with op.batch_alter_table("source_customer") as batch_op:
        batch_op.add_column(sa.Column("parent_external_id", _ID, nullable=True))
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("labels", sync.types.TextList(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "acquisition_channel", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("guest", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("source_interaction") as batch_op:
        batch_op.add_column(
            sa.Column("direction", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True)
        )
        batch_op.add_column(sa.Column("conversation_id", _ID, nullable=True))
        batch_op.add_column(
            sa.Column("support", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("labels", sync.types.TextList(), nullable=True))
        batch_op.add_column(sa.Column("preview", sa.Text(), nullable=True))

    with op.batch_alter_table("source_referral") as batch_op:
        batch_op.add_column(
            sa.Column("method", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
        batch_op.add_column(sa.Column("first_order_external_id", _ID, nullable=True))

    with op.batch_alter_table("source_transaction") as batch_op:
        batch_op.add_column(
            sa.Column("document_kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
        batch_op.add_column(sa.Column("reference", _ID, nullable=True))
        batch_op.add_column(sa.Column("memo", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("discount", sync.types.Money(precision=20, scale=4), nullable=True)
        )
        batch_op.add_column(sa.Column("refund_of", _ID, nullable=True))
        batch_op.add_column(
            sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("source_transaction") as batch_op:
        for column in ("channel", "refund_of", "discount", "memo", "reference", "document_kind"):
            batch_op.drop_column(column)
    with op.batch_alter_table("source_referral") as batch_op:
        for column in ("first_order_external_id", "method"):
            batch_op.drop_column(column)
    with op.batch_alter_table("source_interaction") as batch_op:
        for column in ("preview", "labels", "support", "conversation_id", "direction"):
            batch_op.drop_column(column)
    with op.batch_alter_table("source_customer") as batch_op:
        for column in ("guest", "acquisition_channel", "labels", "notes", "parent_external_id"):
            batch_op.drop_column(column)
