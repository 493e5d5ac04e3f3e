"""Initial catalog schema: databases, repositories, datasets, splits, droplets, tags, tag_events.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "databases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_databases"),
        sa.UniqueConstraint("uid", name="uq_databases_uid"),
        sa.UniqueConstraint("name", name="uq_databases_name"),
    )
    op.create_table(
        "repositories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("database_id", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_repositories"),
        sa.ForeignKeyConstraint(["database_id"], ["databases.id"], name="fk_repositories_database_id_databases"),
        sa.UniqueConstraint("database_id", "namespace", "name", name="uq_repositories_database_id_namespace_name"),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("pools", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], name="fk_datasets_repository_id_repositories"),
        sa.UniqueConstraint("uid", name="uq_datasets_uid"),
    )
    op.create_index("ix_datasets_repository_id", "datasets", ["repository_id"])
    op.create_table(
        "splits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_splits"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name="fk_splits_dataset_id_datasets"),
        sa.UniqueConstraint("dataset_id", "name", name="uq_splits_dataset_id_name"),
    )
    op.create_table(
        "droplets",
        sa.Column("split_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("split_id", "ordinal", name="pk_droplets"),
        sa.ForeignKeyConstraint(["split_id"], ["splits.id"], name="fk_droplets_split_id_splits"),
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tags"),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], name="fk_tags_repository_id_repositories"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name="fk_tags_dataset_id_datasets"),
        sa.UniqueConstraint("repository_id", "name", name="uq_tags_repository_id_name"),
    )
    op.create_table(
        "tag_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("previous_dataset_id", sa.Integer(), nullable=True),
        sa.Column("moved_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tag_events"),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"],
                                name="fk_tag_events_repository_id_repositories"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name="fk_tag_events_dataset_id_datasets"),
        sa.ForeignKeyConstraint(["previous_dataset_id"], ["datasets.id"],
                                name="fk_tag_events_previous_dataset_id_datasets"),
    )
    op.create_index("ix_tag_events_repository_id_tag_id", "tag_events", ["repository_id", "tag", "id"])


def downgrade() -> None:
    op.drop_index("ix_tag_events_repository_id_tag_id", table_name="tag_events")
    op.drop_table("tag_events")
    op.drop_table("tags")
    op.drop_table("droplets")
    op.drop_table("splits")
    op.drop_index("ix_datasets_repository_id", table_name="datasets")
    op.drop_table("datasets")
    op.drop_table("repositories")
    op.drop_table("databases")
