"""Extract members of a shard into a directory without ever writing outside it.

Names come from someone else's tar; each is checked (:func:`check_member_name`) and the resolved
target must stay inside the destination even through existing symlinked sub-folders. Files are
written atomically and checked against the index sha256.

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

from ..storage import Store, StoreNotFoundError, atomic_path, open_store
from .errors import UnsafeMemberError
from .index import TarIndex, index_stream
from .member_names import check_member_name
from .shards import load_index

__all__ = ["ExtractReport", "safe_target", "extract_shard"]


@dataclass
class ExtractReport:
    written: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # member → reason


def safe_target(dst_dir: str, name: str) -> str:
    """The path ``name`` extracts to inside ``dst_dir``; raises :class:`UnsafeMemberError` if it escapes."""
    rel = check_member_name(name)
    root = os.path.realpath(dst_dir)
    target = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, target]) != root or target == root:
        raise UnsafeMemberError(f"member {name!r} would be written outside {dst_dir!r}")
    return target


def extract_shard(root: str | Store, shard: str, dst_dir: str, *, index: TarIndex | None = None) -> ExtractReport:
    """Write every regular member of ``shard`` below ``dst_dir``; unsafe names are refused, not written."""
    store = root if isinstance(root, Store) else open_store(root)
    if index is None:
        try:
            index = load_index(store, shard)
        except StoreNotFoundError:
            with store.open(shard) as stream:
                index = index_stream(stream, store.size(shard))
    report = ExtractReport()
    os.makedirs(dst_dir, exist_ok=True)
    for name, entry in index.files.items():
        try:
            target = safe_target(dst_dir, name)
        except UnsafeMemberError as err:
            report.refused[name] = str(err)
            continue
        data = store.read_range(shard, entry.offset, entry.offset + entry.size)
        if entry.sha256 is not None and hashlib.sha256(data).hexdigest() != entry.sha256:
            report.refused[name] = "sha256 mismatch: shard is corrupt"
            continue
        try:
            with atomic_path(target) as tmp, open(tmp, "wb") as f:
                f.write(data)
        except OSError as err:  # e.g. both "a" and "a/b" in one tar: one of them cannot exist
            report.refused[name] = f"cannot write: {err}"
            continue
        report.written.append(name)
    return report
