"""line items of transactions

A shop order's line items (quantity, title, SKU, totals before and after discounts) as a
JSON list on its transaction row. Optional, so existing rows stay valid.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_transaction") as batch_op:
        batch_op.add_column(sa.Column("lines", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_transaction") as batch_op:
        batch_op.drop_column("lines")
