"""Pack a directory of files into size-capped tar shards with hfutils indexes and a pool manifest.

Two layouts:

* ``sequential`` (default): files in sorted path order fill ``shard-00000.tar``, ``shard-00001.tar``, …
  each kept under ``max_shard_size`` (a single larger file gets a shard of its own).
* ``increment-id``: a file ``<id>.<ext>`` goes to the shard cheesechaser's ``IncrementIDDataPool``
  looks in (:func:`~headwater.archive.increment_id.increment_id_shard`); members are named by basename.

Links, devices, sockets, FIFOs and unsafe or non-UTF-8 names are refused before anything is written.

A folder that already holds something is refused unless ``add=True`` (``pack --add``): packing twice into
one pool used to leave two members of the same name in two shards, which every later lookup of that name
fails on. Adding refuses names the pool already holds (naming them), numbers new sequential shards after
the existing ones, and rewrites an existing increment-id shard with its old members (checked against their
sha256) and the new ones, so each id still lives in the one shard cheesechaser looks in.
Everything is written into a staging folder beside ``dst_dir`` (:mod:`.staging`) and moved into place only
when every shard, index and the manifest is complete: a failure — a full disk, a file-size limit — leaves
nothing under a final name (the staging folder is removed) and is raised as
:class:`~headwater.storage.DiskFullError` naming the pool folder (any other write failure as a
:class:`PackError`), so running the same command again after freeing space just works.

Example:
    >>> import tempfile, os
    >>> src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> for i in (1, 2, 1001):
    ...     _ = open(os.path.join(src, f"{i}.png"), "wb").write(b"x" * i)
    >>> report = pack_directory(src, dst, layout="increment-id", silent=True)
    >>> sorted(report.shards)
    ['images/0001.tar', 'images/0002.tar']
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from tqdm import tqdm

from ..storage import DiskFullError, StoreNotFoundError, fsync_tree, is_disk_full, is_temp_name, open_store, umask
from .errors import IndexFormatError, PackError, UnsafeMemberError
from .increment_id import increment_id_shard
from .index import TarIndex, index_path_for, usable_cores
from .manifest import MANIFEST_NAME, rebuild_manifest
from .member_names import check_member_name, resource_key
from .shards import find_shards, load_indexes, member_shards
from .staging import move_into_place, new_staging_dir
from .writer import ShardWriter, archive_size, member_footprint

__all__ = ["PackReport", "SourceFile", "collect_sources", "plan_shards", "pack_directory", "write_shards",
           "write_failure"]

Layout = Literal["sequential", "increment-id"]


@dataclass(frozen=True, slots=True)
class SourceFile:
    name: str  # member name inside the shard
    path: str  # absolute source path (or the shard an existing member is copied from)
    size: int
    offset: int | None = None  # set: copy ``size`` bytes at this offset of ``path`` (a member kept by --add)
    sha256: str | None = None  # what those bytes must hash to (the old index's entry)


@dataclass
class PackReport:
    """What :func:`pack_directory` wrote."""

    shards: dict[str, int] = field(default_factory=dict)  # shard path → number of members
    files: int = 0
    bytes: int = 0
    manifest: str = ""
    oversized: list[str] = field(default_factory=list)  # shards over the cap (increment-id layout)


def collect_sources(src_dir: str) -> list[tuple[str, str, int]]:
    """``(relative posix path, absolute path, size)`` of every regular file below ``src_dir``, sorted.

    Raises :class:`PackError` listing every symlink, device, FIFO or socket found (none are packed).
    """
    if not os.path.isdir(src_dir):
        raise PackError(f"{src_dir!r} is not a directory")
    found: list[tuple[str, str, int]] = []
    refused: list[str] = []
    for root, dirs, files in os.walk(src_dir, followlinks=False):
        dirs.sort()
        for name in list(dirs):
            if os.path.islink(os.path.join(root, name)):
                refused.append(os.path.join(root, name) + " (symlink to a directory)")
                dirs.remove(name)
        for name in sorted(files):
            path = os.path.join(root, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                refused.append(f"{path} (symlink)")
            elif not stat.S_ISREG(st.st_mode):
                refused.append(f"{path} (device, FIFO or socket)")
            else:
                rel = os.path.relpath(path, src_dir).replace(os.sep, "/")
                found.append((rel, os.path.abspath(path), st.st_size))
    if refused:
        shown = "\n  ".join(refused[:20]) + ("\n  …" if len(refused) > 20 else "")
        raise PackError(f"refusing to pack {len(refused)} non-regular file(s):\n  {shown}")
    found.sort()
    return found


def _packable_name(name: str) -> str:
    """:func:`check_member_name`, and the name must be UTF-8 (the index JSON is): undecodable bytes
    (kept by Python as surrogates) would otherwise fail only after their shard was written."""
    checked = check_member_name(name)
    try:
        checked.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeMemberError(f"unsafe member name {name!r}: not valid UTF-8") from None
    return checked


def plan_shards(
    sources: list[tuple[str, str, int]],
    *,
    layout: Layout = "sequential",
    max_shard_size: int = 1 << 30,
    base_level: int = 3,
    base_dir: str = "images",
    shard_name: Callable[[int], str] = lambda i: f"shard-{i:05d}.tar",
) -> dict[str, list[SourceFile]]:
    """Assign sources to shards (deterministically); raises :class:`PackError` for bad names."""
    plan: dict[str, list[SourceFile]] = {}
    try:
        if layout == "increment-id":
            bad: list[str] = []
            by_id: list[tuple[int, str, SourceFile]] = []
            for rel, path, size in sources:
                base = rel.rsplit("/", 1)[-1]
                stem = posixpath.splitext(base)[0]
                if not stem.isdecimal():  # isdigit() also accepts '²', which int() refuses
                    bad.append(rel)
                    continue
                by_id.append((int(stem), base, SourceFile(_packable_name(base), path, size)))
            if bad:
                raise PackError(
                    f"increment-id layout needs files named <id>.<ext>; {len(bad)} are not, e.g. {bad[:5]}"
                )
            by_id.sort(key=lambda t: (t[0], t[1]))
            for rid, _, src in by_id:
                members = plan.setdefault(increment_id_shard(rid, base_level, base_dir), [])
                if any(m.name == src.name for m in members):
                    raise PackError(f"two files would both be member {src.name!r} of the same shard")
                members.append(src)
            return dict(sorted(plan.items()))
        if layout != "sequential":
            raise PackError(f"unknown layout {layout!r} (use 'sequential' or 'increment-id')")
        current: list[SourceFile] = []
        used = 0
        for rel, path, size in sources:
            src = SourceFile(_packable_name(rel), path, size)
            cost = member_footprint(src.name, size)
            if current and archive_size(used + cost) > max_shard_size:
                plan[shard_name(len(plan))] = current
                current, used = [], 0
            current.append(src)
            used += cost
        if current:
            plan[shard_name(len(plan))] = current
        return plan
    except UnsafeMemberError as err:
        raise PackError(str(err)) from None


def pack_directory(
    src_dir: str,
    dst_dir: str,
    *,
    layout: Layout = "sequential",
    max_shard_size: int = 1 << 30,
    base_level: int = 3,
    base_dir: str = "images",
    add: bool = False,
    silent: bool | None = False,
    workers: int | None = None,
) -> PackReport:
    """Pack every regular file below ``src_dir`` into shards under ``dst_dir`` and write the manifest.

    ``dst_dir`` must be absent or empty, unless ``add``: then the files join the pool there (see the module
    docstring). ``silent``: no progress bar (None: a bar only when stderr is a terminal). ``workers``: shards
    written at once (default: the usable cores; see :func:`write_shards`).
    """
    if max_shard_size < 10 * 1024:
        raise PackError(f"max_shard_size must be at least 10 KiB, got {max_shard_size}")
    sources = collect_sources(src_dir)
    if not sources:
        raise PackError(f"{src_dir!r} holds no files to pack")
    existing = _existing_pool(dst_dir, add)
    shard_names = [s for s, _ in existing]
    first = 1 + max((int(m.group(1)) for m in map(_SEQUENTIAL.fullmatch, shard_names) if m), default=-1)
    plan = plan_shards(
        sources, layout=layout, max_shard_size=max_shard_size, base_level=base_level, base_dir=base_dir,
        shard_name=lambda i: f"shard-{first + i:05d}.tar",
    )
    if existing:
        _join_existing(plan, existing, dst_dir)
    staging = ""
    try:
        staging = new_staging_dir(dst_dir)
        os.chmod(staging, 0o777 & ~umask())  # mkdtemp makes it private; a pool is shared like any folder
        report = write_shards(plan, staging, max_shard_size=max_shard_size, silent=silent, workers=workers)
        fsync_tree(staging)
        if not os.path.isdir(dst_dir) or not os.listdir(dst_dir):
            move_into_place(staging, dst_dir)
            report.manifest = os.path.join(dst_dir, MANIFEST_NAME)
        else:  # --add: the new and rewritten shards join the pool, then its manifest is rebuilt
            for shard in report.shards:
                for name in (shard, index_path_for(shard)):
                    final = os.path.join(dst_dir, *name.split("/"))
                    os.makedirs(os.path.dirname(final), exist_ok=True)
                    os.replace(os.path.join(staging, *name.split("/")), final)
            report.manifest = rebuild_manifest(dst_dir)
    except OSError as err:
        raise write_failure(err, dst_dir) from err
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    return report


def write_failure(err: OSError, dst_dir: str) -> DiskFullError | PackError:
    """What to raise for ``err``, met while writing the pool ``dst_dir`` into its staging folder (so nothing
    is left under a final name): :class:`~headwater.storage.DiskFullError` naming ``dst_dir`` for a full disk,
    a quota or a file-size limit (exit 3: run again once there is room), else :class:`PackError`."""
    if isinstance(err, DiskFullError):
        return DiskFullError(dst_dir, err.cause)
    if is_disk_full(err):  # a write outside storage's atomic helpers
        return DiskFullError(dst_dir, err)
    return PackError(f"cannot write the pool {dst_dir!r}: {err}; nothing was written there")


_SEQUENTIAL = re.compile(r"shard-(\d+)\.tar")


def _existing_pool(dst_dir: str, add: bool) -> list[tuple[str, TarIndex]]:
    """The shards already in ``dst_dir`` with their indexes; :class:`PackError` for a non-empty folder
    without ``add``, or (with it) for shards the pool cannot vouch for (no readable index)."""
    entries = [e for e in os.listdir(dst_dir) if not is_temp_name(e)] if os.path.isdir(dst_dir) else []
    if not entries:
        return []
    if not add:
        shown = ", ".join(sorted(entries)[:5]) + (", …" if len(entries) > 5 else "")
        raise PackError(f"{dst_dir!r} is not empty ({shown}); packing into it again would leave members of "
                        "the same name in two shards: give a new folder, or --add to add these files to the "
                        "pool there (names it already holds are refused)")
    store = open_store(dst_dir)
    try:
        return load_indexes(store, find_shards(store))
    except (StoreNotFoundError, IndexFormatError) as err:
        raise PackError(f"cannot add to the pool in {dst_dir!r}: {err} (run `headwater index` on it first)") from None


def _join_existing(plan: dict[str, list[SourceFile]], existing: list[tuple[str, TarIndex]], dst_dir: str) -> None:
    """Refuse names the pool holds; put an existing shard's members into its planned replacement."""
    taken = member_shards(existing)
    clashes = [f"{m.name} (in {taken[m.name][0]})" for members in plan.values() for m in members if m.name in taken]
    if clashes:
        shown = "\n  ".join(clashes[:20]) + ("\n  …" if len(clashes) > 20 else "")
        raise PackError(f"the pool in {dst_dir!r} already holds {len(clashes)} of these name(s); nothing was "
                        f"written:\n  {shown}")
    for shard, index in existing:
        new = plan.get(shard)
        if new is None:
            continue
        old = [SourceFile(name, os.path.join(dst_dir, *shard.split("/")), e.size, e.offset, e.sha256)
               for name, e in sorted(index.files.items(), key=lambda item: item[1].offset)]
        plan[shard] = sorted([*old, *new], key=_member_order)


