"""Check a pool end to end: every shard's size and hashes, every member's place and sha256.

Each shard is streamed once (the same single pass as indexing) and the fresh result is compared with
the stored index, so every difference is reported with the shard and member it concerns — not just
"bad pool". Member names are judged by :func:`~headwater.archive.member_names.check_member_name`, the
policy ``extract`` and a pool download apply to the same members; a member that is not a regular file
(symlink, hardlink, device, fifo) is listed as a problem, since no reader of the pool delivers it. A member
name held by more than one shard is reported too (``ambiguous-name``, naming each shard): every shard may be
intact, yet a lookup of that name finds two members and fails.

Example:
    >>> import tempfile, os
    >>> from headwater.archive import pack_directory
    >>> src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = open(os.path.join(src, "7.png"), "wb").write(b"png")
    >>> _ = pack_directory(src, dst, silent=True)
    >>> verify_pool(dst, silent=True).ok
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tqdm import tqdm

from ..storage import Store, StoreNotFoundError, open_store
from .errors import IndexFormatError, TarFormatError, UnsafeMemberError
from .index import TarIndex, index_path_for, index_stream
from .manifest import MANIFEST_NAME, Manifest
from .member_names import check_member_name
from .shards import find_shards, load_index, member_shards
from .tarwalk import TarMember

__all__ = ["Problem", "VerifyReport", "verify_shard", "verify_pool"]


@dataclass(frozen=True, slots=True)
class Problem:
    shard: str
    member: str | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.shard}: {self.member}" if self.member is not None else self.shard
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    shards: int = 0
    members: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _compare(shard: str, stored: TarIndex, actual: TarIndex) -> list[Problem]:
    out: list[Problem] = []
    if stored.filesize != actual.filesize:
        out.append(Problem(shard, None, "size", f"index says {stored.filesize} bytes, shard has {actual.filesize}"))
    if stored.hash != actual.hash:
        out.append(Problem(shard, None, "hash", f"git sha1 {actual.hash} != indexed {stored.hash}"))
    if stored.hash_lfs != actual.hash_lfs:
        out.append(Problem(shard, None, "hash_lfs", f"sha256 {actual.hash_lfs} != indexed {stored.hash_lfs}"))
    for name, want in stored.files.items():
        got = actual.files.get(name)
        if got is None:
            out.append(Problem(shard, name, "member-missing", "indexed but not in the tar"))
            continue
        if (got.offset, got.size) != (want.offset, want.size):
            out.append(Problem(shard, name, "member-moved",
                               f"tar has offset {got.offset} size {got.size}, index {want.offset}/{want.size}"))
        elif want.sha256 is not None and got.sha256 != want.sha256:
            out.append(Problem(shard, name, "member-corrupt", f"sha256 {got.sha256} != indexed {want.sha256}"))
    for name in actual.files.keys() - stored.files.keys():
        out.append(Problem(shard, name, "member-unindexed", "in the tar but not in the index"))
    return out


def verify_shard(store: Store, shard: str) -> tuple[list[Problem], int]:
    """Problems found in one shard and the number of members checked."""
    problems, members, _stored = _verify_shard(store, shard)
    return problems, members


def _verify_shard(store: Store, shard: str) -> tuple[list[Problem], int, TarIndex | None]:
    """:func:`verify_shard`, plus the shard's stored index when it could be read (so :func:`verify_pool`
    checks names across shards without loading every index a second time)."""
    try:
        stored = load_index(store, shard)
    except StoreNotFoundError:
        return [Problem(shard, None, "missing-index", f"no {index_path_for(shard)}")], 0, None
    except IndexFormatError as err:
        return [Problem(shard, None, "bad-index", str(err))], 0, None
    problems = []
    for name in stored.files:
        try:
            check_member_name(name)
        except UnsafeMemberError as err:
            problems.append(Problem(shard, name, "unsafe-name", str(err)))
    try:
        size = store.size(shard)
    except StoreNotFoundError:
        return [*problems, Problem(shard, None, "missing-shard", "index present, tar missing")], 0, stored
    skipped: list[Problem] = []

    def not_a_file(member: TarMember) -> None:
        skipped.append(Problem(shard, member.name, "not-a-file",
                               f"{member.kind}: not indexed, so never extracted or downloaded"))

    try:
        with store.open(shard) as stream:
            actual = index_stream(stream, size, on_skipped=not_a_file)
    except TarFormatError as err:
        problems.append(Problem(shard, _damaged_member(stored, size, err), "corrupt", str(err)))
        return problems + skipped, len(stored.files), stored
    return problems + _compare(shard, stored, actual) + skipped, len(stored.files), stored


def _damaged_member(stored: TarIndex, size: int, err: TarFormatError) -> str | None:
    """The first indexed member that a truncated or damaged shard cannot hold (for the report)."""
    beyond = [(e.offset, n) for n, e in stored.files.items() if e.offset + e.size > size]
    if beyond:
        return min(beyond)[1]
    if err.offset is not None:
        # The damage is at err.offset (a header, or a member's data): the first member whose data
        # starts there or later is the first one the walk cannot reach.
        after = [(e.offset, n) for n, e in stored.files.items() if e.offset >= err.offset]
        if after:
            return min(after)[1]
    for name in stored.files:
        if repr(name) in str(err):
            return name
    return None


def verify_pool(root: str | Store, *, silent: bool | None = False) -> VerifyReport:
    """Verify every shard (and the manifest, if any) of the pool at ``root``; ``silent``: no progress bar
    (None: a bar only when stderr is a terminal)."""
    store = root if isinstance(root, Store) else open_store(root)
    report = VerifyReport()
    shards = find_shards(store)
    for orphan in sorted({p[: -len(".json")] + ".tar" for p in store.find(".json")} - set(shards)):
        try:
            load_index(store, orphan)
        except IndexFormatError:
            continue  # some other JSON file (metadata, a table), not a tar index
        report.problems.append(Problem(orphan, None, "missing-shard", "index present, tar missing"))
    indexes: list[tuple[str, TarIndex]] = []
    for shard in tqdm(shards, desc="Verifying", unit="shard", disable=silent):
        problems, members, stored = _verify_shard(store, shard)
        report.shards += 1
        report.members += members
        report.problems.extend(problems)
        if stored is not None:
            indexes.append((shard, stored))
    report.problems.extend(_ambiguous_names(indexes))
    report.problems.extend(_check_manifest(store, shards))
    return report


def _ambiguous_names(indexes: list[tuple[str, TarIndex]]) -> list[Problem]:
    """One problem per member name that more than one of these shards holds (shards without a readable
    index are already reported by :func:`verify_shard`)."""
    return [Problem(holders[0], name, "ambiguous-name",
                    f"{len(holders)} shards hold a member of this name ({', '.join(holders)}); a lookup of it "
                    "finds more than one member: remove or rename all but one")
            for name, holders in sorted(member_shards(indexes).items()) if len(holders) > 1]


def _check_manifest(store: Store, shards: list[str]) -> list[Problem]:
    local = store.local_path(MANIFEST_NAME)
    if local is None or not store.exists(MANIFEST_NAME):
        return []
    out = []
    with Manifest(local) as manifest:
        listed = {row.path: row for row in manifest.shards()}
    for shard in shards:
        row = listed.get(shard)
        if row is None:
            out.append(Problem(MANIFEST_NAME, shard, "stale-manifest",
                               "shard not in the manifest (run `headwater index`)"))
            continue
        try:
            index = load_index(store, shard)
        except (StoreNotFoundError, IndexFormatError):
            continue
        if (row.filesize, row.hash_lfs, row.files) != (index.filesize, index.hash_lfs, len(index.files)):
            out.append(Problem(MANIFEST_NAME, shard, "stale-manifest", "manifest disagrees with the index"))
    for extra in listed.keys() - set(shards):
        out.append(Problem(MANIFEST_NAME, extra, "stale-manifest", "manifest lists a shard that does not exist"))
    return out
