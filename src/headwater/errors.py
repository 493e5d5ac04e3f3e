"""The root of every error headwater raises on purpose, and the whole tree in one picture.

One root (:class:`HeadwaterError`) lets a caller catch "anything headwater refused" without also catching
programming errors. Each layer keeps its own classes in its own ``errors.py``; many also derive from the
builtin a caller would naturally catch (a lookup that misses is a ``KeyError``, bad input a ``ValueError``,
an unreachable store an ``OSError``), so generic code keeps working.

Every class carries ``exit_code``, what the ``headwater`` command exits with when the error ends it
(the CLI prints one ``error: …`` line and exits with it; commands never print and exit themselves):
``2`` — the input or the request is wrong (a bad argument, a name that does not exist, damaged data);
``3`` — nothing could be done (a store or server that cannot be reached, credentials refused, a full disk). ``1`` is
not an error class: a command exits 1 when it finished but some items failed, and says which.

The tree (``tests/test_structure.py`` checks that it lists every class and that each lives in its layer's
``errors.py``)::

    HeadwaterError                                  headwater.errors
    ├── MissingExtraError                           headwater.errors (an optional extra is not installed)
    ├── StorageError (OSError)                      headwater.storage.errors
    │   ├── StoreNotFoundError (FileNotFoundError)
    │   ├── StoreAuthError (PermissionError)        exit 3   (also headwater.pool.PoolAuthError)
    │   ├── StoreUnavailableError                   exit 3
    │   ├── ReadOnlyStoreError
    │   ├── ShortReadError (ConnectionError)
    │   ├── TruncatedFileError                      (a file shorter than its index says: not retried)
    │   ├── DiskFullError                           exit 3   (ENOSPC, EDQUOT, EFBIG on a local write)
    │   ├── HttpStatusError
    │   └── MalformedMultipart (ConnectionError)
    ├── ArchiveError (ValueError)                   headwater.archive.errors
    │   ├── TarFormatError
    │   │   ├── TruncatedTarError
    │   │   └── TooManyMembersError                 (a shard over a server's member cap)
    │   ├── IndexFormatError
    │   ├── ManifestError
    │   ├── UnsafeMemberError
    │   └── PackError
    ├── PoolError                                   headwater.pool.errors
    │   ├── InvalidResourceDataError                (cheesechaser name)
    │   │   ├── ResourceNotFoundError               (cheesechaser name)
    │   │   ├── IntegrityError
    │   │   ├── TruncatedMemberError (TruncatedTarError)  a shard that ends inside the member
    │   │   └── PoolChangedError
    │   ├── FileUnrecognizableError                 (cheesechaser name)
    │   ├── PoolNotFoundError (StoreNotFoundError)  a pool, Hub repo or revision that does not exist
    │   └── LayoutError (ValueError)
    ├── DropletError (ValueError)                   headwater.droplet.errors
    │   └── TemplateError
    ├── ImageRefError (ValueError)                  headwater.droplet.errors
    ├── ImageFetchError (OSError)                   headwater.droplet.errors
    ├── CatalogError                                headwater.catalog.errors
    │   ├── NotFoundError (KeyError)
    │   ├── ConflictError
    │   │   └── AlreadyPublishedError               (a publish's idempotency key was used before)
    │   ├── InvalidNameError (ValueError)
    │   ├── OutOfRangeError (IndexError)
    │   ├── ChunkError (ValueError)                 a chunk outside [0, nchunks), a bad offset
    │   ├── FilterError (ValueError)                a split filter that cannot be parsed or asked for
    │   ├── CatalogBusyError                        exit 3
    │   └── CatalogUnavailableError                 exit 3   (the database is unreachable or dropped us)
    ├── RenderError (ValueError)                    headwater.render.errors (a bad format, size or grid)
    ├── PublishError (ValueError)                   headwater.publish.errors
    │   ├── SourceFormatError
    │   │   ├── CocoFormatError
    │   │   └── YoloFormatError
    │   └── CoordinateError                         (an importer's item problem: a box outside the image)
    ├── ClientError (ValueError)                    headwater.client.errors
    │   └── CacheError
    ├── RemoteError                                 headwater.client.errors
    │   ├── RemoteNotFoundError (NotFoundError)
    │   ├── RemoteAuthError (PermissionError)       exit 3
    │   ├── RemoteRequestError (ClientError)
    │   └── RemoteUnavailableError (ConnectionError) exit 3
    └── ServerError                                 headwater.server.errors
        ├── HubError                                (answered with the Hub's X-Error-Code)
        │   ├── RepoNotFound
        │   ├── RevisionNotFound
        │   ├── EntryNotFound
        │   └── UnsafePathError
        ├── UnsafeUrlError (ValueError)             (a publisher's URL readers must not be sent to)
        ├── RangeNotSatisfiable
        ├── MalformedRange (ValueError)
        ├── AddressInUseError                       (serve: another process listens there)
        ├── ServerConfigError (ValueError)          (serve: settings that cannot work together)
        └── RenderPoolBusy                          (viewer: too many thumbnails queued; 503)

Example:
    >>> from headwater.storage import StoreUnavailableError
    >>> issubclass(StoreUnavailableError, HeadwaterError), StoreUnavailableError.exit_code
    (True, 3)
    >>> str(MissingExtraError("s3", "s3fs", "reading s3:// stores"))
    "reading s3:// stores needs the 's3' extra (s3fs is not installed): pip install 'headwater[s3]'"
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import ClassVar

__all__ = ["HeadwaterError", "MissingExtraError", "require_extra", "USAGE", "UNAVAILABLE"]

USAGE = 2
"""Exit code of an error in the input or the request (the default)."""

UNAVAILABLE = 3
"""Exit code of an error that left nothing to do: unreachable, refused credentials."""


class HeadwaterError(Exception):
    """Base class of every error headwater raises on purpose (bad input, bad data, refused access)."""

    exit_code: ClassVar[int] = USAGE


class MissingExtraError(HeadwaterError, ImportError):
    """An optional extra (``pip install 'headwater[NAME]'``) is needed for what was asked."""

    def __init__(self, extra: str, module: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs the {extra!r} extra ({module} is not installed): "
                         f"pip install 'headwater[{extra}]'")
        self.extra = extra
        self.module_name = module


def require_extra(extra: str, module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it.

    >>> require_extra("server", "json", "serving").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name is not None and module.split(".")[0] != err.name.split(".")[0]:
            raise  # the module is there but something it imports is broken: not a missing extra
        raise MissingExtraError(extra, module, purpose) from None
