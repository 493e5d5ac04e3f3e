"""Layer 3: the DataPool API (cheesechaser names) over indexed tar shards, with a range planner."""

from .base import DataPool
from .errors import (
    FileUnrecognizableError,
    IntegrityError,
    InvalidResourceDataError,
    PoolAuthError,
    PoolChangedError,
    ResourceNotFoundError,
)
from .hf import HfBasedDataPool, HfResolveStore, IncrementIDDataPool, hf_resolve_store
from .indexed import IndexedPool
from .layouts import IncrementIDLayout, Layout, ScanLayout, TableLayout, layout_from_name
from .location import DataLocation, Member
from .planner import PlanPolicy, RangeRead, Wanted, plan_reads
from .report import DownloadReport
from .store_pool import StorePool, open_pool

__all__ = [
    "DataPool", "IndexedPool", "StorePool", "open_pool", "HfBasedDataPool", "IncrementIDDataPool",
    "hf_resolve_store", "HfResolveStore", "DataLocation", "Member", "DownloadReport",
    "InvalidResourceDataError", "ResourceNotFoundError", "FileUnrecognizableError", "IntegrityError",
    "PoolAuthError", "PoolChangedError", "Layout", "ScanLayout", "IncrementIDLayout", "TableLayout", "layout_from_name",
    "PlanPolicy", "RangeRead", "Wanted", "plan_reads",
]
