"""Pack a directory of files into size-capped tar shards with hfutils indexes and a pool manifest.

Two layouts:

* ``sequential`` (default): files in sorted path order fill ``shard-00000.tar``, ``shard-00001.tar``, …
  each kept under ``max_shard_size`` (a single larger file gets a shard of its own).
* ``increment-id``: a file ``<id>.<ext>`` goes to the shard cheesechaser's ``IncrementIDDataPool``
  looks in (:func:`~headwater.archive.increment_id.increment_id_shard`); members are named by basename.

Links, devices, sockets, FIFOs and unsafe or non-UTF-8 names are refused before anything is written.
Every shard, index and the manifest is written to a temp file and renamed, so a failure never leaves a
partial file; shards completed before the failure stay (each with its index), the manifest is not written.

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
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tqdm import tqdm

from .errors import PackError, UnsafeMemberError
from .increment_id import increment_id_shard
from .manifest import rebuild_manifest
from .member_names import check_member_name
from .writer import ShardWriter, archive_size, member_footprint

__all__ = ["PackReport", "SourceFile", "collect_sources", "plan_shards", "pack_directory", "write_shards"]

Layout = Literal["sequential", "increment-id"]


@dataclass(frozen=True, slots=True)
class SourceFile:
    name: str  # member name inside the shard
    path: str  # absolute source path
    size: int


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
    silent: bool | None = False,
) -> PackReport:
    """Pack every regular file below ``src_dir`` into shards under ``dst_dir`` and write the manifest.

    ``silent``: no progress bar (None: a bar only when stderr is a terminal).
    """
    if max_shard_size < 10 * 1024:
        raise PackError(f"max_shard_size must be at least 10 KiB, got {max_shard_size}")
    sources = collect_sources(src_dir)
    if not sources:
        raise PackError(f"{src_dir!r} holds no files to pack")
    plan = plan_shards(
        sources, layout=layout, max_shard_size=max_shard_size, base_level=base_level, base_dir=base_dir
    )
    return write_shards(plan, dst_dir, max_shard_size=max_shard_size, silent=silent)


def write_shards(plan: dict[str, list[SourceFile]], dst_dir: str, *, max_shard_size: int = 1 << 30,
                 desc: str = "Packing", silent: bool | None = False) -> PackReport:
    """Write the shards of a :func:`plan_shards` plan (each with its index) into ``dst_dir``, then the manifest.

    Each shard is renamed into place complete; a failure leaves the shards written before it.
    """
    report = PackReport()
    total = sum(s.size for members in plan.values() for s in members)
    with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=silent) as bar:
        for shard, members in plan.items():
            planned = archive_size(sum(member_footprint(m.name, m.size) for m in members))
            if planned > max_shard_size:
                report.oversized.append(shard)
            with ShardWriter(os.path.join(dst_dir, shard), planned) as writer:
                for member in members:
                    writer.add_file(member.name, member.path, member.size)
                    bar.update(member.size)
            report.shards[shard] = len(members)
            report.files += len(members)
            report.bytes += planned
    report.manifest = rebuild_manifest(dst_dir)
    return report
