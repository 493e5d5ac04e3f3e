"""pack_directory on real directories: determinism, the size cap, the increment-id layout, refusals."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

from headwater.archive import (
    MANIFEST_NAME,
    ArchiveError,
    Manifest,
    PackError,
    TooManyMembersError,
    decode_index,
    encode_index,
    increment_id_shard,
    index_tar,
    pack_directory,
    rebuild_manifest,
    update_manifest,
    verify_pool,
    write_shards,
)
from headwater.archive.pack import SourceFile, collect_sources, plan_shards
from headwater.archive.writer import archive_size, member_footprint
from headwater.pool import StorePool
from headwater.storage import is_temp_name

from ..support.files import make_files


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def write_files(root: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def sample_tree(root: Path, seed: int = 3) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {f"img/{i:04d}.bin": rng.randbytes(rng.randint(0, 3000)) for i in range(30)}
    files.update({
        "empty.txt": b"",
        "a.txt": b"alpha",
        "a/b.txt": b"nested",  # sorts after a.txt ('.' < '/')
        "ünïcødé/名前.png": rng.randbytes(777),
        "long/" + "x" * 150 + ".dat": rng.randbytes(1500),
        "exact/" + "y" * 95 + ".bin": rng.randbytes(1024),  # name close to the 100-char field
    })
    return write_files(root, files)


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def read_pool(pool: Path, report_shards) -> dict[str, bytes]:
    """member name → bytes, read at the offsets of the JSON written beside each shard."""
    out: dict[str, bytes] = {}
    for shard in report_shards:
        index = decode_index((pool / shard).with_suffix(".json").read_bytes())
        raw = (pool / shard).read_bytes()
        for name, entry in index.files.items():
            assert name not in out
            data = raw[entry.offset : entry.offset + entry.size]
            assert hashlib.sha256(data).hexdigest() == entry.sha256
            out[name] = data
    return out


# --------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------
def test_pack_round_trips_every_file(tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "src")
    pool = tmp_path / "pool"
    report = pack_directory(str(tmp_path / "src"), str(pool), max_shard_size=16 * 1024, silent=True)
    contents = read_pool(pool, report.shards)
    assert contents == files
    assert list(contents) == sorted(files)  # sorted path order across consecutive shards
    assert list(contents)[:3] == ["a.txt", "a/b.txt", "empty.txt"]
    assert report.files == len(files) == sum(report.shards.values())
    assert report.bytes == sum((pool / s).stat().st_size for s in report.shards)
    assert report.manifest == str(pool / MANIFEST_NAME)
    for shard in report.shards:
        tar_path = pool / shard
        # the JSON written in the same pass equals a fresh scan of the finished tar, byte for byte
        assert tar_path.with_suffix(".json").read_bytes() == encode_index(index_tar(tar_path))
        with tarfile.open(tar_path) as tar:  # and the tar is an ordinary one
            for info in tar.getmembers():
                assert info.isreg() and info.mode == 0o644 and info.mtime == 0 and info.uid == 0
                member = tar.extractfile(info)
                assert member is not None and member.read() == files[info.name]
    assert sorted(report.shards) == [f"shard-{i:05d}.tar" for i in range(len(report.shards))]


def test_pack_is_deterministic(tmp_path: Path) -> None:
    src = tmp_path / "src"
    sample_tree(src)
    # the same tree elsewhere, with other mtimes and permissions, must pack to the same bytes
    other = tmp_path / "elsewhere" / "copy"
    shutil.copytree(src, other)
    for i, path in enumerate(sorted(other.rglob("*"))):
        if path.is_file():
            os.utime(path, (1_000_000 + i, 2_000_000 + i))
            path.chmod(0o600 if i % 2 else 0o755)
    reports = [  # one shard at a time, or several at once: the same bytes
        pack_directory(str(src), str(tmp_path / "p1"), max_shard_size=16 * 1024, silent=True, workers=1),
        pack_directory(str(src), str(tmp_path / "p2"), max_shard_size=16 * 1024, silent=True, workers=4),
        pack_directory(str(other), str(tmp_path / "p3"), max_shard_size=16 * 1024, silent=True),
    ]
    assert list(reports[0].shards.items()) == list(reports[1].shards.items()) == list(reports[2].shards.items())
    assert len(reports[0].shards) > 2
    listing = all_files(tmp_path / "p1")
    assert listing == all_files(tmp_path / "p2") == all_files(tmp_path / "p3")
    compared = 0
    for rel in listing:
        if rel.endswith((".tar", ".json")):
            blob = (tmp_path / "p1" / rel).read_bytes()
            assert blob == (tmp_path / "p2" / rel).read_bytes(), rel
            assert blob == (tmp_path / "p3" / rel).read_bytes(), rel
            compared += 1
    assert compared == 2 * len(reports[0].shards)
    manifests = []
    for p in ("p1", "p2", "p3"):
        with Manifest(str(tmp_path / p / MANIFEST_NAME)) as m:
            manifests.append((m.shards(), [m.lookup(k) for k in m.keys()]))  # noqa: SIM118 - a Manifest is not a dict
    assert manifests[0] == manifests[1] == manifests[2]


# --------------------------------------------------------------------------------------------------
# size cap (sequential layout)
# --------------------------------------------------------------------------------------------------
def test_size_cap_is_respected(tmp_path: Path) -> None:
    rng = random.Random(11)
    cap = 20 * 1024
    files = {f"f{i:03d}.bin": rng.randbytes(rng.randint(0, 7000)) for i in range(60)}
    files["f030-big.bin"] = rng.randbytes(50_000)  # larger than the cap on its own
    write_files(tmp_path / "src", files)
    pool = tmp_path / "pool"
    report = pack_directory(str(tmp_path / "src"), str(pool), max_shard_size=cap, silent=True)

    shards = list(report.shards)
    names_in = {s: list(decode_index((pool / s).with_suffix(".json").read_bytes()).files) for s in shards}
    oversized = []
    for shard in shards:
        size = (pool / shard).stat().st_size
        if size > cap:
            assert names_in[shard] == ["f030-big.bin"], "an oversized shard must hold a single file"
            oversized.append(shard)
    assert len(oversized) == 1 and report.oversized == oversized
    # every file once, in sorted order across consecutive shards
    assert [n for s in shards for n in names_in[s]] == sorted(files)
    # greedy: the first file of each shard would not have fitted into the previous one
    for prev, nxt in itertools.pairwise(shards):
        used = sum(member_footprint(n, len(files[n])) for n in names_in[prev])
        first = names_in[nxt][0]
        assert archive_size(used + member_footprint(first, len(files[first]))) > cap
    assert read_pool(pool, shards) == files


def test_shard_may_fill_the_cap_exactly(tmp_path: Path) -> None:
    cap = 2 * 10240
    # each member: 512-byte header + 9216 bytes of data; two of them + the 1024-byte end = 20480
    files = {f"{c}.bin": bytes([ord(c)]) * 9216 for c in "abc"}
    write_files(tmp_path / "src", files)
    assert archive_size(2 * member_footprint("a.bin", 9216)) == cap
    report = pack_directory(str(tmp_path / "src"), str(tmp_path / "pool"), max_shard_size=cap, silent=True)
    assert report.shards == {"shard-00000.tar": 2, "shard-00001.tar": 1}
    assert (tmp_path / "pool" / "shard-00000.tar").stat().st_size == cap
    assert report.oversized == []


# --------------------------------------------------------------------------------------------------
# increment-id layout
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rid", "level", "base_dir", "expected"),
    [
        (114514, 4, "images", "images/4/0514.tar"),
        (1234, 3, "images", "images/0234.tar"),
        (1234, 4, "images", "images/1/0234.tar"),
        (114514, 6, "images", "images/114/0514.tar"),
        (7, 3, "images", "images/0007.tar"),
        (5, 1, "images", "images/05.tar"),
        (1234567, 7, "x", "x/1/234/0567.tar"),
        (1234, 3, "", "0234.tar"),
    ],
)
def test_increment_id_shard_rule(rid: int, level: int, base_dir: str, expected: str) -> None:
    assert increment_id_shard(rid, level, base_dir) == expected


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (4, {"images/4/0514.tar": ["4514.jpg", "114514.png"], "images/1/0234.tar": ["1234.png"],
             "images/0/0007.tar": ["7.txt"]}),
        (3, {"images/0514.tar": ["4514.jpg", "114514.png"], "images/0234.tar": ["1234.png"],
             "images/0007.tar": ["7.txt"]}),
    ],
)
def test_pack_increment_id_layout(tmp_path: Path, level: int, expected: dict[str, list[str]]) -> None:
    files = {"a/114514.png": b"114514", "4514.jpg": b"4514", "deep/er/1234.png": b"1234", "7.txt": b"seven"}
    write_files(tmp_path / "src", files)
    pool = tmp_path / "pool"
    report = pack_directory(str(tmp_path / "src"), str(pool), layout="increment-id", base_level=level,
                            silent=True)
    assert report.shards == {s: len(m) for s, m in sorted(expected.items())}
    for shard, members in expected.items():
        index = decode_index((pool / shard).with_suffix(".json").read_bytes())
        assert list(index.files) == members  # members are named by basename, in id order
    contents = read_pool(pool, report.shards)
    assert contents == {os.path.basename(k): v for k, v in files.items()}
    with Manifest(str(pool / MANIFEST_NAME)) as manifest:
        rows = manifest.lookup("1234")
        assert [(r.shard, r.name, r.size) for r in rows] == [
            (increment_id_shard(1234, level), "1234.png", 4)
        ]
        assert manifest.lookup("999") == []
    pool_api = StorePool(str(pool), layout="increment-id", base_level=level)
    with pool_api.mock_resource(114514, None) as (td, _):
        assert Path(td, "114514.png").read_bytes() == b"114514"


@pytest.mark.parametrize("bad", ["cover.png", "12a.png", "²3.png", "-5.png", ".png", "1 2.png"])
def test_increment_id_refuses_non_numeric_names(tmp_path: Path, bad: str) -> None:
    write_files(tmp_path / "src", {"1.png": b"one", bad: b"bad"})
    dst = tmp_path / "dst"
    dst.mkdir()
    with pytest.raises(PackError, match="increment-id"):
        pack_directory(str(tmp_path / "src"), str(dst), layout="increment-id", silent=True)
    assert all_files(dst) == []


def test_increment_id_refuses_two_files_with_one_member_name(tmp_path: Path) -> None:
    write_files(tmp_path / "src", {"a/12.png": b"a", "b/12.png": b"b"})
    with pytest.raises(PackError, match=re.escape("12.png")):
        pack_directory(str(tmp_path / "src"), str(tmp_path / "dst"), layout="increment-id", silent=True)
    assert not (tmp_path / "dst").exists()


# --------------------------------------------------------------------------------------------------
# refusals: nothing is written
# --------------------------------------------------------------------------------------------------
def _make_special(src: Path, kind: str) -> str:
    if kind == "symlink":
        os.symlink("real.txt", src / "link.txt")
        return "link.txt"
    if kind == "dangling-symlink":
        os.symlink("/nonexistent/target", src / "dangling")
        return "dangling"
    if kind == "dir-symlink":
        (src / "realdir").mkdir()
        (src / "realdir" / "f.txt").write_bytes(b"f")
        os.symlink("realdir", src / "linkdir")
        return "linkdir"
    if kind == "fifo":
        os.mkfifo(src / "pipe")
        return "pipe"
    if kind == "socket":
        short = tempfile.mkdtemp()  # AF_UNIX paths are limited to ~108 bytes: bind short, then move
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(os.path.join(short, "s"))
        finally:
            sock.close()
        try:
            os.rename(os.path.join(short, "s"), src / "sock")
        except OSError as err:
            pytest.skip(f"cannot move a socket here: {err}")
        finally:
            shutil.rmtree(short, ignore_errors=True)
        return "sock"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "dir-symlink", "fifo", "socket"])
@pytest.mark.parametrize("dst_exists", [True, False])
def test_refuses_links_and_special_files(tmp_path: Path, kind: str, dst_exists: bool) -> None:
    src = tmp_path / "src"
    write_files(src, {"real.txt": b"real", "sub/other.txt": b"other"})
    name = _make_special(src, kind)
    dst = tmp_path / "dst"
    if dst_exists:
        dst.mkdir()
    with pytest.raises(PackError, match=name):
        pack_directory(str(src), str(dst), silent=True)
    if dst_exists:
        assert all_files(dst) == []
    else:
        assert not dst.exists()


@pytest.mark.parametrize("name", [b"back\\slash.txt", b"not-utf8-\xff.txt"])
def test_refuses_unsafe_or_unencodable_names(tmp_path: Path, name: bytes) -> None:
    src = tmp_path / "src"
    write_files(src, {"ok.txt": b"ok"})
    with open(os.path.join(os.fsencode(src), name), "wb") as f:
        f.write(b"x")
    dst = tmp_path / "dst"
    dst.mkdir()
    with pytest.raises(PackError, match="unsafe member name"):
        pack_directory(str(src), str(dst), silent=True)
    assert all_files(dst) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_shard_size": 10 * 1024 - 1}, "at least 10 KiB"),
        ({"layout": "zigzag"}, "unknown layout"),
    ],
)
def test_refuses_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    write_files(tmp_path / "src", {"1.txt": b"1"})
    with pytest.raises(PackError, match=message):
        pack_directory(str(tmp_path / "src"), str(tmp_path / "dst"), silent=True, **kwargs)
    assert not (tmp_path / "dst").exists()


def test_refuses_empty_or_missing_source(tmp_path: Path) -> None:
    (tmp_path / "empty" / "only-dirs").mkdir(parents=True)
    with pytest.raises(PackError, match="no files"):
        pack_directory(str(tmp_path / "empty"), str(tmp_path / "dst"), silent=True)
    with pytest.raises(PackError, match="not a directory"):
        pack_directory(str(tmp_path / "missing"), str(tmp_path / "dst"), silent=True)
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("blocked", ["shard-00001.tar", "shard-00000.json"])
def test_no_temp_files_left_after_a_write_failure(tmp_path: Path, blocked: str) -> None:
    rng = random.Random(2)
    write_files(tmp_path / "src", {f"{i}.bin": rng.randbytes(6000) for i in range(8)})
    dst = tmp_path / "dst"
    (dst / blocked).mkdir(parents=True)  # a directory where a shard or an index must go
    with pytest.raises(PackError, match="not empty"):  # not a pool, but not empty either
        pack_directory(str(tmp_path / "src"), str(dst), max_shard_size=16 * 1024, silent=True)
    with pytest.raises(PackError, match=re.escape(blocked)):  # staged whole, then cannot be moved in
        pack_directory(str(tmp_path / "src"), str(dst), max_shard_size=16 * 1024, add=True, silent=True)
    leftovers = [p for p in dst.rglob("*") if is_temp_name(p.name) or p.name.endswith(".tmp")]
    assert leftovers == []
    assert not (dst / MANIFEST_NAME).exists()
    for tar_path in dst.rglob("*.tar"):
        if tar_path.is_file() and tar_path.with_suffix(".json").is_file():
            assert decode_index(tar_path.with_suffix(".json").read_bytes()) == index_tar(tar_path)


# --------------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------------
def _manifest_rows(path: str) -> tuple[list[Any], list[Any]]:
    with Manifest(path) as m:
        return ([(s.path, s.filesize, s.hash, s.hash_lfs, s.files) for s in m.shards()],
                sorted((r.key, r.shard, r.name, r.offset, r.size, r.sha256) for k in m.keys() for r in m.lookup(k)))  # noqa: SIM118


def test_an_updated_manifest_equals_a_rebuilt_one(tmp_path: Path) -> None:
    rng = random.Random(4)
    write_files(tmp_path / "src", {f"{i}.bin": rng.randbytes(rng.randint(1, 3000)) for i in range(1, 60)})
    pool = tmp_path / "pool"
    report = pack_directory(str(tmp_path / "src"), str(pool), max_shard_size=20 * 1024, silent=True)
    assert len(report.shards) >= 4
    added = tmp_path / "more"
    write_files(added, {"500.bin": b"five hundred", "7.bin": b"a second 7"})
    extra = next(iter(pack_directory(str(added), str(tmp_path / "pool2"), silent=True).shards))
    shutil.copy(tmp_path / "pool2" / extra, pool / "added.tar")
    shutil.copy((tmp_path / "pool2" / extra).with_suffix(".json"), pool / "added.json")
    gone = sorted(report.shards)[1]
    (pool / gone).unlink()
    (pool / gone).with_suffix(".json").unlink()
    update_manifest(str(pool), put={"added.tar": index_tar(pool / "added.tar")}, remove=[gone])
    updated = _manifest_rows(str(pool / MANIFEST_NAME))
    rebuild_manifest(str(pool))
    assert updated == _manifest_rows(str(pool / MANIFEST_NAME))
    (pool / MANIFEST_NAME).write_bytes(b"not a manifest")  # unreadable: rebuilt from the indexes instead
    update_manifest(str(pool), remove=["nothing.tar"])
    assert _manifest_rows(str(pool / MANIFEST_NAME)) == updated


def test_indexing_stops_at_the_member_cap(tmp_path: Path) -> None:
    path = tmp_path / "many.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(30):
            tar.addfile(tarfile.TarInfo(f"{i}.bin"), io.BytesIO(b""))
    assert len(index_tar(path, max_members=30).files) == 30
    with pytest.raises(TooManyMembersError, match="more than 29 members") as info:
        index_tar(path, max_members=29)
    assert info.value.offset == 29 * 512


def test_manifest_matches_the_indexes(tmp_path: Path) -> None:
    rng = random.Random(9)
    files = {f"{i}.png": rng.randbytes(rng.randint(1, 4000)) for i in (1, 2, 1234, 2234, 99999)}
    files["sub/1234.txt"] = b"caption of 1234"  # a second file of resource 1234
    write_files(tmp_path / "src", files)
    pool = tmp_path / "pool"
    report = pack_directory(str(tmp_path / "src"), str(pool), max_shard_size=10 * 1024, silent=True)
    assert Path(report.manifest).is_file()
    indexes = {s: json.loads((pool / s).with_suffix(".json").read_bytes()) for s in report.shards}
    with Manifest(report.manifest) as manifest:
        assert len(manifest) == len(files)
        assert sorted(manifest.keys()) == sorted({"1", "2", "1234", "2234", "99999"})
        rows = manifest.lookup("1234")
        assert sorted(r.name for r in rows) == ["1234.png", "sub/1234.txt"]
        for row in rows:
            entry = indexes[row.shard]["files"][row.name]
            assert (row.offset, row.size, row.sha256) == (entry["offset"], entry["size"], entry["sha256"])
            assert row.shard_size == indexes[row.shard]["filesize"]
            assert (pool / row.shard).read_bytes()[row.offset : row.offset + row.size] == files[row.name]
        assert [(s.path, s.filesize, s.hash, s.hash_lfs, s.files) for s in manifest.shards()] == [
            (s, i["filesize"], i["hash"], i["hash_lfs"], len(i["files"])) for s, i in sorted(indexes.items())
        ]
        assert manifest.lookup("12") == []


# --------------------------------------------------------------------------------------------------
# packing into a folder that already holds a pool
# --------------------------------------------------------------------------------------------------
def test_pack_refuses_a_non_empty_pool_and_adds_only_when_asked(tmp_path: Path) -> None:
    first = make_files(str(tmp_path / "a"), [1, 2, 1001])
    pool = str(tmp_path / "pool")
    pack_directory(str(tmp_path / "a"), pool, layout="increment-id", base_level=1, silent=True)
    before = {p.name: p.read_bytes() for p in (tmp_path / "pool").rglob("*") if p.is_file()}
    # the same files again, in either layout: refused before a byte is written
    for layout in ("increment-id", "sequential"):
        with pytest.raises(PackError, match=r"not empty.*--add"):
            pack_directory(str(tmp_path / "a"), pool, layout=layout, silent=True)
    # --add with names the pool holds: refused, naming them and their shard
    make_files(str(tmp_path / "b"), [2, 3, 1101], seed=5)
    with pytest.raises(PackError, match=r"(?s)already holds 1 .*\n  2\.bin \(in images/02\.tar\)"):
        pack_directory(str(tmp_path / "b"), pool, layout="increment-id", base_level=1, add=True, silent=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "pool").rglob("*") if p.is_file()} == before
    # --add of new names: 3 and 1101 join the shards cheesechaser looks in (03.tar new, 01.tar rewritten)
    os.remove(tmp_path / "b" / "2.bin")
    second = make_files(str(tmp_path / "c"), [3, 1101], seed=5)
    report = pack_directory(str(tmp_path / "c"), pool, layout="increment-id", base_level=1, add=True, silent=True)
    assert report.shards == {"images/01.tar": 3, "images/03.tar": 1}
    assert verify_pool(pool, silent=True).ok
    files = {**{f"{k}.bin": v for k, v in first.items()}, **{f"{k}.bin": v for k, v in second.items()}}
    got = {}
    for shard in (tmp_path / "pool").rglob("*.tar"):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            assert names == sorted(names, key=lambda n: int(n.split(".")[0]))  # id order, as one pack gives
            got.update({n: tar.extractfile(n).read() for n in names})  # type: ignore[union-attr]
    assert got == files
    with Manifest(os.path.join(pool, MANIFEST_NAME)) as m:
        assert [r.shard for r in m.lookup("1101")] == ["images/01.tar"]
    # the same pool packed from scratch gives byte-identical shards
    both = tmp_path / "both"
    for folder in ("a", "c"):
        for f in (tmp_path / folder).iterdir():
            both.mkdir(exist_ok=True)
            shutil.copy(f, both / f.name)
    pack_directory(str(both), str(tmp_path / "fresh"), layout="increment-id", base_level=1, silent=True)
    for shard in (tmp_path / "fresh").rglob("*.tar"):
        assert shard.read_bytes() == (tmp_path / "pool" / shard.relative_to(tmp_path / "fresh")).read_bytes()


def test_pack_add_sequential_continues_the_shard_numbers(tmp_path: Path) -> None:
    rng = random.Random(3)
    write_files(tmp_path / "a", {f"x/{i}.bin": rng.randbytes(3000) for i in range(4)})
    write_files(tmp_path / "b", {f"y/{i}.bin": rng.randbytes(3000) for i in range(4)})
    pool = str(tmp_path / "pool")
    first = pack_directory(str(tmp_path / "a"), pool, max_shard_size=16 * 1024, silent=True)
    old = {name: (tmp_path / "pool" / name).read_bytes() for name in first.shards}
    second = pack_directory(str(tmp_path / "b"), pool, max_shard_size=16 * 1024, add=True, silent=True)
    assert sorted(first.shards) == ["shard-00000.tar", "shard-00001.tar"]
    assert sorted(second.shards) == ["shard-00002.tar", "shard-00003.tar"]
    assert all((tmp_path / "pool" / name).read_bytes() == data for name, data in old.items())  # untouched
    report = verify_pool(pool, silent=True)
    assert report.ok and report.members == 8


def test_pack_add_refuses_to_carry_over_a_damaged_member(tmp_path: Path) -> None:
    make_files(str(tmp_path / "a"), [1])
    pool = tmp_path / "pool"
    pack_directory(str(tmp_path / "a"), str(pool), layout="increment-id", base_level=1, silent=True)
    shard = pool / "images" / "01.tar"
    data = bytearray(shard.read_bytes())
    data[512 + 3] ^= 0xFF
    shard.write_bytes(bytes(data))
    make_files(str(tmp_path / "b"), [11])
    with pytest.raises(ArchiveError, match=r"member '1\.bin' does not match its index"):
        pack_directory(str(tmp_path / "b"), str(pool), layout="increment-id", base_level=1, add=True, silent=True)
    assert shard.read_bytes() == bytes(data)  # the damaged shard is left as it was, for verify to name
    assert [p.name for p in pool.rglob("*") if is_temp_name(p.name)] == []


# --------------------------------------------------------------------------------------------------
# a full disk (RLIMIT_FSIZE: no mount needed; SIGXFSZ ignored, so a write past it raises EFBIG)
# --------------------------------------------------------------------------------------------------
_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from headwater.cli import main
main(sys.argv[2:], prog_name="headwater")
"""


