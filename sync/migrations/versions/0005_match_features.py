"""stored match features

Each live source customer's match features, kept with the content hash they were computed
from, replace ``match_scored``: a cycle featurizes and compares only records whose hash
changed, and finds their candidates through the blocking-rule indexes. ``reconcile_state``
remembers the admin rules the last cycle applied. An upgraded ledger has no features yet, so
its next cycle compares everything once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString()
_FEATURES = (
    "first_name",
    "last_name",
    "first_canonical",
    "first_groups",
    "email",
    "email_domain",
    "phone",
    "phone_last7",
    "company",
    "postcode",
    "street_number",
    "street",
    "city",
)
_INDEXES = {
    "ix_match_features_email": ["email"],
    "ix_match_features_phone": ["phone"],
    "ix_match_features_postcode": ["postcode", "street_number"],
    "ix_match_features_last_postcode": ["last_name", "postcode"],
    "ix_match_features_first_postcode": ["first_name", "postcode"],
    "ix_match_features_street": ["street", "street_number"],
    "ix_match_features_last_first": ["last_name", "first_canonical"],
    "ix_match_features_first_last": ["first_name", "last_name"],
}


def upgrade() -> None:
    op.create_table(
        "match_features",
        sa.Column("source_customer_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        *(sa.Column(name, _TEXT, nullable=True) for name in _FEATURES),
        sa.ForeignKeyConstraint(["source_customer_id"], ["source_customer.id"]),
        sa.PrimaryKeyConstraint("source_customer_id"),
    )
    with op.batch_alter_table("match_features", schema=None) as batch_op:
        for name, columns in _INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
    op.create_table(
        "reconcile_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rules_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.drop_table("match_scored")


def downgrade() -> None:
    op.drop_table("reconcile_state")
    op.create_table(
        "match_scored",
        sa.Column("source_customer_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["match_model.id"]),
        sa.ForeignKeyConstraint(["source_customer_id"], ["source_customer.id"]),
        sa.PrimaryKeyConstraint("source_customer_id"),
    )
    with op.batch_alter_table("match_features", schema=None) as batch_op:
        for name in _INDEXES:
            batch_op.drop_index(name)
    op.drop_table("match_features")
