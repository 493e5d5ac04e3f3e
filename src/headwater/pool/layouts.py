"""Layouts as data: how a resource id maps to shards and members.

A layout answers two questions, the same two cheesechaser's pool subclasses answer:

* ``candidates(resource_id)`` — which shards may hold it (``None``: any shard; use the manifest or scan);
* ``resource_of(tar_file, filename)`` — which resource a member belongs to (raises
  :class:`FileUnrecognizableError` for members that belong to none).

``stem_keyed`` says whether the resource id is the member's file stem, which lets the pool manifest
answer the lookup directly.

Example:
    >>> IncrementIDLayout(base_level=[3, 4]).candidates(114514)
    ['images/0514.tar', 'images/4/0514.tar']
    >>> IncrementIDLayout().resource_of("images/0514.tar", "114514.png")
    114514
"""

from __future__ import annotations

import csv
import io
from collections.abc import Hashable, Sequence
from typing import Any, Protocol

import fsspec

from ..archive import increment_id_shard, normalize_member_name, resource_key
from ..errors import require_extra
from .errors import FileUnrecognizableError, LayoutError

__all__ = ["Layout", "ScanLayout", "IncrementIDLayout", "TableLayout", "layout_from_name"]


class Layout(Protocol):
    stem_keyed: bool

    def candidates(self, resource_id: Any) -> list[str] | None: ...

    def resource_of(self, tar_file: str, filename: str) -> Hashable: ...


class ScanLayout:
    """Any shard may hold any resource; a member ``dir/<key>.<ext>`` belongs to resource ``key``."""

    stem_keyed = True

    def candidates(self, resource_id: Any) -> list[str] | None:
        return None

    def resource_of(self, tar_file: str, filename: str) -> Hashable:
        return resource_key(filename)


class IncrementIDLayout:
    """cheesechaser's ``IncrementIDDataPool`` rule: integer ids, shard chosen by ``id % 10**base_level``."""

    stem_keyed = True

    def __init__(self, base_level: int | Sequence[int] = 3, base_dir: str = "images") -> None:
        self.base_levels = [base_level] if isinstance(base_level, int) else list(base_level)
        if not self.base_levels:
            raise LayoutError("base_level needs at least one level")
        self.base_dir = base_dir

    def candidates(self, resource_id: Any) -> list[str] | None:
        try:
            rid = int(resource_id)
        except (TypeError, ValueError):
            return []
        return [increment_id_shard(rid, level, self.base_dir) for level in self.base_levels]

    def resource_of(self, tar_file: str, filename: str) -> Hashable:
        stem = resource_key(filename)
        try:
            return int(stem)
        except ValueError:
            raise FileUnrecognizableError(f"{filename!r} in {tar_file!r} is not named <id>.<ext>") from None


class TableLayout:
    """An id → (shard, member) table in CSV or Parquet (any fsspec URL), read once on first use."""

    stem_keyed = False

    def __init__(
        self,
        table: str,
        *,
        id_column: str = "id",
        archive_column: str = "archive",
        file_column: str = "filename",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.table = table
        self.columns = (id_column, archive_column, file_column)
        self._options = storage_options or {}
        self._by_id: dict[str, str] | None = None
        self._by_member: dict[tuple[str, str], Hashable] = {}

    def _rows(self) -> list[tuple[Any, str, str]]:
        id_col, arc_col, file_col = self.columns
        with fsspec.open(self.table, "rb", **self._options) as f:
            raw = f.read()
        if self.table.endswith(".parquet"):
            pq = require_extra("table", "pyarrow.parquet", "reading a Parquet id table")
            data = pq.read_table(io.BytesIO(raw), columns=[id_col, arc_col, file_col]).to_pydict()
            return list(zip(data[id_col], data[arc_col], data[file_col], strict=True))
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
        missing = {id_col, arc_col, file_col} - set(reader.fieldnames or [])
        if missing:
            raise LayoutError(f"{self.table}: missing column(s) {sorted(missing)}")
        return [(row[id_col], row[arc_col], row[file_col]) for row in reader]

    def _load(self) -> dict[str, str]:
        if self._by_id is None:
            by_id: dict[str, str] = {}
            for rid, archive, filename in self._rows():
                if isinstance(rid, str) and rid.isdigit():
                    rid = int(rid)
                archive = normalize_member_name(str(archive))
                by_id[str(rid)] = archive
                self._by_member[(archive, normalize_member_name(str(filename)))] = rid
            self._by_id = by_id
        return self._by_id

    def candidates(self, resource_id: Any) -> list[str] | None:
        shard = self._load().get(str(resource_id))
        return [shard] if shard is not None else []

    def resource_of(self, tar_file: str, filename: str) -> Hashable:
        self._load()
        key = (normalize_member_name(tar_file), normalize_member_name(filename))
        if key not in self._by_member:
            raise FileUnrecognizableError(f"{filename!r} in {tar_file!r} is not in {self.table}")
        return self._by_member[key]


def layout_from_name(name: str, *, base_level: int | Sequence[int] = 3, base_dir: str = "images") -> Layout:
    """``"scan"`` (also ``"sequential"``: how ``pack`` fills shards without a rule, read by scanning the
    manifest), ``"increment-id"`` or a ``.csv``/``.parquet`` table → a layout object (for the CLI)."""
    if name in ("scan", "sequential"):
        return ScanLayout()
    if name == "increment-id":
        return IncrementIDLayout(base_level, base_dir)
    if name.endswith((".csv", ".parquet")):
        return TableLayout(name)
    raise LayoutError(f"unknown layout {name!r}: use 'sequential' (alias 'scan'), 'increment-id' "
                      "or a .csv/.parquet table")


