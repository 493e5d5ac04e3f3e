"""Pool access: an owner, a public flag and grants per served pool.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.String(257), nullable=False),
        sa.Column("owner_uid", sa.String(36), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pools"),
        sa.UniqueConstraint("repo_id", name="uq_pools_repo_id"),
    )
    op.create_index("ix_pools_owner_uid", "pools", ["owner_uid"])
    op.create_table(
        "pool_grants",
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("user_uid", sa.String(36), nullable=False),
        sa.Column("permission", sa.String(8), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pool_id", "user_uid", name="pk_pool_grants"),
        sa.ForeignKeyConstraint(["pool_id"], ["pools.id"], name="fk_pool_grants_pool_id_pools"),
    )


def downgrade() -> None:
    op.drop_table("pool_grants")
    op.drop_index("ix_pools_owner_uid", table_name="pools")
    op.drop_table("pools")
