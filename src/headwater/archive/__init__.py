"""Layer 2: tar shards, their hfutils-format indexes, the pool manifest, packing and verification."""

from .extract import ExtractReport, extract_shard, safe_target
from .index import (
    FileEntry,
    IndexFormatError,
    TarIndex,
    decode_index,
    encode_index,
    index_path_for,
    index_stream,
    index_tar,
    normalize_member_name,
)
from .manifest import MANIFEST_NAME, Manifest, ManifestRow, write_manifest
from .names import UnsafeMemberError, check_member_name, increment_id_shard, resource_key
from .pack import PackError, PackReport, pack_directory
from .pool_files import find_shards, load_index, load_indexes, rebuild_manifest
from .tarwalk import TarFormatError, TarMember, TruncatedTarError, walk_tar
from .verify import Problem, VerifyReport, verify_pool, verify_shard

__all__ = [
    "ExtractReport", "extract_shard", "safe_target",
    "FileEntry", "IndexFormatError", "TarIndex", "decode_index", "encode_index", "index_path_for",
    "index_stream", "index_tar", "normalize_member_name",
    "MANIFEST_NAME", "Manifest", "ManifestRow", "write_manifest",
    "UnsafeMemberError", "check_member_name", "increment_id_shard", "resource_key",
    "PackError", "PackReport", "pack_directory",
    "find_shards", "load_index", "load_indexes", "rebuild_manifest",
    "TarFormatError", "TarMember", "TruncatedTarError", "walk_tar",
    "Problem", "VerifyReport", "verify_pool", "verify_shard",
]
