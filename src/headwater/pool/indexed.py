"""``IndexedPool``: a DataPool over tar shards with indexes, resolving ids without per-file requests.

Resolution, cheapest first: the pool manifest (one local SQLite probe; a remote manifest is fetched once
and cached by URL, size and ETag), else the indexes of the shards the layout names (each fetched once per
pool object, thread-safe). Reading: every wanted member of a batch goes through the range planner, so a
batch of ids costs a few merged range reads per shard instead of one GET per file.

The cheesechaser hooks keep their names — ``_request_possible_archives``, ``_file_to_resource_id``,
``_get_dst_filename``, ``_request_resource_by_id`` — so subclasses written for cheesechaser carry over.

Example:
    >>> import os, tempfile
    >>> from headwater.archive import pack_directory
    >>> src, pool_dir, out = tempfile.mkdtemp(), tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> for i in range(5):
    ...     _ = open(os.path.join(src, f"{i}.txt"), "w").write(f"file {i}")
    >>> _ = pack_directory(src, pool_dir, silent=True)
    >>> pool = IndexedPool(pool_dir)
    >>> with pool.mock_resource(3, None) as (td, _info):
    ...     open(os.path.join(td, "3.txt")).read()
    'file 3'
    >>> pool.batch_download_to_directory([0, 1, 9], out, silent=True).summary().split(";")[0]
    'downloaded 2, skipped 0, missing 1, failed 0'
    >>> [loc.tar_file for loc in StorePool(pool_dir)._request_resource_by_id(3)]
    ['shard-00000.tar']
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, cast

from tqdm import tqdm

from ..archive import (
    MANIFEST_NAME,
    Manifest,
    TarIndex,
    check_member_name,
    find_shards,
    holds_member,
    load_index,
    safe_target,
)
from ..storage import (
    DiskFullError,
    Store,
    StoreAuthError,
    StoreNotFoundError,
    atomic_path,
    cache_dir,
    open_store,
    write_bytes_atomic,
)
from .base import DataPool, split_resource_item, write_metainfo
from .errors import FileUnrecognizableError, PoolNotFoundError, ResourceNotFoundError
from .fetch import check_sha256, fetch_wanted
from .layouts import Layout, ScanLayout, layout_from_name
from .location import DataLocation, Member
from .planner import PlanPolicy, Wanted, default_policy
from .report import DownloadReport

__all__ = ["IndexedPool", "StorePool", "open_pool"]

log = logging.getLogger(__name__)


class IndexedPool(DataPool):
    """A pool of indexed tar shards in any store (see module docstring)."""

    def __init__(
        self,
        data_store: Store | str,
        index_store: Store | str | None = None,
        *,
        layout: Layout | None = None,
        plan: PlanPolicy | None = None,
        use_manifest: bool = True,
        batch_size: int = 2048,
    ) -> None:
        self.data_store = data_store if isinstance(data_store, Store) else open_store(data_store)
        if index_store is None:
            self.index_store = self.data_store
        else:
            self.index_store = index_store if isinstance(index_store, Store) else open_store(index_store)
        self.layout: Layout = layout if layout is not None else ScanLayout()
        self.plan = plan or default_policy(self.data_store)
        self.batch_size = batch_size
        self._use_manifest = use_manifest
        self._manifest: Manifest | bool | None = None  # False: looked, none there
        self._tar_infos: dict[str, dict[Hashable, list[str]]] = {}
        self._indexes: dict[str, TarIndex | None] = {}
        self._index_failures: dict[str, Exception] = {}  # during a batch download: shard → why its index failed
        self._lock = threading.RLock()
        self._shard_locks: dict[str, threading.Lock] = {}

    # -- cheesechaser hooks -------------------------------------------------------------------------
    def _request_possible_archives(self, resource_id: Any) -> list[str] | None:
        return self.layout.candidates(resource_id)

    def _file_to_resource_id(self, tar_file: str, filename: str) -> Hashable:
        return self.layout.resource_of(tar_file, filename)

    def _get_dst_filename(self, location: DataLocation) -> str:
        return os.path.basename(location.filename)

    def _request_resource_by_id(self, resource_id: Any) -> list[DataLocation]:
        return [m.location for m in self.locate(resource_id)]

    # -- resolution ---------------------------------------------------------------------------------
    def manifest(self) -> Manifest | None:
        """The pool manifest, fetched (once) if the index store has one."""
        with self._lock:
            if self._manifest is None:
                self._check_exists()
                self._manifest = self._open_manifest() if self._use_manifest else False
            # not ``self._manifest or None``: a Manifest's truth value would run COUNT(*) on every call
            return self._manifest if isinstance(self._manifest, Manifest) else None

    def _check_exists(self) -> None:
        """:class:`PoolNotFoundError` when a store of the pool is not there (a mistyped folder, a Hub repo or
        revision that does not exist), instead of reporting every id as missing. Runs once, on first use."""
        stores = {id(s): s for s in (self.index_store, self.data_store)}
        for store in stores.values():
            if store.root_exists() is False:
                raise PoolNotFoundError(f"no pool at {store.url}: no such folder")

    def _open_manifest(self) -> Manifest | bool:
        store = self.index_store
        local = store.local_path(MANIFEST_NAME)
        if local is not None:
            return Manifest(local) if os.path.exists(local) else False
        try:
            info = store.info(MANIFEST_NAME)
        except PoolNotFoundError:  # the pool itself is not there (a Hub repo or revision): not "no manifest"
            raise
        except StoreNotFoundError:
            return False
        version = [str(info.get(k) or "") for k in ("ETag", "Last-Modified")]
        folder = cache_dir("manifests")
        if any(version):
            tag = "|".join([str(info.get("size")), *version, store.describe(MANIFEST_NAME)])
            path = os.path.join(folder, hashlib.sha256(tag.encode()).hexdigest()[:40] + ".sqlite")
            data = None if os.path.exists(path) else store.read_bytes(MANIFEST_NAME)
        else:  # nothing tells versions apart: fetch it, and key the local copy by its content
            data = store.read_bytes(MANIFEST_NAME)
            path = os.path.join(folder, "content-" + hashlib.sha256(data).hexdigest()[:40] + ".sqlite")
        if data is not None and not os.path.exists(path):
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                f.write(data)
        return Manifest(path)

    def shard_index(self, shard: str) -> TarIndex | None:
        """The index of ``shard`` (fetched once), or ``None`` if the shard has no index."""
        with self._lock:
            if shard in self._indexes:
                return self._indexes[shard]
            failed = self._index_failures.get(shard)
            shard_lock = self._shard_locks.setdefault(shard, threading.Lock())
        if failed is not None:  # already failed in this batch download: not fetched again for each resource
            raise failed
        with shard_lock:
            if shard not in self._indexes:
                try:
                    index: TarIndex | None = load_index(self.index_store, shard)
                except PoolNotFoundError:
                    raise
                except StoreNotFoundError:
                    index = None
                with self._lock:
                    self._indexes[shard] = index
        return self._indexes[shard]

    def _make_tar_info(self, tar_file: str) -> dict[Hashable, list[str]]:
        """resource id → member names of one shard (cheesechaser's per-archive map)."""
        with self._lock:
            if tar_file in self._tar_infos:
                return self._tar_infos[tar_file]
        index = self.shard_index(tar_file)
        mapping: dict[Hashable, list[str]] = {}
        for name in (index.files if index else {}):
            try:
                rid = self._file_to_resource_id(tar_file, name)
            except FileUnrecognizableError:
                continue
            mapping.setdefault(rid, []).append(name)
        with self._lock:
            self._tar_infos[tar_file] = mapping
        return mapping

    def _prefetch_indexes(self, resource_ids: Iterable[Any], max_workers: int = 8) -> None:
        """Fetch the indexes a batch will need concurrently (only when there is no manifest).

        A shard whose index cannot be had (malformed, unreachable after the store's retries) fails only the
        resources that may be in it: the failure is recorded (:attr:`_index_failures`, for the rest of this
        batch download, so it is not fetched again per resource) and :meth:`locate` reports it for them.
        Refused credentials and a pool that is not there still stop the batch.
        """
        if self.manifest() is not None and self.layout.stem_keyed:
            return
        shards: set[str] = set()
        for rid in resource_ids:
            candidates = self._request_possible_archives(rid)
            if candidates is None:  # any shard may hold it (scan layout): locate() reads them all anyway
                shards.update(self._all_shards())
                break
            shards.update(candidates)
        with self._lock:
            shards -= self._indexes.keys() | self._index_failures.keys()
        if len(shards) > 1:
            with ThreadPoolExecutor(max_workers=max_workers) as ex:
                list(ex.map(self._prefetch_index, sorted(shards)))

    def _prefetch_index(self, shard: str) -> None:
        try:
            self._make_tar_info(shard)
        except (StoreAuthError, PoolNotFoundError):
            raise
        except Exception as err:  # noqa: BLE001 - recorded; reported for each resource it concerns
            with self._lock:
                self._index_failures[shard] = err

    def _all_shards(self) -> list[str]:
        manifest = self.manifest()
        if manifest is not None:
            return [row.path for row in manifest.shards()]
        return find_shards(self.index_store)

    def locate(self, resource_id: Any) -> list[Member]:
        """Every file of ``resource_id`` with its byte range; raises :class:`ResourceNotFoundError`."""
        found = self.locate_many([resource_id])[0]
        if isinstance(found, Exception):
            raise found
        return found

    def locate_many(self, resource_ids: Sequence[Any]) -> list[list[Member] | Exception]:
        """:meth:`locate` for many ids: for each, its members or the error :meth:`locate` would raise.

        Why: this is the one lookup rule, and with a manifest a batch costs one query
        (:meth:`~headwater.archive.Manifest.lookup_many`) instead of one per id — what lets a publish check
        millions of ``pool://`` references. Ids the manifest does not answer fall back to the shard indexes,
        one by one, exactly as :meth:`locate` does.
        """
        out: list[list[Member] | Exception | None] = [None] * len(resource_ids)
        manifest = self.manifest()
        if manifest is not None and self.layout.stem_keyed:
            rows = manifest.lookup_many({str(rid) for rid in resource_ids})
            for i, rid in enumerate(resource_ids):
                candidates = self._request_possible_archives(rid)
                found = []
                for row in rows.get(str(rid), ()):
                    if candidates is not None and row.shard not in candidates:
                        continue
                    try:
                        if str(self._file_to_resource_id(row.shard, row.name)) != str(rid):
                            continue
                    except FileUnrecognizableError:
                        continue
                    loc = DataLocation(rid, row.shard, row.name)
                    found.append(Member(loc, row.offset, row.size, row.sha256, row.shard_size))
                if found:
                    out[i] = found
                elif candidates is None:
                    out[i] = ResourceNotFoundError(f"Resource {rid!r} not found.")
        for i, rid in enumerate(resource_ids):
            if out[i] is None:
                try:
                    out[i] = self._locate_in_indexes(rid)
                except (StoreAuthError, PoolNotFoundError):
                    raise
                except Exception as err:  # noqa: BLE001 - this id's error, as locate() raises it
                    out[i] = err
        return cast("list[list[Member] | Exception]", out)

    def _locate_in_indexes(self, resource_id: Any) -> list[Member]:
        """:meth:`locate` through the shard indexes (no manifest, or the manifest does not have it)."""
        candidates = self._request_possible_archives(resource_id)
        unreadable: Exception | None = None  # a shard whose index failed: it may hold the resource
        for shard in candidates if candidates is not None else self._all_shards():
            try:
                tar_info = self._make_tar_info(shard)
            except (StoreAuthError, PoolNotFoundError):
                raise
            except Exception as err:  # noqa: BLE001 - the resource may still be in another shard
                unreadable = unreadable or err
                continue
            names = tar_info.get(resource_id)
            if not names and not isinstance(resource_id, str):
                names = tar_info.get(str(resource_id))
            if names:
                index = self.shard_index(shard)
                assert index is not None
                return [
                    Member(DataLocation(resource_id, shard, n), index.files[n].offset, index.files[n].size,
                           index.files[n].sha256, index.filesize)
                    for n in names
                ]
        if unreadable is not None:
            raise unreadable
        raise ResourceNotFoundError(f"Resource {resource_id!r} not found.")

    # -- reading -----------------------------------------------------------------------------------
    def read_members(self, members: Iterable[Member], *, max_workers: int = 12) -> Iterator[tuple[Member, bytes]]:
        """Bytes of many members through the range planner, each checked against its sha256.

        Raises the first read or integrity error; use :meth:`batch_download_to_directory` for per-item
        error reports.
        """
        members = list(members)
        wanted = [Wanted(m.location.tar_file, m.offset, m.size, i, m.location.filename) for i, m in enumerate(members)]
        sizes = {m.location.tar_file: m.shard_size for m in members}
        for item, data in fetch_wanted(self.data_store, wanted, sizes, policy=self.plan, max_workers=max_workers):
            if isinstance(data, BaseException):
                raise data
            member = members[item.key]
            check_sha256(data, member.sha256, f"{member.location.tar_file}:{member.location.filename}")
            yield member, bytes(data)

    @contextmanager
    def mock_resource(self, resource_id: Any, resource_info: Any, silent: bool = False) -> Iterator[tuple[str, Any]]:
        """Download ``resource_id``'s files into a temp directory and yield ``(directory, resource_info)``."""
        members = self.locate(resource_id)
        for member in members:
            check_member_name(member.location.filename)
        with tempfile.TemporaryDirectory(prefix="headwater-") as td:
            for member, data in self.read_members(members):  # a full disk: DiskFullError naming the file
                write_bytes_atomic(safe_target(td, self._get_dst_filename(member.location)), data)
            yield td, resource_info

    # -- batch download ----------------------------------------------------------------------------
    def _to_fetch(self, dst_dir: str, members: list[Member]) -> list[Member]:
        """The files of a resource not yet in ``dst_dir`` with their size and sha256 (resume: a file
        already there whole is not fetched again, even when another file of its resource is missing).

        Every member name must pass :func:`check_member_name`, the one policy that ``extract`` and
        ``verify`` apply to the same member (raises :class:`~headwater.archive.UnsafeMemberError` before
        anything is read). A fresh directory is the common case, so a missing file is detected first with
        one ``lstat`` of the plain joined path; only a file that exists pays for :func:`safe_target`'s
        ``realpath`` walk.
        """
        todo = []
        for m in members:
            check_member_name(m.location.filename)
            name = self._get_dst_filename(m.location)
            if (not os.path.lexists(os.path.join(dst_dir, check_member_name(name)))
                    or not holds_member(safe_target(dst_dir, name), m.size, m.sha256)):
                todo.append(m)
        return todo

    def batch_download_to_directory(
        self,
        resource_ids: Iterable[Any],
        dst_dir: str,
        max_workers: int = 12,
        save_metainfo: bool = True,
        metainfo_fmt: str = "{resource_id}_metainfo.json",
        max_downloads: int | None = None,
        silent: bool | None = False,
    ) -> DownloadReport:
        """Download resources into ``dst_dir`` with planned range reads.

        * ``max_downloads`` is exact: at most that many resources end up delivered (downloaded, or
          already complete in ``dst_dir`` and skipped — a re-run resumes rather than adding more).
        * Files are written atomically after their sha256 is checked; metainfo JSON goes to ``dst_dir``.
        * Transient errors are retried by the store; an authorisation failure stops the batch and is
          raised as :class:`~headwater.pool.errors.PoolAuthError`; so does a full disk
          (:class:`~headwater.storage.DiskFullError`, naming the file; a re-run resumes).
        * A damaged pool fails only what it must: a shard cut short fails the members it cuts off
          (:class:`~headwater.pool.errors.TruncatedMemberError`), a shard whose index cannot be read fails the
          resources that may be in it; every other resource is delivered. Unsafe member names are refused
          by the same rule as ``extract`` and ``verify``.
        * Work in flight is bounded by ``batch_size`` resources and ``max_workers`` reads.
        * ``silent``: no progress bar (None: a bar only when stderr is a terminal).
        """
        start = time.perf_counter()
        stores = {id(self.data_store): self.data_store, id(self.index_store): self.index_store}
        before = [(s.stats.requests, s.stats.bytes_read, s.stats.retries) for s in stores.values()]
        os.makedirs(dst_dir, exist_ok=True)
        learning = self._learn_multi_range()
        report = DownloadReport()
        items = iter(resource_ids)
        total = len(cast(Sized, resource_ids)) if hasattr(resource_ids, "__len__") else None
        if max_downloads is not None and total is not None:
            total = min(total, max_downloads)
        try:
            with tqdm(total=total, desc="Downloading", unit="res", disable=silent) as bar:
                while max_downloads is None or report.delivered < max_downloads:
                    room = (self.batch_size if max_downloads is None
                            else min(self.batch_size, max_downloads - report.delivered))
                    batch = self._take_batch(items, room, dst_dir, save_metainfo, metainfo_fmt, report, bar)
                    if batch is None:
                        break
                    if learning is not None:  # asked while the manifest came: one round trip, done by now
                        learning.join()
                        learning = None
                    self._download_batch(batch, dst_dir, max_workers, save_metainfo, metainfo_fmt, report, bar)
        finally:
            if learning is not None:  # its request is counted in this batch's report
                learning.join()
            with self._lock:  # an index that failed in this batch is asked again by the next one
                self._index_failures.clear()
        for store, (req, nbytes, retries) in zip(stores.values(), before, strict=True):
            report.requests += store.stats.requests - req
            report.bytes_read += store.stats.bytes_read - nbytes
            report.retries += store.stats.retries - retries
        report.seconds = time.perf_counter() - start
        return report

    def _learn_multi_range(self) -> threading.Thread | None:
        """Start asking, in the background, whether the data store's server answers multi-range GETs
        (:meth:`~headwater.storage.Store.learn_multi_range` on the pool manifest), so that the first read of
        the batch does not have to find out alone while every other read waits. Only for a store whose
        answer is not known and that holds the manifest (a file known to be there once the pool has one)."""
        store = self.data_store
        if store.multi_range is not None or store is not self.index_store or not self._use_manifest:
            return None
        thread = threading.Thread(target=store.learn_multi_range, args=(MANIFEST_NAME,), daemon=True,
                                  name="headwater-multi-range")
        thread.start()
        return thread

    def _take_batch(
        self, items: Iterator[Any], room: int, dst_dir: str, save_metainfo: bool, metainfo_fmt: str,
        report: DownloadReport, bar: tqdm,
    ) -> list[tuple[Any, Any, list[Member]]] | None:
        """Resolve up to ``room`` resources that need downloading; ``None`` when the input is exhausted."""
        batch: list[tuple[Any, Any, list[Member]]] = []
        exhausted = False
        while len(batch) < room:
            chunk = [split_resource_item(item) for item in itertools.islice(items, room - len(batch))]
            if not chunk:
                exhausted = True
                break
            self._prefetch_indexes(rid for rid, _info in chunk)
            try:  # one manifest query for the chunk, not one per id (~0.3 ms each: the cold start of a batch)
                found = self.locate_many([rid for rid, _info in chunk])
            except (StoreAuthError, PoolNotFoundError):
                raise
            except Exception as err:  # noqa: BLE001 - reported for every resource of the chunk
                found = [err] * len(chunk)
            for (rid, info), located in zip(chunk, found, strict=True):
                try:
                    if isinstance(located, Exception):
                        raise located
                    members = self._to_fetch(dst_dir, located)
                    meta = None
                    if save_metainfo and info is not None:
                        meta = safe_target(dst_dir, metainfo_fmt.format(resource_id=rid))
                    if not members and (meta is None or os.path.exists(meta)):
                        report.skipped.append(rid)
                        bar.update()
                        room -= 1  # a skipped resource is delivered too (max_downloads counts it)
                        continue
                except ResourceNotFoundError:
                    report.missing.append(rid)
                    bar.update()
                    continue
                except StoreAuthError:
                    raise
                except Exception as err:  # noqa: BLE001 - reported per resource
                    report.failed[rid] = f"{type(err).__name__}: {err}"
                    bar.update()
                    continue
                batch.append((rid, info, members))
        if exhausted and not batch:
            return None
        return batch

    def _download_batch(
        self, batch: list[tuple[Any, Any, list[Member]]], dst_dir: str, max_workers: int, save_metainfo: bool,
        metainfo_fmt: str, report: DownloadReport, bar: tqdm,
    ) -> None:
        wanted: list[Wanted] = []
        remaining: dict[int, int] = {}

        def delivered(r: int) -> None:
            rid, info, _members = batch[r]
            if save_metainfo and info is not None:
                write_metainfo(dst_dir, metainfo_fmt, rid, info)
            report.downloaded.append(rid)
            bar.update()

        for r, (_rid, _info, members) in enumerate(batch):
            remaining[r] = len(members)
            if not members:  # its files were all there already: only the metainfo was missing
                delivered(r)
            for m in members:
                wanted.append(Wanted(m.location.tar_file, m.offset, m.size, (r, m), m.location.filename))
        sizes = {w.shard: w.key[1].shard_size for w in wanted}

        root = os.path.realpath(dst_dir)

        def write(item: Wanted, data: memoryview) -> None:  # runs in the reading worker thread
            member = item.key[1]
            check_sha256(data, member.sha256, f"{member.location.tar_file}:{member.location.filename}")
            write_bytes_atomic(_target(root, dst_dir, self._get_dst_filename(member.location)), data)

        failed: set[int] = set()
        for item, outcome in fetch_wanted(self.data_store, wanted, sizes, policy=self.plan,
                                          max_workers=max_workers, process=write):
            r = item.key[0]
            rid = batch[r][0]
            if r in failed:
                continue
            if isinstance(outcome, DiskFullError):  # every further write would fail too: stop, named
                raise outcome
            if isinstance(outcome, BaseException):  # read, integrity, unsafe name or write error
                failed.add(r)
                report.failed[rid] = f"{type(outcome).__name__}: {outcome}"
                bar.update()
                continue
            report.files += 1
            remaining[r] -= 1
            if remaining[r] == 0:
                delivered(r)


def _target(root: str, dst_dir: str, name: str) -> str:
    """:func:`safe_target` of ``name`` in ``dst_dir`` (whose realpath is ``root``), without its ``realpath``
    walk (an ``lstat`` per path component) in the common case of a batch download: a flat name that is not
    in the folder yet, whose target is then ``root/name`` exactly. Anything else takes the full check."""
    if "/" not in name and not os.path.lexists(path := os.path.join(root, check_member_name(name))):
        return path
    return safe_target(dst_dir, name)


class StorePool(IndexedPool):
    """``StorePool("s3://bucket/pool", layout="increment-id")`` — any fsspec URL, the layout given by name.

    ``layout``: ``"sequential"``/``"scan"``, ``"increment-id"`` (with ``base_level`` and ``base_dir``), a
    ``.csv``/``.parquet`` table, or a :class:`~headwater.pool.layouts.Layout` object. Other keyword
    arguments (``headers``, ``retry``, ``storage_options``) open the store.
    """

    def __init__(
        self,
        url: str | Store,
        *,
        layout: str | Layout = "scan",
        base_level: int | Sequence[int] = 3,
        base_dir: str = "images",
        index_url: str | Store | None = None,
        plan: PlanPolicy | None = None,
        **store_kwargs: Any,
    ) -> None:
        store = url if isinstance(url, Store) else open_store(url, **store_kwargs)
        if isinstance(layout, str):
            layout = layout_from_name(layout, base_level=base_level, base_dir=base_dir)
        super().__init__(store, index_url, layout=layout, plan=plan)


def open_pool(url: str, **kwargs: Any) -> StorePool:
    """Open a pool from a URL (see :class:`StorePool`)."""
    return StorePool(url, **kwargs)
