"""Extract members of a shard into a directory without ever writing outside it.

Names come from someone else's tar; each is checked (:func:`check_member_name`) and the resolved
target must stay inside the destination even through existing symlinked sub-folders. Files are
written atomically and checked against the index sha256.

A damaged shard does not stop the extraction: a member the shard cuts off (truncated, or replaced by a
shorter file) or whose bytes do not match their sha256 is reported by name and not written, and every
intact member is extracted. A full disk stops it
(:class:`~headwater.storage.errors.DiskFullError`, naming the file; nothing partial is left under a final
name), and a run after it keeps the members already extracted whole (:func:`holds_member`) instead of
reading them again.

Example:
    >>> import tempfile, os
    >>> from headwater.archive import pack_directory
    >>> src, pool, out = tempfile.mkdtemp(), tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = open(os.path.join(src, "3.txt"), "wb").write(b"three")
    >>> _ = pack_directory(src, pool, silent=True)
    >>> extract_shard(pool, "shard-00000.tar", out).written
    ['3.txt']
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from ..storage import DiskFullError, Store, StoreNotFoundError, TruncatedFileError, atomic_path, open_store
from .errors import TarFormatError, UnsafeMemberError
from .index import FileEntry, TarIndex
from .member_names import check_member_name
from .shards import load_index
from .tarwalk import walk_tar

__all__ = ["ExtractReport", "safe_target", "extract_shard", "holds_member"]


@dataclass
class ExtractReport:
    written: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # member → reason (unsafe name, damaged, unwritable)
    kept: list[str] = field(default_factory=list)  # already extracted whole by an earlier run: not read again


def holds_member(path: str, size: int, sha256: str | None) -> bool:
    """Whether ``path`` already holds a member's bytes: ``size`` bytes with that sha256 (just the size when
    the index has no sha256). Lets a download or an extraction that was stopped resume without reading
    again what it already wrote."""
    try:
        if os.path.getsize(path) != size:
            return False
        if sha256 is None:
            return True
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == sha256


def _walk_members(store: Store, shard: str, report: ExtractReport) -> dict[str, FileEntry]:
    """The regular members of a shard without an index, found by walking it: what is not a regular file is
    refused by name, and a damaged tar (cut short, a broken header) yields the members before the damage —
    the damaged one is refused with what :func:`walk_tar` says about it (its name, bytes got/expected)."""
    files: dict[str, FileEntry] = {}
    try:
        with store.open(shard) as stream:
            for member, digest in walk_tar(stream):
                if member.isreg:
                    files[member.name] = FileEntry(member.offset_data, member.size, digest)
                elif not member.isdir:
                    report.refused[member.name] = f"{member.kind}: not a regular file, not extracted"
    except TarFormatError as err:
        report.refused[f"{shard} from byte {err.offset}"] = f"damaged: {err}"
    return files


def safe_target(dst_dir: str, name: str) -> str:
    """The path ``name`` extracts to inside ``dst_dir``; raises :class:`UnsafeMemberError` if it escapes."""
    rel = check_member_name(name)
    root = os.path.realpath(dst_dir)
    target = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, target]) != root or target == root:
        raise UnsafeMemberError(f"member {name!r} would be written outside {dst_dir!r}")
    return target


def extract_shard(root: str | Store, shard: str, dst_dir: str, *, index: TarIndex | None = None) -> ExtractReport:
    """Write every regular member of ``shard`` below ``dst_dir``; unsafe names and damaged members are
    refused (named in the report), not written; members already there whole are kept."""
    store = root if isinstance(root, Store) else open_store(root)
    report = ExtractReport()
    if index is None:
        try:
            files = load_index(store, shard).files
        except StoreNotFoundError:
            files = _walk_members(store, shard, report)
    else:
        files = index.files
    os.makedirs(dst_dir, exist_ok=True)
    shard_end: int | None = None  # where the shard ends, once a read found it shorter than its index
    for name, entry in files.items():
        try:
            target = safe_target(dst_dir, name)
        except UnsafeMemberError as err:
            report.refused[name] = str(err)
            continue
        if holds_member(target, entry.size, entry.sha256):
            report.kept.append(name)
            continue
        end = entry.offset + entry.size
        try:
            if shard_end is not None and end > shard_end:
                raise TruncatedFileError(shard, entry.offset, end, b"", shard_end)
            data = store.read_range(shard, entry.offset, end)
        except TruncatedFileError as err:
            shard_end = err.size if err.size is not None else shard_end
            where = f"the shard ends at byte {err.size}" if err.size is not None else "the shard ends before it"
            report.refused[name] = (f"truncated: got {len(err.data)} of {entry.size} bytes ({where}); "
                                    "the shard is damaged")
            continue
        if entry.sha256 is not None and hashlib.sha256(data).hexdigest() != entry.sha256:
            report.refused[name] = "sha256 mismatch: shard is corrupt"
            continue
        try:
            with atomic_path(target) as tmp, open(tmp, "wb") as f:
                f.write(data)
        except DiskFullError:
            raise
        except OSError as err:  # e.g. both "a" and "a/b" in one tar: one of them cannot exist
            report.refused[name] = f"cannot write: {err}"
            continue
        report.written.append(name)
    return report
