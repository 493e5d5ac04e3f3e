"""Facets of splits (what the viewer's filters and statistics read), backfilled for splits published before.

The backfill reads each split once, in ordinal order, a page at a time, and computes the same facets the
publisher computes (headwater.catalog.facet_index), in the migration's transaction. It runs when a catalog is
first opened by this version and costs about what the facets cost at publish (~10-20 µs a droplet: a minute or
two for ten million droplets), once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from headwater.catalog.facet_index import SplitFacets, write_facet_rows, write_split_facets

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PAGE = 5000


def upgrade() -> None:
    op.create_table(
        "split_facets",
        sa.Column("split_id", sa.Integer(), nullable=False),
        sa.Column("stats", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("split_id", name="pk_split_facets"),
        sa.ForeignKeyConstraint(["split_id"], ["splits.id"], name="fk_split_facets_split_id_splits"),
    )
    op.create_table(
        "facet_classes",
        sa.Column("split_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("droplets", sa.BigInteger(), nullable=False),
        sa.Column("ordinals", sa.LargeBinary(), nullable=False),
        sa.Column("counts", sa.LargeBinary(), nullable=False),
        sa.Column("box_ordinals", sa.LargeBinary(), nullable=False),
        sa.Column("confidences", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("split_id", "position", name="pk_facet_classes"),
        sa.ForeignKeyConstraint(["split_id"], ["splits.id"], name="fk_facet_classes_split_id_splits"),
    )
    op.create_table(
        "facet_uids",
        sa.Column("split_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("uid", sa.LargeBinary(), nullable=False),
        sa.Column("ordinal", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("split_id", "uid", "ordinal", name="pk_facet_uids"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "facet_values",
        sa.Column("split_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("droplets", sa.BigInteger(), nullable=False),
        sa.Column("ordinals", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("split_id", "key", "value", name="pk_facet_values"),
        sa.ForeignKeyConstraint(["split_id"], ["splits.id"], name="fk_facet_values_split_id_splits"),
    )
    op.create_table(
        "facet_metadata",
        sa.Column("split_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("ordinal", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("split_id", "key", "value", "ordinal", name="pk_facet_metadata"),
        sqlite_with_rowid=False,
    )
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    droplets = sa.table("droplets", sa.column("split_id", sa.Integer()), sa.column("ordinal", sa.BigInteger()),
                        sa.column("data", sa.LargeBinary()))
    split_ids = conn.execute(sa.text("SELECT id FROM splits ORDER BY id")).scalars().all()
    for split_id in split_ids:
        facets = SplitFacets()
        while True:
            rows = conn.execute(
                sa.select(droplets.c.ordinal, droplets.c.data)
                .where(droplets.c.split_id == split_id, droplets.c.ordinal >= facets.count)
                .order_by(droplets.c.ordinal).limit(_PAGE)
            ).all()
            if not rows:
                break
            uid_rows, meta_rows = facets.add(split_id, facets.count, [bytes(data) for _ordinal, data in rows])
            write_facet_rows(conn, uid_rows, meta_rows)
        write_split_facets(conn, split_id, facets)


def downgrade() -> None:
    op.drop_table("facet_metadata")
    op.drop_table("facet_values")
    op.drop_table("facet_uids")
    op.drop_table("facet_classes")
    op.drop_table("split_facets")
