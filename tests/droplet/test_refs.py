"""Image references and ImageFetcher: real packed pools on disk and over HTTP, files, file:// URLs."""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from headwater.archive import pack_directory
from headwater.droplet import (
    Image,
    ImageAnnotation,
    ImageFetcher,
    ImageFetchError,
    ImageRef,
    ImageRefError,
    format_image_ref,
    parse_image_ref,
)
from headwater.pool import IndexedPool, ResourceNotFoundError, StorePool

from ..support.httpserver import FileServer


# -- parsing --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "kind", "pool", "key"), [
    ("pool://coco/000123.jpg", "pool", "coco", "000123.jpg"),
    ("pool://coco/train/2017/000123.jpg", "pool", "coco", "train/2017/000123.jpg"),
    ("pool://my-pool_1.v2/1234", "pool", "my-pool_1.v2", "1234"),
    ("POOL://coco/a b%20c.jpg", "pool", "coco", "a b%20c.jpg"),  # the key is literal
    ("https://example.com/a/b.jpg?sig=1", "url", None, None),
    ("http://127.0.0.1:8000/x.png", "url", None, None),
    ("s3://bucket/prefix/x.png", "url", None, None),
    ("hf://datasets/owner/repo@main/images/x.png", "url", None, None),
    ("file:///data/x.png", "file", None, None),
    ("/data/x.png", "file", None, None),
    ("images/x.png", "file", None, None),
    ("C:\\images\\x.png", "file", None, None),
])
def test_parse_image_ref(path: str, kind: str, pool: str | None, key: str | None) -> None:
    ref = parse_image_ref(path)
    assert (ref.kind, ref.pool, ref.key, ref.path) == (kind, pool, key, path)


@pytest.mark.parametrize(("path", "words"), [
    ("pool://", "not a pool name"),
    ("pool://coco", "key is empty"),
    ("pool://coco/", "key is empty"),
    ("pool:///a.jpg", "not a pool name"),
    ("pool://co co/a.jpg", "not a pool name"),
    ("pool://coco//a.jpg", "must not start with '/'"),
    ("pool://coco/a\0.jpg", "NUL"),
    ("", "non-empty string"),
])
def test_malformed_refs(path: str, words: str) -> None:
    with pytest.raises(ImageRefError, match=words):
        parse_image_ref(path)
    with pytest.raises(ImageRefError):
        parse_image_ref(None)  # type: ignore[arg-type]


def test_local_paths_of_file_urls() -> None:
    assert parse_image_ref("file:///data/a%20b.png").local_path == "/data/a b.png"
    assert parse_image_ref("file://localhost/data/x.png").local_path == "/data/x.png"
    assert parse_image_ref("rel/x.png").local_path == "rel/x.png"
    assert parse_image_ref("pool://p/x.png").local_path is None


def test_format_image_ref_roundtrip() -> None:
    cases: list[tuple[str, str | int]] = [("coco", "000123.jpg"), ("p", 42), ("a.b-c_d", "dir/x.png")]
    for pool, key in cases:
        ref = parse_image_ref(format_image_ref(pool, key))
        assert (ref.pool, ref.key) == (pool, str(key))
    with pytest.raises(ImageRefError):
        format_image_ref("a/b", "x.jpg")
    with pytest.raises(ImageRefError):
        format_image_ref("a", "")
    assert isinstance(parse_image_ref("pool://a/b"), ImageRef)


# -- pools ------------------------------------------------------------------------------------------------
def write_files(root: Path, names: list[str], seed: int = 0) -> dict[str, bytes]:
    rng = random.Random(seed)
    out = {}
    for name in names:
        data = rng.randbytes(rng.randint(100, 3000))
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        out[name] = data
    return out


