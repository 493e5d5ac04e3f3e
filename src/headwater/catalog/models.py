"""The catalog schema as SQLAlchemy Core tables (the migrations in ``migrations/`` build exactly this).

Why Core and not ORM classes: every catalog operation is a handful of set-based statements, and the
hot paths (bulk insert of droplets, keyset pages) want plain rows without identity-map overhead.

Split contents live in ``droplets(split_id, ordinal, data)`` with primary key ``(split_id, ordinal)``
and ordinals ``0..count-1``; chunk *k* of *n* is the ordinal range from
``headwater.catalog.sharding.chunk_bounds`` and starts with one primary-key seek, whatever *k* is.
On SQLite it is an ordinary rowid table (measured: a ``WITHOUT ROWID`` table reads ~300-byte
droplets 1.6x slower on 4 KiB pages, because so little payload fits in its B-tree cells); the
publisher appends rows in ordinal order, so the rows of a range sit next to each other anyway.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "metadata",
    "UTCDateTime",
    "databases",
    "repositories",
    "datasets",
    "splits",
    "droplets",
    "tags",
    "tag_events",
    "users",
    "api_keys",
    "pools",
    "pool_grants",
    "publish_keys",
    "split_facets",
    "facet_classes",
    "facet_uids",
    "facet_values",
    "facet_metadata",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite stores no zone; PostgreSQL does)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the catalog stores aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = value  # what the DateTime column hands back
        if stamp.tzinfo is None:
            return stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)


databases = Table(
    "databases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(36), nullable=False, unique=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("public", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # the uid of the user who owns it (None: no owner — shared by every authenticated user of the server).
    # No foreign key: SQLite could not drop or rebuild the column in a migration while repositories point
    # here; the catalog checks that the user exists, and users are never deleted.
    Column("owner_uid", String(36), nullable=True, index=True),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("database_id", Integer, ForeignKey("databases.id"), nullable=False),
    Column("namespace", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("database_id", "namespace", "name"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(36), nullable=False, unique=True),
    Column("repository_id", Integer, ForeignKey("repositories.id"), nullable=False, index=True),
    Column("template", Text, nullable=False),
    Column("pools", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

splits = Table(
    "splits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("count", BigInteger, nullable=False),
    UniqueConstraint("dataset_id", "name"),
)

droplets = Table(
    "droplets",
    metadata,
    Column("split_id", Integer, ForeignKey("splits.id"), primary_key=True),
    Column("ordinal", BigInteger, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("repository_id", "name"),
)

tag_events = Table(
    "tag_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id"), nullable=False),
    Column("tag", String(128), nullable=False),
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("previous_dataset_id", Integer, ForeignKey("datasets.id"), nullable=True),
    Column("moved_at", UTCDateTime, nullable=False),
)
# one tag's history, in move order
Index("ix_tag_events_repository_id_tag_id", tag_events.c.repository_id, tag_events.c.tag, tag_events.c.id)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(36), nullable=False, unique=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("email", String(320), nullable=False),
    # a soft reference (no foreign key: databases already point at users, and a cycle would complicate
    # every migration); a default that no longer resolves is simply ignored
    Column("default_database_uid", String(36), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", String(32), nullable=False, unique=True),  # public: shown in listings, used to revoke
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # SHA-256 hex of the whole secret
    Column("permission", String(8), nullable=False),  # "read" | "write"
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

pools = Table(
    "pools",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("repo_id", String(257), nullable=False, unique=True),  # the Hub repo id a server serves it as
    Column("owner_uid", String(36), nullable=True, index=True),  # soft reference, as databases.owner_uid
    Column("public", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

pool_grants = Table(
    "pool_grants",
    metadata,
    Column("pool_id", Integer, ForeignKey("pools.id"), primary_key=True),
    Column("user_uid", String(36), primary_key=True),
    Column("permission", String(8), nullable=False),  # "read" | "write"
    Column("granted_at", UTCDateTime, nullable=False),
)

# a publish's idempotency key (scoped to the user who sent it) → the dataset it made: a retried publish whose
# response was lost answers with that dataset instead of publishing again (headwater.server.routes.dataset_writes)
publish_keys = Table(
    "publish_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_uid", String(36), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # sha256 of what was asked: other content → refused
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("user_uid", "key"),
)

# -- facets: what a split's filters and statistics read instead of its droplets (headwater.catalog.facet_index
# writes them at publish, in the publish's transaction; migration 0005 backfills older splits). Names, uids and
# metadata are stored as UTF-8 bytes: compared byte by byte on every backend (no collation; a prefix is a range)
# and free of PostgreSQL's ban on NUL in text.

# one row a split: its SplitStats as JSON
split_facets = Table(
    "split_facets",
    metadata,
    Column("split_id", Integer, ForeignKey("splits.id"), primary_key=True),
    Column("stats", Text, nullable=False),
)

# one row a (split, class): the class's postings as little-endian arrays. `ordinals` (uint32, ascending): the
# droplets where the class is present; `counts` (uint32): their instance counts; `box_ordinals` (uint32) and
# `confidences` (float64): one entry per instance box that carries a confidence, by ascending confidence.
facet_classes = Table(
    "facet_classes",
    metadata,
    Column("split_id", Integer, ForeignKey("splits.id"), primary_key=True),
    Column("position", Integer, primary_key=True),  # order of first appearance in the split
    Column("name", LargeBinary, nullable=False),
    Column("droplets", BigInteger, nullable=False),
    Column("ordinals", LargeBinary, nullable=False),
    Column("counts", LargeBinary, nullable=False),
    Column("box_ordinals", LargeBinary, nullable=False),
    Column("confidences", LargeBinary, nullable=False),
)

# one row a droplet with a uid: uid prefix search and ordinal_of are one primary-key range. No foreign key on
# split_id (nor on facet_metadata's): a row a droplet, and PostgreSQL would run a trigger for each; only the
# publisher writes them, in the transaction that creates their split. WITHOUT ROWID on SQLite: the key is the row.
facet_uids = Table(
    "facet_uids",
    metadata,
    Column("split_id", Integer, primary_key=True, autoincrement=False),
    Column("uid", LargeBinary, primary_key=True),
    Column("ordinal", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

# one row a (split, metadata key, value) for keys with few distinct values: the ordinals (uint32, ascending)
# of the droplets that have it
facet_values = Table(
    "facet_values",
    metadata,
    Column("split_id", Integer, ForeignKey("splits.id"), primary_key=True),
    Column("key", LargeBinary, primary_key=True),
    Column("value", LargeBinary, primary_key=True),
    Column("droplets", BigInteger, nullable=False),
    Column("ordinals", LargeBinary, nullable=False),
)

# one row a (droplet, top-level scalar metadata key) for keys with many distinct values: key=value is one
# primary-key range
facet_metadata = Table(
    "facet_metadata",
    metadata,
    Column("split_id", Integer, primary_key=True, autoincrement=False),
    Column("key", LargeBinary, primary_key=True),
    Column("value", LargeBinary, primary_key=True),
    Column("ordinal", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)
