"""Image references: where a droplet's image bytes are, and fetching them.

An ``image.paths`` entry is one of:

* ``pool://{pool}/{key}`` — a file inside a pool of indexed tar shards. ``{pool}`` is a *name*, not a
  location: the dataset maps it to the pool's URL (the catalog's ``pools`` column), so a pool can move
  (local disk → S3 → Hugging Face) without rewriting any droplet. Pool names are
  ``[A-Za-z0-9._-]+``. ``{key}`` is the rest of the string, taken literally (no percent-decoding):

  - with an extension (``000123.jpg``, ``train/000123.jpg``) it names a member: the resource is the
    file stem (``000123``), and the member whose name — or else basename — equals the key is read;
  - without one (``1234``) it is a resource id, whose single member is read (when a resource has
    several members, the one image file among them; anything else is an error, not a guess).

  A key of digits is looked up as a string and then as an integer, so increment-id pools work too.
* ``http(s)://…``, ``s3://…``, ``hf://…`` or any ``scheme://`` fsspec understands — read whole through
  :mod:`headwater.storage` (retries, request counting).
* ``file://…`` (percent-decoded) or a plain path (relative paths are relative to ``base_dir``) — local
  files. A droplet is data, and data from elsewhere can name ``/etc/passwd``: pass
  ``allow_local=False`` where droplets are not trusted.

Droplets and pool maps that come from elsewhere (a server's dataset) also choose which hosts a reader's
machine connects to — a loopback admin port, a link-local metadata service. ``allowed_schemes`` limits
the URLs (of images and of pools) to those schemes, except those under one of ``trusted_urls`` (e.g. the
server's own URL); :meth:`headwater.client.Dataset.image_fetcher` sets both for a remote dataset, and
``url_headers`` (URL prefix → headers, e.g. the server's key for the server's own pool URLs, so the images
of a private database can be read by whoever may read the database).

Paths are tried in order; the first that loads wins (datatap's rule).

Example:
    >>> parse_image_ref("pool://coco/train/000123.jpg")
    ImageRef(kind='pool', path='pool://coco/train/000123.jpg', pool='coco', key='train/000123.jpg')
    >>> format_image_ref("coco", 42)
    'pool://coco/42'
    >>> parse_image_ref("https://example.com/a.jpg").kind, parse_image_ref("images/a.jpg").kind
    ('url', 'file')
"""

from __future__ import annotations

import os
import posixpath
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast, overload
from urllib.parse import unquote

from ..errors import HeadwaterError
from ..pool import IndexedPool, Member, ResourceNotFoundError, open_pool
from ..storage import Store, open_store
from .errors import ImageFetchError, ImageRefError
from .schema import Image, ImageAnnotation

__all__ = ["POOL_SCHEME", "ImageFetcher", "ImageRef", "format_image_ref", "parse_image_ref"]

POOL_SCHEME = "pool://"
_POOL_NAME = re.compile(r"[A-Za-z0-9._-]+\Z")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_IMAGE_EXTS = frozenset(
    [".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".avif", ".heic", ".heif", ".jxl", ".jp2",
     ".ppm", ".pgm", ".pbm", ".ico"]
)