@pytest.fixture
def seq_pool(tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    """A sequential pool: 40 images plus a few awkward resources, all in one shard."""
    src = tmp_path / "src"
    names = [f"{i:06d}.jpg" for i in range(40)] + ["train/a.jpg", "val/a.jpg", "both.jpg", "both.json",
                                                    "notes.txt", "notes.json"]
    files = write_files(src, names)
    pack_directory(str(src), str(tmp_path / "pool"), silent=True)
    return str(tmp_path / "pool"), files


def droplet(*paths: str) -> ImageAnnotation:
    return ImageAnnotation(Image(list(paths)), {})


def test_fetch_from_packed_pool(seq_pool: tuple[str, dict[str, bytes]]) -> None:
    pool_dir, files = seq_pool
    fetcher = ImageFetcher({"imgs": pool_dir})
    assert fetcher.fetch(droplet("pool://imgs/000007.jpg")) == files["000007.jpg"]
    assert fetcher.fetch(droplet("pool://imgs/000007")) == files["000007.jpg"]  # a resource id
    assert fetcher.fetch(Image(["pool://imgs/train/a.jpg"])) == files["train/a.jpg"]  # a member path
    assert fetcher.fetch("pool://imgs/val/a.jpg") == files["val/a.jpg"]
    assert fetcher.fetch(["pool://imgs/both"]) == files["both.jpg"]  # the one image of the resource
    assert fetcher.fetch("pool://imgs/both.json") == files["both.json"]
    assert fetcher.locate("pool://imgs/000003.jpg").location.tar_file == "shard-00000.tar"


def test_ambiguous_and_missing_keys(seq_pool: tuple[str, dict[str, bytes]]) -> None:
    pool_dir, _files = seq_pool
    fetcher = ImageFetcher({"imgs": pool_dir})
    with pytest.raises(ImageRefError, match="several files"):
        fetcher.locate("pool://imgs/notes")
    with pytest.raises(ImageRefError, match="use the full member path"):
        fetcher.locate("pool://imgs/a.jpg")  # train/a.jpg and val/a.jpg
    with pytest.raises(ResourceNotFoundError):
        fetcher.locate("pool://imgs/999999.jpg")
    with pytest.raises(ResourceNotFoundError, match="no member named"):
        fetcher.locate("pool://imgs/000001.png")  # resource exists, not with that name
    with pytest.raises(ImageRefError, match="not configured"):
        fetcher.locate("pool://other/1.jpg")
    with pytest.raises(ImageRefError, match="not a pool reference"):
        fetcher.locate("a.jpg")
    with pytest.raises(ImageFetchError) as info:
        fetcher.fetch(droplet("pool://imgs/999999.jpg", "pool://nope/1.jpg"))
    assert set(info.value.errors) == {"pool://imgs/999999.jpg", "pool://nope/1.jpg"}
    assert "ResourceNotFoundError" in info.value.errors["pool://imgs/999999.jpg"]
    assert "not configured" in info.value.errors["pool://nope/1.jpg"]
    again = pickle.loads(pickle.dumps(info.value))  # crosses DataLoader worker boundaries intact
    assert again.errors == info.value.errors
    with pytest.raises(ImageFetchError, match="no paths"):
        fetcher.fetch(droplet())


def test_paths_are_tried_in_order(seq_pool: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    pool_dir, files = seq_pool
    local = tmp_path / "x.bin"
    local.write_bytes(b"local copy")
    fetcher = ImageFetcher({"imgs": pool_dir})
    assert fetcher.fetch(droplet("pool://imgs/missing.jpg", str(local))) == b"local copy"
    assert fetcher.fetch(droplet(str(tmp_path / "missing.bin"), "pool://imgs/000001.jpg")) == files["000001.jpg"]
    assert fetcher.fetch(droplet("pool://imgs/000002.jpg", str(local))) == files["000002.jpg"]


def test_fetcher_pickles_for_worker_processes(seq_pool: tuple[str, dict[str, bytes]]) -> None:
    pool_dir, files = seq_pool
    fetcher = ImageFetcher({"imgs": pool_dir}, allow_local=False, max_workers=3)
    assert fetcher.fetch("pool://imgs/000005.jpg") == files["000005.jpg"]  # opens the pool (locks inside)
    clone = pickle.loads(pickle.dumps(fetcher))
    assert (clone.allow_local, clone.max_workers) == (False, 3)
    assert clone.fetch_many(["pool://imgs/000006.jpg"]) == [files["000006.jpg"]]


def test_increment_id_pool_with_numeric_keys(tmp_path: Path) -> None:
    files = write_files(tmp_path / "src", ["1234.png", "5.png", "100005.png"])
    pack_directory(str(tmp_path / "src"), str(tmp_path / "pool"), layout="increment-id", silent=True)
    for pool in (StorePool(str(tmp_path / "pool"), layout="increment-id"),
                 IndexedPool(str(tmp_path / "pool"), use_manifest=False)):
        fetcher = ImageFetcher({"ids": pool})  # an open pool, not a URL
        assert fetcher.fetch("pool://ids/1234") == files["1234.png"]
        assert fetcher.fetch("pool://ids/1234.png") == files["1234.png"]
        assert fetcher.fetch_many(["pool://ids/100005", "pool://ids/5"]) == [files["100005.png"], files["5.png"]]
        assert fetcher.pool("ids") is pool


def test_fetch_many_coalesces_reads(seq_pool: tuple[str, dict[str, bytes]]) -> None:
    pool_dir, files = seq_pool
    keys = [f"{i:06d}.jpg" for i in range(40)]
    order = keys[::-1] + keys[:5]  # any order, with repeats
    fetcher = ImageFetcher({"imgs": pool_dir})
    got = fetcher.fetch_many([droplet(f"pool://imgs/{k}") for k in order])
    assert got == [files[k] for k in order]
    batched = fetcher.pool("imgs").data_store.stats.requests
    assert batched <= 2

    single = ImageFetcher({"imgs": pool_dir})
    for k in order:
        single.fetch(droplet(f"pool://imgs/{k}"))
    assert single.pool("imgs").data_store.stats.requests == len(order)


def test_fetch_many_over_http_counts_requests(seq_pool: tuple[str, dict[str, bytes]], tmp_path: Path,
                                             file_server: Callable[..., FileServer]) -> None:
    pool_dir, files = seq_pool
    keys = [f"{i:06d}.jpg" for i in range(40)]
    server = file_server(pool_dir)
    fetcher = ImageFetcher({"imgs": server.url})
    fetcher.locate("pool://imgs/000000.jpg")  # fetches the pool manifest once
    server.reset()
    assert fetcher.fetch_many([f"pool://imgs/{k}" for k in keys]) == [files[k] for k in keys]
    assert server.total <= 2
    server.reset()
    for k in keys[:10]:
        assert fetcher.fetch(f"pool://imgs/{k}") == files[k]
    assert server.total == 10
    # plain http(s) URLs go through the storage layer
    server.reset()
    assert fetcher.fetch(droplet(f"{server.url}/shard-00000.tar.missing", f"{server.url}/shard-00000.tar")) \
        == (Path(pool_dir) / "shard-00000.tar").read_bytes()


def test_fetch_many_mixes_sources_and_falls_back(seq_pool: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    pool_dir, files = seq_pool
    (tmp_path / "one.bin").write_bytes(b"one")
    fetcher = ImageFetcher({"imgs": pool_dir})
    items: list[ImageAnnotation | Image] = [
        droplet("pool://imgs/000001.jpg"),
        droplet(str(tmp_path / "one.bin")),
        droplet("pool://imgs/missing.jpg", "pool://imgs/000002.jpg"),  # first path fails: fallback
        droplet("pool://nope/x.jpg", (tmp_path / "one.bin").as_uri()),
        Image(["pool://imgs/000003"]),
    ]
    assert fetcher.fetch_many(items) == [files["000001.jpg"], b"one", files["000002.jpg"], b"one", files["000003.jpg"]]
    assert fetcher.fetch_many([]) == []
    with pytest.raises(ImageFetchError, match="item 1"):
        fetcher.fetch_many([droplet("pool://imgs/000001.jpg"), droplet("pool://imgs/missing.jpg")])
    got = fetcher.fetch_many([droplet("pool://imgs/000001.jpg"), droplet("pool://imgs/missing.jpg"),
                              droplet("pool://nope/x.jpg"), Image(["pool://imgs/000003"])], errors="return")
    assert got[0] == files["000001.jpg"] and got[3] == files["000003.jpg"]  # the rest is read all the same
    assert isinstance(got[1], ImageFetchError) and "missing.jpg" in str(got[1])
    assert isinstance(got[2], ImageFetchError) and "pool 'nope' is not configured" in str(got[2])


def test_local_files(tmp_path: Path) -> None:
    (tmp_path / "dir with space").mkdir()
    target = tmp_path / "dir with space" / "x.png"
    target.write_bytes(b"png bytes")
    fetcher = ImageFetcher()
    assert fetcher.fetch(str(target)) == b"png bytes"
    assert fetcher.fetch(target.as_uri()) == b"png bytes"  # file:// with %20
    assert ImageFetcher(base_dir=str(tmp_path)).fetch("dir with space/x.png") == b"png bytes"
    refused = ImageFetcher(allow_local=False)
    with pytest.raises(ImageFetchError) as info:
        refused.fetch(droplet(str(target), target.as_uri()))
    assert all("local paths are not allowed" in e for e in info.value.errors.values())
    with pytest.raises(ImageFetchError, match="StoreNotFoundError"):
        fetcher.fetch(str(tmp_path / "absent.png"))


def test_corrupt_member_is_an_error_not_bad_bytes(seq_pool: tuple[str, dict[str, bytes]]) -> None:
    pool_dir, files = seq_pool
    fetcher = ImageFetcher({"imgs": pool_dir})
    member = fetcher.locate("pool://imgs/000004.jpg")
    shard = os.path.join(pool_dir, member.location.tar_file)
    with open(shard, "r+b") as f:
        f.seek(member.offset)
        first = f.read(1)
        f.seek(member.offset)
        f.write(bytes([first[0] ^ 0xFF]))
    with pytest.raises(ImageFetchError, match="sha256"):
        fetcher.fetch("pool://imgs/000004.jpg")
    with pytest.raises(ImageFetchError, match="item 1"):
        fetcher.fetch_many(["pool://imgs/000003.jpg", "pool://imgs/000004.jpg"])
    assert fetcher.fetch_many(["pool://imgs/000003.jpg"]) == [files["000003.jpg"]]
