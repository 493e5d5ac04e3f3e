"""Layer 5: the dataset catalog — databases → repositories → immutable datasets ← movable tags.

Open one with :class:`Catalog` (a file path for the embedded SQLite default, or a PostgreSQL URL);
publish with :meth:`Catalog.publisher` / :meth:`Catalog.publish` (one transaction); stream a split's
chunk with :meth:`Catalog.read_range`.

Example:
    >>> import os, tempfile
    >>> with Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite")) as cat:
    ...     db = cat.create_database("main")
    ...     ds = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate"},
    ...                      splits={"train": [b'{"i":0}', b'{"i":1}']})
    ...     cat.split_count(ds.uid, "train")
    2
"""

from .catalog import Catalog
from .errors import (
    CatalogError,
    ConflictError,
    InvalidNameError,
    NotFoundError,
    OutOfRangeError,
)
from .location import default_catalog_location
from .names import check_name
from .publisher import Publisher
from .records import (
    DatabaseRecord,
    DatasetRecord,
    RepositoryRecord,
    TagEvent,
    TagRecord,
)
from .users import ApiKeyRecord, Principal, UserRecord
from .wire import database_json, dataset_json, repository_json, tag_json, user_json

__all__ = [
    "Catalog",
    "default_catalog_location",
    "Publisher",
    "DatabaseRecord",
    "RepositoryRecord",
    "TagRecord",
    "TagEvent",
    "DatasetRecord",
    "UserRecord",
    "ApiKeyRecord",
    "Principal",
    "CatalogError",
    "NotFoundError",
    "ConflictError",
    "InvalidNameError",
    "OutOfRangeError",
    "check_name",
    "database_json",
    "repository_json",
    "tag_json",
    "dataset_json",
    "user_json",
]
