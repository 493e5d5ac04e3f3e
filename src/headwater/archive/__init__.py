"""Layer 2: tar shards, their hfutils-format indexes, the pool manifest, packing and verification.

* :mod:`.tarwalk` — one forward pass over raw tar headers; :mod:`.index` — the per-shard index JSON;
* :mod:`.shard_digests` — a shard's two whole-file digests, on threads beside the walk or the write;
* :mod:`.writer` — one shard and its index written in the same pass; :mod:`.pack` — a folder into shards;
* :mod:`.staging` — a new pool written beside its final folder and renamed into place whole;
* :mod:`.manifest` — the pool manifest (one SQLite file: resource → shard, offset, size, sha256);
* :mod:`.shards` — finding a pool's shards and indexes in a store;
* :mod:`.member_names`, :mod:`.increment_id` — safe member names, resource keys, the increment-id rule;
* :mod:`.verify`, :mod:`.extract` — checking and unpacking a pool;
* :mod:`.errors` — what can be wrong with any of it.

Example:
    >>> increment_id_shard(1234, 3)
    'images/0234.tar'
"""

from .errors import (
    ArchiveError,
    IndexFormatError,
    ManifestError,
    PackError,
    TarFormatError,
    TooManyMembersError,
    TruncatedTarError,
    UnsafeMemberError,
)
from .extract import ExtractReport, extract_shard, holds_member, safe_target
from .increment_id import increment_id_shard
from .index import (
    FileEntry,
    IndexedShard,
    TarIndex,
    decode_index,
    encode_index,
    index_path_for,
    index_stream,
    index_tar,
    index_tars,
    normalize_member_name,
    usable_cores,
)
from .manifest import MANIFEST_NAME, Manifest, ManifestRow, rebuild_manifest, update_manifest, write_manifest
from .member_names import check_member_name, resource_key
from .pack import PackReport, pack_directory, write_shards
from .shards import find_shards, load_index, load_indexes
from .staging import check_new_pool_dir, move_into_place, new_staging_dir, stage_pool
from .tarwalk import TarMember, walk_tar
from .verify import Problem, VerifyReport, verify_pool, verify_shard

__all__ = [
    "ArchiveError", "IndexFormatError", "ManifestError", "PackError", "TarFormatError",
    "TruncatedTarError", "UnsafeMemberError", "TooManyMembersError",
    "ExtractReport", "extract_shard", "holds_member", "safe_target",
    "increment_id_shard",
    "FileEntry", "TarIndex", "decode_index", "encode_index", "index_path_for", "index_stream", "index_tar",
    "index_tars", "IndexedShard", "normalize_member_name", "usable_cores",
    "MANIFEST_NAME", "Manifest", "ManifestRow", "rebuild_manifest", "update_manifest", "write_manifest",
    "check_member_name", "resource_key",
    "PackReport", "pack_directory", "write_shards",
    "find_shards", "load_index", "load_indexes",
    "check_new_pool_dir", "move_into_place", "new_staging_dir", "stage_pool",
    "TarMember", "walk_tar",
    "Problem", "VerifyReport", "verify_pool", "verify_shard",
]
