"""Layer 5: the dataset catalog — databases → repositories → immutable datasets ← movable tags.

Open one with :class:`Catalog` (a file path for the embedded SQLite default, or a PostgreSQL URL);
publish with :meth:`Catalog.publisher` / :meth:`Catalog.publish` (one transaction); stream a split's
chunk with :func:`plan_pass` and :func:`pass_blocks`.

* :mod:`.catalog` — :class:`Catalog`; :mod:`.engine` — URL → engine, migrations; :mod:`.models` — tables;
* :mod:`.publisher` — one dataset in one transaction; :mod:`.mutations` — row writes inside a transaction;
* :mod:`.lookup`, :mod:`.queries` — reads by name, split pages; :mod:`.users` — users, API keys, access;
  :mod:`.pool_access` — who may read and write a served pool;
* :mod:`.facets` — split filters (and their URL query form) and statistics; :mod:`.facet_index` — facets
  computed at publish; :mod:`.facet_search` — filters answered from them;
* :mod:`.sharding` — which droplets chunk ``k`` of ``n`` holds; :mod:`.streams` — a pass as NDJSON blocks;
* :mod:`.records`, :mod:`.wire` — what queries return and its datatap JSON; :mod:`.name_rules`,
  :mod:`.default_location`, :mod:`.errors`.

Why the names below are imported lazily: the client imports this package's light modules (records, wire
JSON, sharding, errors) also in remote mode, where loading SQLAlchemy and Alembic would cost most of a
second for nothing. ``from headwater.catalog import Catalog`` works as usual and loads them then.

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> with Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite")) as cat:
    ...     db = cat.create_database("main")
    ...     ds = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate"},
    ...                      splits={"train": [b'{"i":0}', b'{"i":1}']})
    ...     cat.split_count(ds.uid, "train")
    2
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .default_location import default_catalog_location
from .errors import (
    AlreadyPublishedError,
    CatalogBusyError,
    CatalogError,
    CatalogUnavailableError,
    ChunkError,
    ConflictError,
    FilterError,
    InvalidNameError,
    NotFoundError,
    OutOfRangeError,
)
from .facets import ClassCount, FilterPage, SplitFilter, SplitStats
from .name_rules import check_name
from .records import DatabaseRecord, DatasetRecord, RepositoryRecord, TagEvent, TagRecord
from .sharding import BlockShuffle, Permutation, ShardPlan, check_chunk, chunk_bounds, split_salt
from .wire import (
    database_json,
    dataset_json,
    repositories_json,
    repository_json,
    tag_event_json,
    tag_json,
    tag_move_json,
    user_json,
)

if TYPE_CHECKING:
    from .catalog import Catalog
    from .pool_access import PoolAccess
    from .publisher import Publisher, PublishKey
    from .streams import PAGE_SIZE, pass_blocks, plan_pass
    from .users import ApiKeyRecord, Principal, UserRecord

__all__ = [
    "Catalog",
    "default_catalog_location",
    "Publisher",
    "PublishKey",
    "DatabaseRecord",
    "RepositoryRecord",
    "TagRecord",
    "TagEvent",
    "DatasetRecord",
    "UserRecord",
    "ApiKeyRecord",
    "Principal",
    "PoolAccess",
    "CatalogError",
    "NotFoundError",
    "ConflictError",
    "InvalidNameError",
    "OutOfRangeError",
    "ChunkError",
    "FilterError",
    "CatalogBusyError",
    "CatalogUnavailableError",
    "AlreadyPublishedError",
    "check_name",
    "ClassCount",
    "SplitFilter",
    "FilterPage",
    "SplitStats",
    "chunk_bounds",
    "check_chunk",
    "Permutation",
    "BlockShuffle",
    "split_salt",
    "ShardPlan",
    "PAGE_SIZE",
    "plan_pass",
    "pass_blocks",
    "database_json",
    "repository_json",
    "repositories_json",
    "tag_json",
    "tag_move_json",
    "tag_event_json",
    "dataset_json",
    "user_json",
]

_LAZY = {
    "Catalog": ".catalog",
    "Publisher": ".publisher",
    "PublishKey": ".publisher",
    "PAGE_SIZE": ".streams",
    "plan_pass": ".streams",
    "pass_blocks": ".streams",
    "ApiKeyRecord": ".users",
    "Principal": ".users",
    "PoolAccess": ".pool_access",
    "UserRecord": ".users",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
