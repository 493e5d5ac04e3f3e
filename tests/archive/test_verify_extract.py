"""verify_pool on damaged pools, and extract_shard / safe_target against hostile tars."""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
import uuid
from pathlib import Path

import pytest
from hfutils.index import tar_create_index

from headwater.archive import (
    MANIFEST_NAME,
    UnsafeMemberError,
    decode_index,
    encode_index,
    extract_shard,
    index_tar,
    pack_directory,
    safe_target,
    verify_pool,
)
from headwater.storage import open_store


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def make_pool(tmp_path: Path) -> tuple[Path, dict[str, bytes], list[str]]:
    """A packed pool of three shards; returns (pool dir, files, shard paths)."""
    rng = random.Random(21)
    src = tmp_path / "src"
    files = {f"{i:02d}.bin": rng.randbytes(rng.randint(2000, 5000)) for i in range(9)}
    files["ünï/" + "n" * 120 + ".dat"] = rng.randbytes(3333)
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    pool = tmp_path / "pool"
    report = pack_directory(str(src), str(pool), max_shard_size=16 * 1024, silent=True)
    assert len(report.shards) >= 3
    return pool, files, list(report.shards)


def index_of(pool: Path, shard: str) -> dict:
    return json.loads((pool / shard).with_suffix(".json").read_bytes())


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x55]))


def kinds(report) -> list[tuple[str, str | None, str]]:
    return sorted(((p.shard, p.member, p.kind) for p in report.problems), key=lambda t: (t[0], t[1] or "", t[2]))


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


# --------------------------------------------------------------------------------------------------
# verify_pool
# --------------------------------------------------------------------------------------------------
def test_clean_pool_is_ok(tmp_path: Path) -> None:
    pool, files, shards = make_pool(tmp_path)
    report = verify_pool(str(pool), silent=True)
    assert report.ok and report.problems == []
    assert report.shards == len(shards)
    assert report.members == len(files)


