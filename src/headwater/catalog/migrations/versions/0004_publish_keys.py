"""Idempotency keys of publishes: a retried publish answers with the dataset the first one made.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publish_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_uid", sa.String(36), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_publish_keys"),
        sa.UniqueConstraint("user_uid", "key", name="uq_publish_keys_user_uid_key"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name="fk_publish_keys_dataset_id_datasets"),
    )


def downgrade() -> None:
    op.drop_table("publish_keys")
