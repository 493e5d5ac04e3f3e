"""Layer 3: the DataPool API (cheesechaser names) over indexed tar shards, with a range planner.

* :mod:`.base` — :class:`DataPool`, the cheesechaser interface and its generic batch download;
* :mod:`.indexed` — :class:`IndexedPool` / :class:`StorePool`: pools of indexed shards in any store;
* :mod:`.hf` — :class:`HfBasedDataPool`, :class:`IncrementIDDataPool` over Hub ``resolve`` URLs;
* :mod:`.layouts` — which shards may hold an id (scan, increment-id, a table);
* :mod:`.planner`, :mod:`.fetch` — wanted members → few range reads → checked bytes;
* :mod:`.location`, :mod:`.report`, :mod:`.errors` — values and errors.

Example:
    >>> IncrementIDLayout(base_level=3).candidates(1234)
    ['images/0234.tar']
"""

from .base import DataPool
from .errors import (
    FileUnrecognizableError,
    IntegrityError,
    InvalidResourceDataError,
    LayoutError,
    PoolAuthError,
    PoolChangedError,
    PoolError,
    PoolNotFoundError,
    ResourceNotFoundError,
    TruncatedMemberError,
    UnpinnedWarning,
)
from .hf import HfBasedDataPool, HfResolveStore, IncrementIDDataPool, hf_resolve_store
from .indexed import IndexedPool, StorePool, open_pool
from .layouts import IncrementIDLayout, Layout, ScanLayout, TableLayout, layout_from_name
from .location import DataLocation, Member
from .planner import PlanPolicy, RangeRead, Wanted, plan_reads
from .report import DownloadReport

__all__ = [
    "DataPool", "IndexedPool", "StorePool", "open_pool", "HfBasedDataPool", "IncrementIDDataPool",
    "hf_resolve_store", "HfResolveStore", "DataLocation", "Member", "DownloadReport",
    "PoolError", "InvalidResourceDataError", "ResourceNotFoundError", "FileUnrecognizableError", "IntegrityError",
    "TruncatedMemberError", "PoolAuthError", "PoolChangedError", "PoolNotFoundError", "LayoutError", "UnpinnedWarning",
    "Layout", "ScanLayout", "IncrementIDLayout", "TableLayout", "layout_from_name",
    "PlanPolicy", "RangeRead", "Wanted", "plan_reads",
]