def pack_limited(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``headwater pack ARGS`` in a child process whose files may not grow past ``limit`` bytes."""
    return subprocess.run([sys.executable, "-c", _LIMITED, str(limit), "pack", *args, "-q"],
                          capture_output=True, text=True, timeout=120)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("layout", ["sequential", "increment-id"])
def test_pack_that_hits_the_file_size_limit_leaves_nothing_and_reruns(tmp_path: Path, layout: str) -> None:
    make_files(str(tmp_path / "src"), list(range(1, 41)), lo=30_000, hi=40_000)  # shards of 120 KB and more
    dst = tmp_path / "pool"
    done = pack_limited(100_000, str(tmp_path / "src"), str(dst), "--layout", layout, "--base-level", "1")
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {dst}: File too large")
    assert "run again" in lines[0] and "Traceback" not in done.stderr
    assert not dst.exists() and os.listdir(tmp_path) == ["src"]  # no shard, index, manifest, staging folder
    again = pack_limited(resource.RLIM_INFINITY, str(tmp_path / "src"), str(dst), "--layout", layout,
                         "--base-level", "1")
    assert again.returncode == 0, again.stderr
    report = verify_pool(str(dst), silent=True)
    assert report.ok and report.members == 40


def test_pack_add_that_hits_the_limit_leaves_the_pool_as_it_was(tmp_path: Path) -> None:
    make_files(str(tmp_path / "a"), list(range(1, 11)), lo=8000, hi=9000)
    make_files(str(tmp_path / "b"), list(range(11, 41)), lo=8000, hi=9000, seed=1)
    dst = tmp_path / "pool"
    pack_directory(str(tmp_path / "a"), str(dst), silent=True)
    before = tree(dst)
    done = pack_limited(150_000, str(tmp_path / "b"), str(dst), "--add")
    assert done.returncode == 3 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert tree(dst) == before and sorted(os.listdir(tmp_path)) == ["a", "b", "pool"]
    again = pack_limited(resource.RLIM_INFINITY, str(tmp_path / "b"), str(dst), "--add")
    assert again.returncode == 0, again.stderr
    report = verify_pool(str(dst), silent=True)
    assert report.ok and report.members == 40 and report.shards == 2


def test_a_shard_failing_while_others_are_written_stops_them_and_leaves_no_temp_file(tmp_path: Path) -> None:
    rng = random.Random(9)
    write_files(tmp_path / "src", {f"{i:03d}.bin": rng.randbytes(5000) for i in range(60)})
    plan = plan_shards(collect_sources(str(tmp_path / "src")), max_shard_size=16 * 1024)
    assert len(plan) >= 10
    broken = list(plan)[4]
    first = plan[broken][0]
    plan[broken][0] = SourceFile(first.name, first.path, first.size + 1)  # the file "changed" since planning
    dst = tmp_path / "dst"
    dst.mkdir()
    with pytest.raises(OSError, match=re.escape(f"{first.path} changed while packing: 5000 bytes, 5001 planned")):
        write_shards(plan, str(dst), max_shard_size=16 * 1024, silent=True, workers=3)
    left = sorted(p.name for p in dst.iterdir())
    assert broken not in left and not [n for n in left if is_temp_name(n) or n.endswith(".tmp")]
    for name in left:  # what was completed is whole: each tar has its index, and they agree
        if name.endswith(".tar"):
            assert decode_index((dst / name).with_suffix(".json").read_bytes()) == index_tar(dst / name)