def _member_order(member: SourceFile) -> tuple[int, int, str]:
    """Increment-id order (id, then name), the order a fresh pack of all the files would give."""
    stem = resource_key(member.name)
    return (0, int(stem), member.name) if stem.isdecimal() else (1, 0, member.name)


class _Stopped(Exception):
    """Another shard failed: the shards still being written stop at their next member."""


def write_shards(plan: dict[str, list[SourceFile]], dst_dir: str, *, max_shard_size: int = 1 << 30,
                 desc: str = "Packing", silent: bool | None = False, workers: int | None = None) -> PackReport:
    """Write the shards of a :func:`plan_shards` plan (each with its index) into ``dst_dir``, then the manifest.

    ``workers`` shards are written at once (default: the usable cores), each hashing on three threads (the
    members as they are copied in, the whole shard's two digests beside), so every core works. Each shard
    is renamed into place complete; the first failure (in plan order) is raised once the shards being
    written have stopped, leaving the shards completed before it.
    """
    report = PackReport()
    total = sum(s.size for members in plan.values() for s in members)
    stop = threading.Event()
    lock = threading.Lock()
    with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=silent) as bar:

        def write_one(shard: str, members: list[SourceFile], planned: int) -> None:
            with ShardWriter(os.path.join(dst_dir, shard), planned) as writer:
                for member in members:
                    if stop.is_set():
                        raise _Stopped
                    if member.offset is None:
                        writer.add_file(member.name, member.path, member.size)
                    else:
                        writer.copy_member(member.name, member.path, member.offset, member.size, member.sha256)
                    with lock:
                        bar.update(member.size)

        planned = {shard: archive_size(sum(member_footprint(m.name, m.size) for m in members))
                   for shard, members in plan.items()}
        count = max(1, min(workers if workers is not None else usable_cores(), len(plan)))
        with ThreadPoolExecutor(count, thread_name_prefix="headwater-pack") as pool:
            futures = {shard: pool.submit(write_one, shard, members, planned[shard])
                       for shard, members in plan.items()}
            try:
                for shard, future in futures.items():
                    future.result()
                    if planned[shard] > max_shard_size:
                        report.oversized.append(shard)
                    report.shards[shard] = len(plan[shard])
                    report.files += len(plan[shard])
                    report.bytes += planned[shard]
            finally:
                stop.set()
                for future in futures.values():
                    future.cancel()
    report.manifest = rebuild_manifest(dst_dir)
    return report
