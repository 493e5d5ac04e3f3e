"""The streaming tar walk and the hfutils-format index, checked against hfutils itself on real tars.

Every archive here is a real file written by Python's ``tarfile`` (GNU, PAX, USTAR), by the system
``tar`` (GNU tar) or by our own ``pack_directory``; the reference for the index is
``hfutils.index.tar_get_index_info`` (which walks with ``tarfile`` and hashes by extracting).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hfutils.index import (
    tar_create_index,
    tar_file_download,
    tar_get_index_info,
    tar_list_files,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from headwater.archive import (
    MANIFEST_NAME,
    IndexFormatError,
    Manifest,
    TarFormatError,
    TruncatedTarError,
    decode_index,
    encode_index,
    index_stream,
    index_tar,
    pack_directory,
    rebuild_manifest,
    walk_tar,
)
from headwater.pool import ResourceNotFoundError, StorePool

TAR = shutil.which("tar")
LONG_COMPONENT = "L" * 120 + ".dat"  # one path component > 100 chars: needs GNU 'L' or pax 'path'
SPLITTABLE = "d" * 60 + "/" + "e" * 60 + "/f.txt"  # > 100 chars, but fits ustar's prefix + name
UNICODE = "sub/deeper/ünïcødé-名前.png"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def ours_json(path: Path | str, *, with_hash: bool = True) -> dict:
    return json.loads(encode_index(index_tar(path, with_hash=with_hash)))


def assert_same_as_hfutils(path: Path | str, *, with_hash: bool = True) -> dict:
    """Our index (as hfutils would read the JSON) equals hfutils' exactly, key order included."""
    ours = ours_json(path, with_hash=with_hash)
    theirs = tar_get_index_info(str(path), with_hash=with_hash, silent=True)
    assert ours == theirs
    assert list(ours) == list(theirs)
    assert list(ours["files"]) == list(theirs["files"])
    return ours


def member_bytes(tar_path: Path | str, entry: dict) -> bytes:
    with open(tar_path, "rb") as f:
        f.seek(entry["offset"])
        return f.read(entry["size"])


def make_tree(root: Path, *, long_component: bool = True, splittable: bool = True, links: bool = True) -> dict:
    """A source tree; returns relative path → bytes of its regular files (hard link excluded)."""
    rng = random.Random(1234)
    files = {
        "a.txt": b"hello",
        "empty.bin": b"",
        "exact512.bin": rng.randbytes(512),
        UNICODE: rng.randbytes(513),
        "sub/plain.bin": rng.randbytes(3000),
    }
    if long_component:
        files["sub/" + LONG_COMPONENT] = rng.randbytes(1025)
    if splittable:
        files[SPLITTABLE] = rng.randbytes(100)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "emptydir").mkdir()
    if links:
        os.symlink("a.txt", root / "link")
        os.link(root / "a.txt", root / "hard.txt")
    return files