ImageSource = ImageAnnotation | Image | str | Sequence[str]


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed image path: ``kind`` is ``"pool"``, ``"url"`` or ``"file"``."""

    kind: Literal["pool", "url", "file"]
    path: str
    pool: str | None = None
    key: str | None = None

    @property
    def local_path(self) -> str | None:
        """The filesystem path of a ``file`` reference (``file://`` URLs percent-decoded)."""
        if self.kind != "file":
            return None
        if self.path.lower().startswith("file://"):
            rest = self.path[7:]
            if rest.lower().startswith("localhost/"):
                rest = rest[9:]
            return unquote(rest)
        return self.path


def parse_image_ref(path: str) -> ImageRef:
    """Classify one ``image.paths`` entry; raises :class:`ImageRefError` for a malformed pool ref.

    >>> parse_image_ref("pool://images/1234").key
    '1234'
    >>> parse_image_ref("pool://images/")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    headwater.droplet.errors.ImageRefError: 'pool://images/': a pool reference is pool://{pool}/{key}
    and the key is empty
    """
    if not isinstance(path, str) or not path:
        raise ImageRefError(f"{path!r}: an image path must be a non-empty string")
    match = _URL.match(path)
    if match is None:
        return ImageRef("file", path)
    scheme = match.group(1).lower()
    if scheme == "file":
        return ImageRef("file", path)
    if scheme != "pool":
        return ImageRef("url", path)
    pool, sep, key = path[len(POOL_SCHEME):].partition("/")
    if not _POOL_NAME.match(pool):
        raise ImageRefError(f"{path!r}: a pool reference is pool://{{pool}}/{{key}} and {pool!r} is not a pool "
                            "name (letters, digits, '.', '_', '-')")
    if not sep or not key:
        raise ImageRefError(f"{path!r}: a pool reference is pool://{{pool}}/{{key}} and the key is empty")
    if key.startswith("/") or "\0" in key:
        raise ImageRefError(f"{path!r}: the key must not start with '/' or contain NUL")
    return ImageRef("pool", path, pool, key)


def format_image_ref(pool: str, key: str | int) -> str:
    """``pool://{pool}/{key}``, checked so that :func:`parse_image_ref` reads it back.

    >>> format_image_ref("my pool", "a.jpg")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    headwater.droplet.errors.ImageRefError: 'pool://my pool/a.jpg': a pool reference is pool://{pool}/{key}
    and 'my pool' is not a pool name (letters, digits, '.', '_', '-')
    """
    ref = f"{POOL_SCHEME}{pool}/{key}"
    parsed = parse_image_ref(ref)
    if parsed.pool != pool:
        raise ImageRefError(f"{pool!r} is not a pool name (letters, digits, '.', '_', '-')")
    return ref


def _paths_of(item: ImageSource) -> list[str]:
    if isinstance(item, ImageAnnotation):
        return list(item.image.paths)
    if isinstance(item, Image):
        return list(item.paths)
    if isinstance(item, str):
        return [item]
    return list(item)


class ImageFetcher:
    """Reads the image bytes of droplets; pool references go through the pool layer's planned reads.

    ``pools`` maps the pool names used in ``pool://`` references to a pool URL (opened lazily with
    :func:`headwater.pool.open_pool`) or an open :class:`~headwater.pool.IndexedPool`.
    :meth:`fetch_many` resolves a whole batch first and reads each pool's members in one planned
    batch, so N images in one shard cost a few merged range reads, not N requests.

    >>> import os, tempfile
    >>> from headwater.archive import pack_directory
    >>> src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> for i in range(3):
    ...     _ = open(os.path.join(src, f"{i}.jpg"), "wb").write(b"jpeg %d" % i)
    >>> _ = pack_directory(src, dst, silent=True)
    >>> fetcher = ImageFetcher({"imgs": dst})
    >>> fetcher.fetch(Image(["pool://imgs/1.jpg"]))
    b'jpeg 1'
    >>> fetcher.fetch_many([Image(["pool://imgs/2"]), Image(["pool://imgs/0.jpg"])])
    [b'jpeg 2', b'jpeg 0']
    """

    def __init__(
        self,
        pools: Mapping[str, str | IndexedPool] | None = None,
        *,
        allow_local: bool = True,
        base_dir: str | None = None,
        max_workers: int = 8,
        allowed_schemes: Iterable[str] | None = None,
        trusted_urls: Iterable[str] = (),
        url_headers: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._pool_specs = dict(pools or {})
        self.allowed_schemes = None if allowed_schemes is None else frozenset(s.lower() for s in allowed_schemes)
        self.trusted_urls = tuple(trusted_urls)
        self.url_headers = {prefix: dict(h) for prefix, h in (url_headers or {}).items()}
        self._pools: dict[str, IndexedPool] = {}
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()
        self.allow_local = allow_local
        self.base_dir = base_dir
        self.max_workers = max_workers

    def __getstate__(self) -> dict[str, object]:
        """Picklable (for DataLoader workers under ``spawn``): pools opened from URLs are reopened there."""
        return {"pools": self._pool_specs, "allow_local": self.allow_local, "base_dir": self.base_dir,
                "max_workers": self.max_workers, "allowed_schemes": self.allowed_schemes,
                "trusted_urls": self.trusted_urls, "url_headers": self.url_headers}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["pools"], allow_local=state["allow_local"], base_dir=state["base_dir"],  # type: ignore[misc]
                      max_workers=state["max_workers"], allowed_schemes=state["allowed_schemes"],
                      trusted_urls=state["trusted_urls"], url_headers=state["url_headers"])

    def check_url(self, url: str) -> None:
        """Raise :class:`ImageRefError` unless this fetcher may open ``url`` (see the module docstring)."""
        if self.allowed_schemes is None or any(url.startswith(t) for t in self.trusted_urls):
            return
        match = _URL.match(url)
        scheme = match.group(1).lower() if match else "file"
        if scheme == "file" and self.allow_local:
            return
        if scheme not in self.allowed_schemes:
            allowed = sorted(self.allowed_schemes) + [t + "…" for t in self.trusted_urls]
            raise ImageRefError(f"{url!r}: this fetcher does not open {scheme}:// URLs (it opens "
                                f"{', '.join(allowed)}); pass allowed_schemes=… to open them if you trust where "
                                "the dataset came from")

    def pool(self, name: str) -> IndexedPool:
        """The pool called ``name`` (opened once); :class:`ImageRefError` if it is not configured."""
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                spec = self._pool_specs.get(name)
                if spec is None:
                    known = ", ".join(sorted(self._pool_specs)) or "none"
                    raise ImageRefError(f"pool {name!r} is not configured (known pools: {known})")
                if not isinstance(spec, IndexedPool):
                    self.check_url(spec)
                pool = spec if isinstance(spec, IndexedPool) else open_pool(spec, **self._store_options(spec))
                self._pools[name] = pool
            return pool

    def _store(self, root: str) -> Store:
        with self._lock:
            store = self._stores.get(root)
            if store is None:
                store = self._stores[root] = open_store(root, **self._store_options(root))
            return store

    def _store_options(self, url: str) -> dict[str, Any]:
        headers = next((h for prefix, h in self.url_headers.items() if url.startswith(prefix)), None)
        return {"headers": headers} if headers else {}

    def locate(self, ref: ImageRef | str) -> Member:
        """The pool member a ``pool://`` reference names (see the module docstring for the rules)."""
        found = self.locate_many([ref])[0]
        if isinstance(found, Exception):
            raise found
        return found

    def locate_many(self, refs: Sequence[ImageRef | str]) -> list[Member | Exception]:
        """:meth:`locate` for many references: for each, its member or the error :meth:`locate` raises.

        Why: the one rule for what a reference names, at one pool query per pool for the whole batch
        (:meth:`~headwater.pool.IndexedPool.locate_many`) — a publish checks every reference of millions
        of droplets with it. A pool that cannot be opened is every one of its references' error.
        """
        parsed = [parse_image_ref(r) if isinstance(r, str) else r for r in refs]
        out: list[Member | Exception | None] = [None] * len(parsed)
        by_pool: dict[str, list[int]] = {}
        for i, ref in enumerate(parsed):
            if ref.kind != "pool" or ref.pool is None or ref.key is None:
                out[i] = ImageRefError(f"{ref.path!r} is not a pool reference")
            else:
                by_pool.setdefault(ref.pool, []).append(i)
        for name, indexes in by_pool.items():
            try:
                pool = self.pool(name)
            except Exception as err:  # noqa: BLE001 - the error of each reference into this pool
                for i in indexes:
                    out[i] = err
                continue
            rids = {i: self._resource_id(parsed[i]) for i in indexes}
            members: dict[int, list[Member]] = {}
            todo = indexes
            for as_int in (False, True):  # the id as written, then as a number (increment-id pools)
                if as_int:
                    todo = [i for i in todo if rids[i].isdigit()]
                if not todo:
                    break
                results = pool.locate_many([int(rids[i]) if as_int else rids[i] for i in todo])
                missed = []
                for i, result in zip(todo, results, strict=True):
                    if isinstance(result, ResourceNotFoundError):
                        missed.append(i)
                    elif isinstance(result, Exception):
                        out[i] = result
                    else:
                        members[i] = result
                todo = missed
            for i in indexes:
                if out[i] is None:
                    out[i] = self._pick(parsed[i], rids[i], members.get(i))
        return cast("list[Member | Exception]", out)

    @staticmethod
    def _resource_id(ref: ImageRef) -> str:
        """The resource id a pool key names: the file stem when the key has an extension, else the key."""
        assert ref.key is not None
        stem, ext = posixpath.splitext(posixpath.basename(ref.key))
        return stem if ext else ref.key

    @staticmethod
    def _pick(ref: ImageRef, rid: str, members: list[Member] | None) -> Member | Exception:
        """The member of resource ``rid``'s ``members`` that ``ref`` names, or why there is none or several."""
        assert ref.key is not None
        key = ref.key
        if members is not None and len(members) == 1 and members[0].location.filename == key:
            return members[0]  # the common case: the key is the one member's name
        base = posixpath.basename(key)
        ext = posixpath.splitext(base)[1]
        if not members:
            return ResourceNotFoundError(f"{ref.path}: resource {rid!r} is not in pool {ref.pool!r}")
        if ext:
            exact = [m for m in members if m.location.filename == key]
            named = exact or [m for m in members if posixpath.basename(m.location.filename) == base]
            if len(named) == 1:
                return named[0]
            if not named:
                return ResourceNotFoundError(f"{ref.path}: no member named {key!r} in pool {ref.pool!r}")
            names = sorted(m.location.filename for m in named)
            return ImageRefError(f"{ref.path}: {len(named)} members match {key!r} ({names}); use the full member path")
        if len(members) == 1:
            return members[0]
        images = [m for m in members if posixpath.splitext(m.location.filename)[1].lower() in _IMAGE_EXTS]
        if len(images) == 1:
            return images[0]
        names = sorted(m.location.filename for m in members)
        return ImageRefError(f"{ref.path}: resource {rid!r} has several files {names}; name one, e.g. "
                             f"pool://{ref.pool}/{names[0]}")

    def read_ref(self, ref: ImageRef | str) -> bytes:
        """The bytes of one path (no fallback to other paths)."""
        if isinstance(ref, str):
            ref = parse_image_ref(ref)
        if ref.kind == "pool":
            member = self.locate(ref)
            assert ref.pool is not None  # locate() refuses a pool reference without one
            for _member, data in self.pool(ref.pool).read_members([member]):
                return data
            raise ResourceNotFoundError(f"{ref.path}: nothing read")  # pragma: no cover
        if ref.kind == "url":
            self.check_url(ref.path)
            root, _, name = ref.path.rstrip("/").rpartition("/")
            return self._store(root).read_bytes(name)
        if not self.allow_local:
            raise ImageRefError(f"{ref.path!r}: local paths are not allowed by this fetcher")
        local = ref.local_path or ref.path
        if self.base_dir is not None:
            local = os.path.join(self.base_dir, local)
        local = os.path.abspath(local)
        root, name = os.path.split(local)
        return self._store(root).read_bytes(name)

    def fetch(self, item: ImageSource) -> bytes:
        """The image bytes of a droplet (or ``Image``, or path list): the first path that loads.

        Raises :class:`ImageFetchError` listing why each path failed.
        """
        paths = _paths_of(item)
        errors: dict[str, str] = {}
        for path in paths:
            try:
                return self.read_ref(path)
            except (HeadwaterError, OSError) as err:
                errors[path] = f"{type(err).__name__}: {err}"
        if not paths:
            raise ImageFetchError("the image has no paths")
        detail = "; ".join(f"{p} ({e})" for p, e in errors.items())
        raise ImageFetchError(f"no path of the image could be read: {detail}", errors)

    @overload
    def fetch_many(self, items: Iterable[ImageSource], *, errors: Literal["raise"] = "raise") -> list[bytes]: ...
    @overload
    def fetch_many(self, items: Iterable[ImageSource], *,
                   errors: Literal["return"]) -> list[bytes | ImageFetchError]: ...
    def fetch_many(self, items: Iterable[ImageSource], *,
                   errors: Literal["raise", "return"] = "raise") -> list[bytes] | list[bytes | ImageFetchError]:
        """Image bytes of many droplets, in order; pool references are read in planned batches.

        The first path of each item is tried in one batch per pool (merged range reads, each member's
        sha256 checked); items whose first path is not a pool reference, or failed, fall back to
        :meth:`fetch` (all paths in order) on a thread pool. Raises :class:`ImageFetchError` for the
        first item that cannot be read at all (its index in the message) — or, with
        ``errors="return"``, puts that error in the item's place and reads the rest (a grid of
        thumbnails shows the one bad image instead of failing).
        """
        if errors not in ("raise", "return"):
            raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
        items = list(items)
        out: list[bytes | ImageFetchError | None] = [None] * len(items)
        batches: dict[str, dict[tuple[str, str], tuple[Member, list[int]]]] = {}
        rest: list[int] = []
        pooled: list[tuple[int, ImageRef]] = []
        for i, item in enumerate(items):
            paths = _paths_of(item)
            try:
                ref = parse_image_ref(paths[0]) if paths else None
            except (HeadwaterError, OSError):
                ref = None
            if ref is None or ref.kind != "pool" or ref.pool is None:  # locate() refuses no pool too
                rest.append(i)
            else:
                pooled.append((i, ref))
        # one pool query for the whole batch (a query per item was a quarter of a DataLoader worker's time)
        for (i, ref), found in zip(pooled, self.locate_many([ref for _, ref in pooled]), strict=True):
            if isinstance(found, (HeadwaterError, OSError)):
                rest.append(i)
                continue
            if isinstance(found, Exception):
                raise found
            key = (found.location.tar_file, found.location.filename)
            batch = batches.setdefault(cast(str, ref.pool), {})
            batch.setdefault(key, (found, []))[1].append(i)
        for name, batch in batches.items():
            try:
                for member, data in self.pool(name).read_members([m for m, _ in batch.values()],
                                                                 max_workers=self.max_workers):
                    for i in batch[(member.location.tar_file, member.location.filename)][1]:
                        out[i] = data
            except (HeadwaterError, OSError):
                pass  # whatever was not read falls back to the per-item path below
            rest.extend(i for _m, indices in batch.values() for i in indices if out[i] is None)
        if rest:
            rest.sort()

            def one(i: int) -> tuple[int, bytes | ImageFetchError]:
                try:
                    return i, self.fetch(items[i])
                except ImageFetchError as err:
                    return i, err

            workers = max(1, min(self.max_workers, len(rest)))
            with ThreadPoolExecutor(max_workers=workers) as ex:
                results = sorted(ex.map(one, rest), key=lambda r: r[0])
            for i, result in results:
                if isinstance(result, ImageFetchError) and errors == "raise":
                    raise ImageFetchError(f"item {i}: {result}", result.errors)
                out[i] = result
        # every item is set: read in a batch, or by fetch(), which raised or returned its error
        return cast("list[bytes] | list[bytes | ImageFetchError]", out)