def test_pool_indexed_by_hfutils_is_ok(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    write_tar(pool / "a.tar", {"./1.png": b"one", "x/" + "y" * 130 + "/2.png": b"two" * 300})
    tar_create_index(str(pool / "a.tar"), silent=True)
    report = verify_pool(str(pool), silent=True)
    assert report.ok, report.problems
    assert (report.shards, report.members) == (1, 2)


def test_flipped_data_byte_names_shard_and_member(tmp_path: Path) -> None:
    pool, _files, shards = make_pool(tmp_path)
    shard = shards[1]
    index = index_of(pool, shard)
    victim = list(index["files"])[1]
    entry = index["files"][victim]
    flip(pool / shard, entry["offset"] + entry["size"] // 2)
    report = verify_pool(str(pool), silent=True)
    assert not report.ok
    assert set(kinds(report)) == {(shard, None, "hash"), (shard, None, "hash_lfs"),
                                  (shard, victim, "member-corrupt")}
    assert len(report.problems) == 3
    corrupt = next(p for p in report.problems if p.kind == "member-corrupt")
    assert entry["sha256"] in corrupt.detail
    assert f"{shard}: {victim}: member-corrupt" in str(corrupt)


def test_flipped_header_byte_names_the_member_behind_it(tmp_path: Path) -> None:
    pool, _files, shards = make_pool(tmp_path)
    shard = shards[0]
    names = list(index_of(pool, shard)["files"])
    assert len(names) >= 2
    second = index_of(pool, shard)["files"][names[1]]
    flip(pool / shard, second["offset"] - 512 + 10)  # inside the second member's name field
    report = verify_pool(str(pool), silent=True)
    assert kinds(report) == [(shard, names[1], "corrupt")]
    assert "checksum" in report.problems[0].detail


def test_truncated_shard_is_corrupt_naming_a_member(tmp_path: Path) -> None:
    pool, _files, shards = make_pool(tmp_path)
    shard = shards[-1]
    index = index_of(pool, shard)
    names = list(index["files"])
    cut_in = names[-1]
    entry = index["files"][cut_in]
    with open(pool / shard, "r+b") as f:
        f.truncate(entry["offset"] + entry["size"] // 2)
    report = verify_pool(str(pool), silent=True)
    corrupt = [p for p in report.problems if p.kind == "corrupt"]
    assert [(p.shard, p.member) for p in corrupt] == [(shard, cut_in)]
    assert repr(cut_in) in corrupt[0].detail
    # the other shards are still fine
    assert {p.shard for p in report.problems} <= {shard, MANIFEST_NAME}


def test_deleted_shard_is_missing_shard(tmp_path: Path) -> None:
    pool, _files, shards = make_pool(tmp_path)
    (pool / shards[1]).unlink()
    report = verify_pool(str(pool), silent=True)
    assert (shards[1], None, "missing-shard") in kinds(report)
    assert {p.shard for p in report.problems if p.kind != "stale-manifest"} == {shards[1]}
    assert report.shards == len(shards) - 1


def test_deleted_index_is_missing_index(tmp_path: Path) -> None:
    pool, _files, shards = make_pool(tmp_path)
    (pool / shards[2]).with_suffix(".json").unlink()
    report = verify_pool(str(pool), silent=True)
    assert kinds(report) == [(shards[2], None, "missing-index")]


@pytest.mark.parametrize("payload", [b"{not json", b'{"filesize": 1}', b"", b"\xff\xfe"])
def test_malformed_index_is_bad_index(tmp_path: Path, payload: bytes) -> None:
    pool, _files, shards = make_pool(tmp_path)
    (pool / shards[0]).with_suffix(".json").write_bytes(payload)
    report = verify_pool(str(pool), silent=True)
    assert kinds(report) == [(shards[0], None, "bad-index")]
    assert shards[0].replace(".tar", ".json") in report.problems[0].detail


def test_index_that_lies_about_members(tmp_path: Path) -> None:
    pool, _files, shards = make_pool(tmp_path)
    shard = shards[0]
    index = index_of(pool, shard)
    names = list(index["files"])
    index["files"]["ghost.bin"] = {"offset": 512, "size": 1, "sha256": "0" * 64}
    index["files"][names[0]]["offset"] += 512
    dropped = names[1]
    del index["files"][dropped]
    (pool / shard).with_suffix(".json").write_text(json.dumps(index))
    report = verify_pool(str(pool), silent=True)
    problems = kinds(report)
    assert (shard, "ghost.bin", "member-missing") in problems
    assert (shard, names[0], "member-moved") in problems
    assert (shard, dropped, "member-unindexed") in problems
    assert {p for p in problems if p[0] == shard} == {
        (shard, "ghost.bin", "member-missing"), (shard, names[0], "member-moved"),
        (shard, dropped, "member-unindexed"),
    }


def test_unsafe_name_in_index_is_reported(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    write_tar(pool / "evil.tar", {"../escape.txt": b"x", "fine.txt": b"y"})
    (pool / "evil.json").write_bytes(encode_index(index_tar(pool / "evil.tar")))
    report = verify_pool(str(pool), silent=True)
    assert kinds(report) == [("evil.tar", "../escape.txt", "unsafe-name")]


# --------------------------------------------------------------------------------------------------
# extract_shard / safe_target
# --------------------------------------------------------------------------------------------------
def _outside_listing(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*"))


@pytest.mark.parametrize("with_index", [False, True])
def test_extract_refuses_escaping_names(tmp_path: Path, with_index: bool) -> None:
    abs_name = f"/headwater-test-{uuid.uuid4().hex}.txt"
    members = {
        "../evil.txt": b"evil",
        abs_name: b"absolute",
        "a/../../x": b"climb",
        "ok.txt": b"fine",
        "./dot/ok2.txt": b"fine too",
        "b//empty-part.txt": b"odd",
        "c/./d.txt": b"odd",
        "back\\slash.txt": b"odd",
    }
    pool = tmp_path / "pool"
    write_tar(pool / "evil.tar", members)
    if with_index:
        (pool / "evil.json").write_bytes(encode_index(index_tar(pool / "evil.tar")))
    base = tmp_path / "deep" / "er"
    dst = base / "out"
    dst.mkdir(parents=True)
    before = _outside_listing(tmp_path)

    try:
        report = extract_shard(str(pool), "evil.tar", str(dst))
    finally:
        escaped = os.path.exists(abs_name)
        if escaped:  # clean up before failing
            os.unlink(abs_name)
    assert not escaped

    assert sorted(report.written) == ["./dot/ok2.txt", "ok.txt"]
    assert set(report.refused) == set(members) - {"ok.txt", "./dot/ok2.txt"}
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == ["dot/ok2.txt", "ok.txt"]
    assert (dst / "ok.txt").read_bytes() == b"fine"
    assert (dst / "dot" / "ok2.txt").read_bytes() == b"fine too"
    after = _outside_listing(tmp_path)
    new_outside = [p for p in after if p not in before and not p.startswith("deep/er/out/")]
    assert new_outside == []
    assert sorted(os.listdir(base)) == ["out"]
    assert sorted(os.listdir(base.parent)) == ["er"]


def test_extract_refuses_corrupt_member(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    write_tar(pool / "s.tar", {"good.txt": b"good" * 10, "bad.txt": b"bad" * 10})
    index = index_tar(pool / "s.tar")
    (pool / "s.json").write_bytes(encode_index(index))
    flip(pool / "s.tar", index.files["bad.txt"].offset + 3)
    out = tmp_path / "out"
    report = extract_shard(str(pool), "s.tar", str(out))
    assert report.written == ["good.txt"]
    assert "sha256 mismatch" in report.refused["bad.txt"]
    assert sorted(os.listdir(out)) == ["good.txt"]


def test_extract_from_store_object_with_explicit_index(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    write_tar(pool / "s.tar", {"1.txt": b"one", "2.txt": b"two"})
    (pool / "s.json").write_bytes(b"garbage that must not be read")
    index = index_tar(pool / "s.tar")
    report = extract_shard(open_store(str(pool)), "s.tar", str(tmp_path / "out"), index=index)
    assert sorted(report.written) == ["1.txt", "2.txt"] and report.refused == {}
    assert (tmp_path / "out" / "2.txt").read_bytes() == b"two"


def test_safe_target_does_not_follow_symlinked_dir_out_of_dst(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    outside = tmp_path / "outside"
    dst.mkdir()
    outside.mkdir()
    os.symlink(outside, dst / "link")
    with pytest.raises(UnsafeMemberError, match="outside"):
        safe_target(str(dst), "link/x.txt")
    # a symlink inside dst that stays inside dst is fine
    (dst / "real").mkdir()
    os.symlink(dst / "real", dst / "inner")
    assert safe_target(str(dst), "inner/y.txt") == os.path.join(os.path.realpath(dst), "real", "y.txt")
    assert safe_target(str(dst), "./plain.txt") == os.path.join(os.path.realpath(dst), "plain.txt")

    pool = tmp_path / "pool"
    write_tar(pool / "s.tar", {"link/x.txt": b"through the link", "ok.txt": b"ok"})
    report = extract_shard(str(pool), "s.tar", str(dst))
    assert report.written == ["ok.txt"]
    assert list(report.refused) == ["link/x.txt"]
    assert os.listdir(outside) == []


@pytest.mark.parametrize("dangling", [False, True])
def test_safe_target_does_not_follow_symlinked_file_out_of_dst(tmp_path: Path, dangling: bool) -> None:
    dst = tmp_path / "dst"
    outside = tmp_path / "outside"
    dst.mkdir()
    outside.mkdir()
    target = outside / "target.txt"
    if not dangling:
        target.write_bytes(b"precious")
    os.symlink(target, dst / "ok.txt")
    with pytest.raises(UnsafeMemberError):
        safe_target(str(dst), "ok.txt")
    pool = tmp_path / "pool"
    write_tar(pool / "s.tar", {"ok.txt": b"overwrite attempt"})
    report = extract_shard(str(pool), "s.tar", str(dst))
    assert report.written == [] and list(report.refused) == ["ok.txt"]
    if dangling:
        assert not target.exists()
    else:
        assert target.read_bytes() == b"precious"
    assert os.path.islink(dst / "ok.txt")


@pytest.mark.parametrize("name", ["", ".", "./", "/", "..", "a/..", "nul\0byte", "/etc/passwd", "x/../../y"])
def test_safe_target_refuses(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeMemberError):
        safe_target(str(tmp_path), name)


def test_extract_then_repack_round_trip(tmp_path: Path) -> None:
    """What pack writes, extract gives back byte for byte (and verify agrees the pool is clean)."""
    pool, files, shards = make_pool(tmp_path)
    out = tmp_path / "out"
    for shard in shards:
        report = extract_shard(str(pool), shard, str(out))
        assert report.refused == {}
        assert report.written == list(decode_index((pool / shard).with_suffix(".json").read_bytes()).files)
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


def test_extract_reports_file_dir_clash_and_verify_ignores_foreign_json(tmp_path):
    import io
    import tarfile as _tarfile

    from headwater.archive import extract_shard, verify_pool

    pool = tmp_path / "pool"
    pool.mkdir()
    with _tarfile.open(pool / "clash.tar", "w") as tar:
        for name in ("a", "a/b"):
            info = _tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    from headwater.archive import encode_index, index_tar

    (pool / "clash.json").write_bytes(encode_index(index_tar(pool / "clash.tar")))
    report = extract_shard(str(pool), "clash.tar", str(tmp_path / "dst"))
    assert report.written == ["a"] and "a/b" in report.refused
    (pool / "meta.json").write_text('{"about": "not an index"}')
    assert verify_pool(str(pool), silent=True).ok


def test_a_name_held_by_two_shards_is_ambiguous(tmp_path: Path) -> None:
    # what two `pack` runs into one folder used to leave (see the README): intact shards, two '1.jpg'
    pool = tmp_path / "pool"
    write_tar(pool / "images" / "1.tar", {"1.jpg": b"increment-id copy", "11.jpg": b"x"})
    write_tar(pool / "shard-00000.tar", {"1.jpg": b"sequential copy", "2.jpg": b"y"})
    for shard in ("images/1.tar", "shard-00000.tar"):
        (pool / shard).with_suffix(".json").write_bytes(encode_index(index_tar(str(pool / shard))))
    report = verify_pool(str(pool), silent=True)
    assert kinds(report) == [("images/1.tar", "1.jpg", "ambiguous-name")]
    assert "images/1.tar, shard-00000.tar" in str(report.problems[0])


def test_extract_without_an_index_names_members_that_are_not_files(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    with tarfile.open(pool / "s.tar", "w") as tar:
        info = tarfile.TarInfo("a.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
        for name, kind in (("l", tarfile.SYMTYPE), ("f", tarfile.FIFOTYPE), ("d", tarfile.DIRTYPE)):
            other = tarfile.TarInfo(name)
            other.type, other.linkname = kind, "a.txt" if kind == tarfile.SYMTYPE else ""
            tar.addfile(other)
    report = extract_shard(str(pool), "s.tar", str(tmp_path / "out"))
    assert report.written == ["a.txt"]
    assert report.refused == {"l": "symlink: not a regular file, not extracted",
                              "f": "fifo: not a regular file, not extracted"}  # a directory is no problem


@pytest.mark.parametrize("name", ["x" * 256 + ".bin", "/".join(["y" * 200] * 21)], ids=["part", "whole"])
def test_names_no_file_system_holds_are_unsafe_everywhere(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeMemberError, match="too long"):
        safe_target(str(tmp_path), name)
    assert safe_target(str(tmp_path), "x" * 255) == str(tmp_path / ("x" * 255))


def _cut_tar(pool: Path) -> dict[str, bytes]:
    """s.tar with five 1,000-byte members, cut in the middle of the third one."""
    members = {f"{i}.bin": bytes([i]) * 1000 for i in range(5)}
    write_tar(pool / "s.tar", members)
    third = index_tar(pool / "s.tar").files["2.bin"]
    (pool / "s.json").write_bytes(encode_index(index_tar(pool / "s.tar")))
    os.truncate(pool / "s.tar", third.offset + 400)
    return members


def test_extract_of_a_cut_shard_without_an_index_writes_what_comes_before_the_cut(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    members = _cut_tar(pool)
    (pool / "s.json").unlink()
    report = extract_shard(str(pool), "s.tar", str(tmp_path / "out"))
    assert report.written == ["0.bin", "1.bin"]
    assert [(tmp_path / "out" / n).read_bytes() for n in report.written] == [members["0.bin"], members["1.bin"]]
    [(where, reason)] = report.refused.items()
    assert where.startswith("s.tar from byte ") and "inside member '2.bin': 400 of 1000 bytes" in reason


def test_extract_of_a_cut_served_shard_writes_every_intact_member(tmp_path: Path, file_server) -> None:
    pool = tmp_path / "pool"
    members = _cut_tar(pool)
    server = file_server(pool)
    report = extract_shard(server.url, "s.tar", str(tmp_path / "out"))
    assert report.written == ["0.bin", "1.bin"] and sorted(os.listdir(tmp_path / "out")) == ["0.bin", "1.bin"]
    assert (tmp_path / "out" / "1.bin").read_bytes() == members["1.bin"]
    assert report.refused["2.bin"].startswith("truncated: got 400 of 1000 bytes (the shard ends at byte ")
    assert report.refused["3.bin"].startswith("truncated: got 0 of 1000 bytes")
    assert server.requests["s.tar"] == 3  # 0, 1, the cut one; those past the end are known without asking