# --------------------------------------------------------------------------------------------------
# hfutils compatibility: tars written by Python's tarfile
# --------------------------------------------------------------------------------------------------
FORMATS = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_tarfile_add_dot_matches_hfutils(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    files = make_tree(src, long_component=fmt != "ustar")
    tar_path = tmp_path / "t.tar"
    with tarfile.open(tar_path, "w", format=FORMATS[fmt]) as tar:
        tar.add(src, arcname=".")
        # a name without the ./ prefix, and the same name added twice (the later one wins)
        tar.add(src / "sub" / "plain.bin", arcname="plain/x.txt")
        for payload in (b"first version", b"second, longer version"):
            info = tarfile.TarInfo("./dup.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    ours = assert_same_as_hfutils(tar_path)

    expected = {"./" + rel for rel in files} | {"plain/x.txt", "./dup.txt"}
    assert set(ours["files"]) == expected  # no directories, symlinks or hard links
    assert "./hard.txt" not in ours["files"] and "./link" not in ours["files"]
    for rel, data in files.items():
        entry = ours["files"]["./" + rel]
        assert entry["size"] == len(data)
        assert member_bytes(tar_path, entry) == data
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert member_bytes(tar_path, ours["files"]["./dup.txt"]) == b"second, longer version"
    assert member_bytes(tar_path, ours["files"]["plain/x.txt"]) == files["sub/plain.bin"]
    raw = tar_path.read_bytes()
    assert ours["filesize"] == len(raw)
    assert ours["hash_lfs"] == hashlib.sha256(raw).hexdigest()
    assert ours["hash"] == hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_tarfile_special_headers_match_hfutils(tmp_path: Path, fmt: str) -> None:
    """Global pax header, pax/base-256 numbers, long link names: none may shift offsets or names."""
    tar_path = tmp_path / "special.tar"
    extra: dict[str, Any] = {"pax_headers": {"comment": "a global header"}} if fmt == "pax" else {}
    with tarfile.open(tar_path, "w", format=FORMATS[fmt], **extra) as tar:
        big = tarfile.TarInfo("big-uid.bin")  # uid too big for octal: base-256 (GNU) or a pax record
        big.uid = 10**9
        big.size = 700
        tar.addfile(big, io.BytesIO(b"u" * 700))
        link = tarfile.TarInfo("lnk")
        link.type = tarfile.SYMTYPE
        link.linkname = "t/" * 80 + "target"  # > 100 chars: GNU 'K' header or pax 'linkpath'
        tar.addfile(link)
        hard = tarfile.TarInfo("hl")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "big-uid.bin"
        tar.addfile(hard)
        d = tarfile.TarInfo("some/dir/")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        after = tarfile.TarInfo("some/dir/" + "n" * 150 + ".txt")
        after.size = 3
        tar.addfile(after, io.BytesIO(b"end"))
    ours = assert_same_as_hfutils(tar_path)
    assert list(ours["files"]) == ["big-uid.bin", "some/dir/" + "n" * 150 + ".txt"]
    assert member_bytes(tar_path, ours["files"]["some/dir/" + "n" * 150 + ".txt"]) == b"end"


def test_global_pax_path_applies_to_later_members(tmp_path: Path) -> None:
    """tarfile applies a global pax header's records to every later member; so must we."""
    tar_path = tmp_path / "g.tar"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT, pax_headers={"path": "global-name"}) as tar:
        for name, data in (("one", b"1"), ("two", b"22"), ("ünï-has-its-own-path", b"333")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ours = assert_same_as_hfutils(tar_path)
    assert {k: v["size"] for k, v in ours["files"].items()} == {"global-name": 2, "ünï-has-its-own-path": 3}


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar"])
def test_without_hash_matches_hfutils(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    make_tree(src, long_component=fmt != "ustar")
    tar_path = tmp_path / "t.tar"
    with tarfile.open(tar_path, "w", format=FORMATS[fmt]) as tar:
        tar.add(src, arcname=".")
    ours = assert_same_as_hfutils(tar_path, with_hash=False)
    assert all("sha256" not in e for e in ours["files"].values())


def test_v7_style_directory_is_not_a_file(tmp_path: Path) -> None:
    """An old-style regular header whose name ends in '/' is a directory (as in tarfile)."""
    tar_path = tmp_path / "v7.tar"
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tar:
        d = tarfile.TarInfo("olddir/")
        d.type = tarfile.AREGTYPE
        tar.addfile(d)
        f = tarfile.TarInfo("olddir/f")
        f.type = tarfile.AREGTYPE
        f.size = 2
        tar.addfile(f, io.BytesIO(b"ok"))
    ours = assert_same_as_hfutils(tar_path)
    assert list(ours["files"]) == ["olddir/f"]
    kinds = {m.name: m.isdir for m, _ in walk_tar(io.BytesIO(tar_path.read_bytes()))}
    assert kinds == {"olddir": True, "olddir/f": False}


# --------------------------------------------------------------------------------------------------
# hfutils compatibility: tars written by GNU tar
# --------------------------------------------------------------------------------------------------
SYSTEM_FORMATS = {
    "default": ([], {}),
    "pax": (["--format=pax"], {}),
    "oldgnu": (["--format=oldgnu"], {}),
    "ustar": (["--format=ustar"], {"long_component": False}),
    "v7": (["--format=v7"], {"long_component": False, "splittable": False}),
}


@pytest.mark.skipif(TAR is None, reason="no system tar")
@pytest.mark.parametrize("fmt", list(SYSTEM_FORMATS))
def test_system_tar_matches_hfutils(tmp_path: Path, fmt: str) -> None:
    args, tree = SYSTEM_FORMATS[fmt]
    src = tmp_path / "src"
    files = make_tree(src, **tree)
    tar_path = tmp_path / "sys.tar"
    assert TAR is not None  # (skipped otherwise)
    subprocess.run([TAR, "-cf", str(tar_path), *args, "-C", str(src), "."], check=True, capture_output=True)
    ours = assert_same_as_hfutils(tar_path)
    # GNU tar stores one of a.txt / hard.txt as a hard link; every other file is a regular member
    names = set(ours["files"])
    assert len(names & {"./a.txt", "./hard.txt"}) == 1
    assert names - {"./a.txt", "./hard.txt"} == {"./" + rel for rel in files} - {"./a.txt"}
    for rel, data in files.items():
        if rel != "a.txt":
            assert member_bytes(tar_path, ours["files"]["./" + rel]) == data


# --------------------------------------------------------------------------------------------------
# hfutils compatibility: our own shards, both ways
# --------------------------------------------------------------------------------------------------
def test_pack_directory_shards_match_hfutils(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, links=False)
    report = pack_directory(str(src), str(tmp_path / "pool"), max_shard_size=10 * 1024, silent=True)
    assert len(report.shards) >= 2
    seen = {}
    for shard in report.shards:
        tar_path = tmp_path / "pool" / shard
        ours = assert_same_as_hfutils(tar_path)
        stored = json.loads(tar_path.with_suffix(".json").read_bytes())
        assert stored == ours
        seen.update(ours["files"])
    assert set(seen) == set(files)


def test_hfutils_reads_our_index(tmp_path: Path) -> None:
    """hfutils' own reader (tar_file_download: seek + sha256 check) on a shard we wrote."""
    src = tmp_path / "src"
    files = make_tree(src, links=False)
    pool = tmp_path / "pool"
    report = pack_directory(str(src), str(pool), max_shard_size=10 * 1024, silent=True)
    got: dict[str, bytes] = {}
    for shard in report.shards:
        listed = tar_list_files(str(pool / shard))
        assert listed == list(decode_index((pool / shard).with_suffix(".json").read_bytes()).files)
        for i, name in enumerate(listed):
            local = tmp_path / "out" / f"{shard}-{i}"
            tar_file_download(str(pool / shard), name, str(local))
            got[name] = local.read_bytes()
    assert got == files


def pax_tree_tar(tmp_path: Path) -> Path:
    """``make_tree`` packed by tarfile in PAX format with ``./`` names; returns the tar's path."""
    src = tmp_path / "src"
    make_tree(src)
    tar_path = tmp_path / "t.tar"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=".")
    return tar_path


def test_decode_index_reads_hfutils_index(tmp_path: Path) -> None:
    tar_path = pax_tree_tar(tmp_path)
    for with_hash in (True, False):
        idx_file = tar_create_index(str(tar_path), str(tmp_path / f"idx-{with_hash}.json"), with_hash=with_hash,
                                    silent=True)
        decoded = decode_index(Path(idx_file).read_bytes(), source=idx_file)
        assert decoded == index_tar(tar_path, with_hash=with_hash)
        assert json.loads(encode_index(decoded)) == json.loads(Path(idx_file).read_bytes())
        if not with_hash:
            assert all(e.sha256 is None for e in decoded.files.values())


@pytest.mark.parametrize("bad", [b"", b"not json", b"[]", b'{"filesize": 1}',
                                 b'{"filesize": "x", "hash": "", "hash_lfs": "", "files": {}}',
                                 b'{"filesize": 1, "hash": "", "hash_lfs": "", "files": {"a": {"size": 1}}}'])
def test_decode_index_rejects_malformed(bad: bytes) -> None:
    with pytest.raises(IndexFormatError, match=re.escape("some/source.json")):
        decode_index(bad, source="some/source.json")


def _write_tar(path: Path, members: dict[str, bytes], fmt: int = tarfile.GNU_FORMAT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("with_manifest", [True, False])
def test_pool_over_hfutils_indexes_serves_files(tmp_path: Path, with_manifest: bool) -> None:
    rng = random.Random(5)
    pool = tmp_path / "pool"
    shards = {
        "part-a.tar": {"12.png": rng.randbytes(700), "./34.txt": b"thirty-four", "sub/56.bin": rng.randbytes(5000)},
        "nested/part-b.tar": {"78.jpg": rng.randbytes(10), "ünï/" + "x" * 110 + "/99.dat": rng.randbytes(2049)},
    }
    for shard, members in shards.items():
        _write_tar(pool / shard, members, tarfile.PAX_FORMAT if "nested" in shard else tarfile.GNU_FORMAT)
        tar_create_index(str(pool / shard), silent=True)  # hfutils writes the JSON beside the tar
    if with_manifest:
        rebuild_manifest(str(pool))
        with Manifest(str(pool / MANIFEST_NAME)) as manifest:
            rows = manifest.lookup("56")
            assert [(r.shard, r.name) for r in rows] == [("part-a.tar", "sub/56.bin")]
            assert len(manifest) == 5
    else:
        assert not (pool / MANIFEST_NAME).exists()
    sp = StorePool(str(pool))
    for members in shards.values():
        for name, data in members.items():
            rid = int(os.path.splitext(os.path.basename(name))[0])
            with sp.mock_resource(rid, {"id": rid}) as (td, info):
                assert info == {"id": rid}
                assert os.listdir(td) == [os.path.basename(name)]
                assert Path(td, os.path.basename(name)).read_bytes() == data
    with pytest.raises(ResourceNotFoundError), sp.mock_resource(4242, None):
        pass


def test_increment_id_pool_over_hfutils_index(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    _write_tar(pool / "images" / "0234.tar", {"1234.png": b"one-two-three-four", "5234.webp": b"5234"})
    _write_tar(pool / "images" / "0001.tar", {"1001.png": b"1001"})
    for tar_path in (pool / "images").glob("*.tar"):
        tar_create_index(str(tar_path), silent=True)
    rebuild_manifest(str(pool))
    sp = StorePool(str(pool), layout="increment-id")
    for rid, name, data in [(1234, "1234.png", b"one-two-three-four"), (5234, "5234.webp", b"5234"),
                            (1001, "1001.png", b"1001")]:
        with sp.mock_resource(rid, None) as (td, _):
            assert {n: Path(td, n).read_bytes() for n in os.listdir(td)} == {name: data}


# --------------------------------------------------------------------------------------------------
# property test: random member sets, PAX and GNU, against hfutils and across chunk sizes
# --------------------------------------------------------------------------------------------------
_alphabet = st.one_of(st.characters(categories=("L", "N")), st.sampled_from("-_ .~"))
_segment = st.text(alphabet=_alphabet, min_size=1, max_size=40).filter(lambda s: s not in (".", ".."))
_long_segment = st.text(alphabet=_alphabet, min_size=51, max_size=60)
_name = st.one_of(
    st.lists(_segment, min_size=1, max_size=4).map("/".join),
    st.lists(_long_segment, min_size=2, max_size=3).map("/".join),  # always > 100 characters
)
_members = st.lists(st.tuples(_name, st.binary(max_size=1200)), min_size=1, max_size=6,
                    unique_by=lambda t: t[0])


@pytest.mark.parametrize("fmt", ["pax", "gnu"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=_members)
@example(members=[("ü" * 70 + "/" + "名" * 40 + ".bin", b"x" * 513), ("short", b""),
                  ("a" * 99 + "/" + "b" * 30, b"\0" * 1024)])
def test_property_random_members_match_hfutils(fmt: str, members: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as td:
        tar_path = Path(td) / "p.tar"
        _write_tar(tar_path, dict(members), FORMATS[fmt])
        ours = assert_same_as_hfutils(tar_path)
        assert list(ours["files"]) == [name for name, _ in members]
        for name, data in members:
            assert member_bytes(tar_path, ours["files"][name]) == data
        raw = tar_path.read_bytes()
    default = index_stream(io.BytesIO(raw), len(raw))
    for chunk_size in (7, 512, 1000, 4096):
        assert index_stream(io.BytesIO(raw), len(raw), chunk_size=chunk_size) == default
        assert encode_index(index_stream(io.BytesIO(raw), len(raw), chunk_size=chunk_size)) == encode_index(default)


def test_index_stream_over_a_pipe_with_short_reads(tmp_path: Path) -> None:
    """A real pipe delivers the tar in small, irregular pieces; the index must not change."""
    tar_path = pax_tree_tar(tmp_path)
    raw = tar_path.read_bytes()
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb", buffering=0) as out:
            for i in range(0, len(raw), 333):
                out.write(raw[i : i + 333])

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(r, "rb", buffering=0) as stream:
        piped = index_stream(stream, len(raw), chunk_size=4096)
    writer.join()
    assert piped == index_tar(tar_path)


def test_on_chunk_sees_every_byte_including_trailing_data(tmp_path: Path) -> None:
    tar_path = tmp_path / "t.tar"
    _write_tar(tar_path, {"a": b"abc", "b": b"d" * 600})
    raw = tar_path.read_bytes() + b"trailing garbage after the end marker"
    seen = bytearray()
    members = list(walk_tar(io.BytesIO(raw), on_chunk=seen.extend, chunk_size=100))
    assert bytes(seen) == raw
    assert [(m.name, m.offset_data, m.size, d) for m, d in members] == [
        ("a", 512, 3, hashlib.sha256(b"abc").hexdigest()),
        ("b", 1536, 600, hashlib.sha256(b"d" * 600).hexdigest()),
    ]
    assert index_stream(io.BytesIO(raw), len(raw)).hash_lfs == hashlib.sha256(raw).hexdigest()
    with pytest.raises(IndexFormatError, match="said to be"):
        index_stream(io.BytesIO(raw), len(raw) + 1)


# --------------------------------------------------------------------------------------------------
# damaged archives
# --------------------------------------------------------------------------------------------------
def _damage_fixture(tmp_path: Path, fmt: int = tarfile.PAX_FORMAT) -> tuple[bytes, dict]:
    members = {
        "first.txt": b"1" * 100,
        "ünï-" + "m" * 120 + ".bin": bytes(range(256)) * 20 + b"!",  # 5121 bytes: 511 bytes of padding
        "last.txt": b"z" * 10,
    }
    tar_path = tmp_path / "d.tar"
    _write_tar(tar_path, members, fmt)
    return tar_path.read_bytes(), ours_json(tar_path)["files"]


def _walk(raw: bytes) -> list:
    return list(walk_tar(io.BytesIO(raw)))


def test_truncated_in_member_data_names_the_member(tmp_path: Path) -> None:
    raw, files = _damage_fixture(tmp_path)
    name = "ünï-" + "m" * 120 + ".bin"
    cut = files[name]["offset"] + 1000
    with pytest.raises(TruncatedTarError, match="inside member") as info:
        _walk(raw[:cut])
    assert repr(name) in str(info.value)
    assert "1000 of 5121 bytes" in str(info.value)
    assert info.value.offset == files[name]["offset"]
    with pytest.raises(TruncatedTarError):
        index_stream(io.BytesIO(raw[:cut]), cut)


@pytest.mark.parametrize("where", ["header", "pax-header", "padding"])
def test_truncated_elsewhere_raises_truncated(tmp_path: Path, where: str) -> None:
    raw, files = _damage_fixture(tmp_path)
    name = "ünï-" + "m" * 120 + ".bin"
    if where == "header":
        cut, message = files["last.txt"]["offset"] - 200, "inside the header"  # in last.txt's header
    elif where == "pax-header":
        # first.txt: header 0, data 512; the long name's pax header at 1024, its records at 1536
        cut, message = files["first.txt"]["offset"] + 1024 + 100, "inside an extended header"
    else:
        cut, message = files[name]["offset"] + files[name]["size"] + 10, "in the padding after member"
    with pytest.raises(TruncatedTarError, match=message) as info:
        _walk(raw[:cut])
    assert info.value.offset is not None and info.value.offset < cut


def test_flipped_header_byte_is_a_checksum_error(tmp_path: Path) -> None:
    raw, files = _damage_fixture(tmp_path)
    header = files["last.txt"]["offset"] - 512
    bad = bytearray(raw)
    bad[header + 3] ^= 0x01  # inside the name field
    with pytest.raises(TarFormatError, match="checksum") as info:
        _walk(bytes(bad))
    assert not isinstance(info.value, TruncatedTarError)
    assert info.value.offset == header
    assert _walk(raw)  # the undamaged bytes walk fine


def test_garbage_in_size_field_is_a_format_error(tmp_path: Path) -> None:
    raw, files = _damage_fixture(tmp_path, tarfile.GNU_FORMAT)
    header = files["last.txt"]["offset"] - 512
    block = bytearray(raw[header : header + 512])
    block[124:136] = b"9zz9zz9zz9z\0"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % (sum(block))  # a valid checksum, so the size field is what fails
    bad = raw[:header] + bytes(block) + raw[header + 512 :]
    with pytest.raises(TarFormatError, match="invalid number field") as info:
        _walk(bad)
    assert info.value.offset == header


def test_crafted_gnu_sparse_member_is_refused(tmp_path: Path) -> None:
    raw, files = _damage_fixture(tmp_path, tarfile.GNU_FORMAT)
    header = files["last.txt"]["offset"] - 512
    block = bytearray(raw[header : header + 512])
    block[156:157] = b"S"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % (sum(block))
    with pytest.raises(TarFormatError, match="sparse"):
        _walk(raw[:header] + bytes(block) + raw[header + 512 :])


@pytest.mark.skipif(TAR is None, reason="no system tar")
@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_system_tar_sparse_member_is_refused(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse.bin", "wb") as f:
        f.write(b"head")
        f.seek(4 << 20)
        f.write(b"tail")
    tar_path = tmp_path / "s.tar"
    assert TAR is not None  # (skipped otherwise)
    subprocess.run([TAR, "-S", f"--format={fmt}", "-cf", str(tar_path), "-C", str(src), "sparse.bin"],
                   check=True, capture_output=True)
    with tarfile.open(tar_path) as tar:
        if not any(m.issparse() for m in tar.getmembers()):
            pytest.skip("this filesystem did not produce a sparse member")
    with pytest.raises(TarFormatError, match="sparse"):
        index_tar(tar_path)


@pytest.mark.parametrize(
    ("name", "normal"),
    [("./a//b.png", "a/b.png"), ("a/./b.png", "a/b.png"), ("/abs/x", "abs/x"), ("x/../y", "y"), ("plain", "plain")],
)
def test_normalize_member_name_and_index_path(name: str, normal: str) -> None:
    from headwater.archive import index_path_for, normalize_member_name

    assert normalize_member_name(name) == normal
    assert index_path_for("images/0234.tar") == "images/0234.json"
    assert index_path_for("a.b/shard.tar") == "a.b/shard.json"
