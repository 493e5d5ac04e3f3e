"""`headwater publish | tag | stream | ls` end to end: CliRunner, and the real installed command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import msgspec
import pytest
from click.testing import CliRunner

from headwater.catalog import Catalog, default_catalog_location
from headwater.cli import main
from headwater.cli.options import RepoRef
from headwater.droplet import ImageFetcher, decode_droplet

from ..support.datasets import (
    coco_dataset,
    droplet,
    jsonl_dataset,
    write_jsonl,
    yolo_dataset,
)

HEADWATER = os.path.join(os.path.dirname(sys.executable), "headwater")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def published(tmp_path):
    """A catalog with main/acme/cats published from 6 JSONL droplets with local images."""
    path, images, rows, blobs = jsonl_dataset(str(tmp_path / "src"))
    catalog = str(tmp_path / "cat" / "catalog.sqlite")
    code, out, err = run("publish", path, "--repo", "main/acme/cats", "--images", images, "--catalog", catalog,
                         "--create-database", "-q")
    assert code == 0, err
    return catalog, rows, blobs, out


def test_publish_jsonl_then_ls_and_stream(published):
    catalog, rows, blobs, out = published
    assert out.startswith("published dataset ") and "  splits: train=6" in out and "  tags:   latest" in out
    pool = out.split("pool:   images = ")[1].strip()
    assert pool.startswith(os.path.join(os.path.dirname(catalog), "pools", "main", "acme", "cats"))

    code, out, _ = run("ls", "--catalog", catalog)
    assert code == 0 and out.startswith("main\t1 repositories") and "1 database(s)" in out
    code, out, _ = run("ls", "--catalog", catalog, "main")
    assert code == 0 and "main/acme/cats\n  latest\t" in out and "train=6" in out
    code, out, _ = run("ls", "--catalog", catalog, "main/acme/cats")
    assert code == 0 and "tags:\n  latest" in out and "1 dataset(s), 1 tag(s)" in out
    code, out, _ = run("ls", "--catalog", catalog, "main/acme/cats:latest")
    assert code == 0 and "splits:     train=6" in out and f"pool:       images = {pool}" in out
    assert "classes (1): cat" in out

    code, out, _ = run("stream", "--catalog", catalog, "main/acme/cats", "train")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 6 and out.endswith("\n")
    got = [msgspec.json.decode(line) for line in lines]
    assert [d["uid"] for d in got] == [r["uid"] for r in rows]
    fetcher = ImageFetcher({"images": pool})
    assert fetcher.fetch_many([decode_droplet(line) for line in lines]) == list(blobs.values())


def test_stream_chunks_shuffle_offset_limit(published):
    catalog = published[0]
    everything = run("stream", "--catalog", catalog, "main/acme/cats:latest", "train")[1].splitlines()
    parts = [run("stream", "--catalog", catalog, "main/acme/cats", "train", "--chunk", str(k), "--nchunks", "4")[1]
             .splitlines() for k in range(4)]
    assert [line for part in parts for line in part] == everything and sorted(map(len, parts)) == [1, 1, 2, 2]
    shuffled = run("stream", "--catalog", catalog, "main/acme/cats", "train", "--shuffle-seed", "3")[1].splitlines()
    assert sorted(shuffled) == sorted(everything) and shuffled != everything
    again = run("stream", "--catalog", catalog, "main/acme/cats", "train", "--shuffle-seed", "3", "--cache")[1]
    assert again.splitlines() == shuffled
    cached = run("stream", "--catalog", catalog, "main/acme/cats", "train", "--shuffle-seed", "3", "--cache")[1]
    assert cached.splitlines() == shuffled
    window = run("stream", "--catalog", catalog, "main/acme/cats", "train", "--offset", "2", "--limit", "3")[1]
    assert window.splitlines() == everything[2:5]
    assert run("stream", "--catalog", catalog, "main/acme/cats", "train", "--limit", "0")[1] == ""


def test_stream_errors(published):
    catalog = published[0]
    code, _, err = run("stream", "--catalog", catalog, "main/acme/cats", "validation")
    assert code == 2 and "error: split 'validation' not found in dataset" in err and "(splits: train)" in err
    code, _, err = run("stream", "--catalog", catalog, "main/acme/cats:nope", "train")
    assert code == 2 and "no tag or dataset 'nope'" in err
    code, _, err = run("stream", "--catalog", catalog, "mian/acme/cats", "train")
    assert code == 2 and err.strip().endswith("error: database 'mian' not found")  # the same words as `ls mian`
    assert run("ls", "--catalog", catalog, "mian")[2].strip() == "error: database 'mian' not found"
    code, _, err = run("stream", "--catalog", catalog, "main/acme", "train")
    assert code == 2 and "is not DB/NS/NAME[:TAG]" in err
    code, _, err = run("stream", "--catalog", catalog, "main/acme/cats", "train", "--chunk", "4", "--nchunks", "4")
    assert code == 2 and "error: Invalid chunk specification. 4 must be in the range [0, 4)" in err
    code, _, err = run("stream", "--catalog", catalog, "main/acme/cats", "train", "--offset", "99")
    assert code == 2 and "offset must be in [0, 6]" in err
    other = os.path.join(os.path.dirname(catalog), "other.sqlite")
    code, _, err = run("stream", "--catalog", other, "main/acme/cats", "train")
    assert code == 2 and "no catalog at" in err and not os.path.exists(other)


def test_tag_moves_lists_and_shows_history(published, tmp_path):
    catalog = published[0]
    cat = Catalog(catalog)
    first = cat.dataset("main", "acme", "cats", "latest").uid
    path = write_jsonl(str(tmp_path / "v2.jsonl"), [droplet("https://h/1.jpg", "n1")])
    code, out, _ = run("publish", path, "--database", "main", "--repo", "acme/cats", "--tag", "v2", "--catalog",
                       catalog, "-q")
    assert code == 0
    second = cat.dataset("main", "acme", "cats", "v2").uid
    assert cat.dataset("main", "acme", "cats", "latest").uid == first  # --tag replaces the default tag

    code, out, _ = run("tag", "--catalog", catalog, "main/acme/cats", "latest", "v2")
    assert code == 0 and out.strip() == f"latest: {first} -> {second}"
    code, out, _ = run("tag", "--catalog", catalog, "main/acme/cats", "stable", first)
    assert code == 0 and out.strip() == f"stable: (new tag) -> {first}"
    code, out, _ = run("tag", "--catalog", catalog, "main/acme/cats", "stable", first)
    assert out.strip() == f"stable: already at {first}"
    code, out, _ = run("tag", "--catalog", catalog, "main/acme/cats")
    assert [line.split("\t")[:2] for line in out.splitlines()] == [["latest", second], ["stable", first],
                                                                  ["v2", second]]
    code, out, _ = run("tag", "--catalog", catalog, "--history", "main/acme/cats", "latest")
    assert code == 0
    assert [line.split("\t")[1:] for line in out.splitlines()[:-1]] == [
        ["latest", f"(new) -> {first}"], ["latest", f"{first} -> {second}"]]
    assert out.splitlines()[-1] == "2 move(s)"
    code, _, err = run("tag", "--catalog", catalog, "main/acme/cats", "latest", "no-such")
    assert code == 2 and "no tag or dataset 'no-such'" in err
    code, _, err = run("tag", "--catalog", catalog, "main/acme/cats", "latest")
    assert code == 2 and "give the dataset to point the tag at" in err


def test_publish_refuses_bad_source_with_line_numbers(tmp_path):
    catalog = str(tmp_path / "catalog.sqlite")
    path = write_jsonl(str(tmp_path / "d.jsonl"), [droplet("https://h/1.jpg"), "{oops", droplet("nope.png")])
    code, out, err = run("publish", path, "--repo", "main/a/b", "--catalog", catalog, "--create-database", "-q")
    assert code == 2 and out == ""
    assert "error: 2 problem(s) in the source; nothing was published:" in err
    assert "line 2: invalid JSON" in err and "line 3: image 'nope.png' not found" in err
    # a refused publish leaves nothing: no pool, no database, not even the catalog file it would have created
    assert not os.path.exists(catalog) and not (tmp_path / "pools").exists()
    Catalog(catalog).create_database("other")  # an existing catalog: the database is not created either
    code, _, err = run("publish", path, "--repo", "main/a/b", "--catalog", catalog, "--create-database", "-q")
    assert code == 2 and [d.name for d in Catalog(catalog).databases()] == ["other"]


def test_publish_usage_errors(tmp_path):
    catalog = str(tmp_path / "catalog.sqlite")
    path = write_jsonl(str(tmp_path / "d.jsonl"), [droplet("https://h/1.jpg")])
    code, _, err = run("publish", path, "--repo", "main/a/b", "--catalog", catalog)
    assert code == 2 and f"no catalog at {catalog} (add --create-database to create it)" in err
    Catalog(catalog).create_database("other")
    code, _, err = run("publish", path, "--repo", "main/a/b", "--catalog", catalog)
    assert code == 2 and "database 'main' not found (add --create-database to create it)" in err
    code, _, err = run("publish", path, "--repo", "a/b", "--catalog", catalog)
    assert code == 2 and "is not DB/NS/NAME[:TAG]" in err
    code, _, err = run("publish", path, "--repo", "m/a/b", "--split", "val=abc", "--catalog", catalog)
    assert code == 2 and "'abc' is not a fraction" in err
    code, _, err = run("publish", path, "--repo", "m/a/b", "--split", "a", "--split", "b", "--catalog", catalog)
    assert code == 2 and "only one split without a fraction" in err
    code, _, err = run("publish", path, "--repo", "m/a/b", "--tag", "x", "--no-tag", "--catalog", catalog)
    assert code == 2 and "exclude each other" in err
    code, _, err = run("publish", path, "--repo", "m/a/b", "--split", "val=0.7", "--split", "test=0.6",
                       "--catalog", catalog, "--create-database")
    assert code == 2 and "more than 1" in err


def test_publish_coco_and_yolo_autodetected_with_splits(tmp_path):
    catalog = str(tmp_path / "catalog.sqlite")
    coco, images, _ = coco_dataset(str(tmp_path / "coco"))
    code, out, err = run("publish", coco, "--images", images, "--repo", "main/coco/val", "--split", "validation",
                         "--catalog", catalog, "--create-database", "-q")
    assert code == 0, err
    assert "splits: validation=3" in out and "note: RLE segmentation dropped (box kept): 1" in err
    root, _ = yolo_dataset(str(tmp_path / "yolo"), layout="flat")
    code, out, err = run("publish", root, "--repo", "main/yolo/flat", "--split", "validation=50%", "--split",
                         "training", "--split-seed", "4", "--catalog", catalog, "-q")
    assert code == 0, err
    record = Catalog(catalog).dataset("main", "yolo", "flat", "latest")
    assert sum(record.splits.values()) == 4 and set(record.splits) <= {"validation", "training"}
    code, out, _ = run("ls", "--catalog", catalog, "main")
    assert "main/coco/val" in out and "main/yolo/flat" in out


def test_catalog_location_from_env_and_xdg(tmp_path):
    path = write_jsonl(str(tmp_path / "d.jsonl"), [droplet("https://h/1.jpg")])
    env_catalog = str(tmp_path / "env" / "c.sqlite")
    code, _, err = run("publish", path, "--repo", "main/a/b", "--create-database", "-q",
                       env={"HEADWATER_CATALOG": env_catalog})
    assert code == 0, err
    assert os.path.isfile(env_catalog)
    code, out, _ = run("ls", "main/a/b:latest", env={"HEADWATER_CATALOG": env_catalog})
    assert code == 0 and "splits:     train=1" in out
    env = {"HEADWATER_CATALOG": "", "XDG_DATA_HOME": str(tmp_path / "xdg")}
    code, _, err = run("publish", path, "--repo", "main/a/b", "--create-database", "-q", env=env)
    assert code == 0, err
    assert os.path.isfile(tmp_path / "xdg" / "headwater" / "catalog.sqlite")


def test_default_catalog_location(monkeypatch, tmp_path):
    monkeypatch.delenv("HEADWATER_CATALOG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_catalog_location() == str(tmp_path / "headwater" / "catalog.sqlite")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_catalog_location() == str(tmp_path / "home" / ".local" / "share" / "headwater" / "catalog.sqlite")
    monkeypatch.setenv("HEADWATER_CATALOG", "postgresql://u@127.0.0.1/c")
    assert default_catalog_location() == "postgresql://u@127.0.0.1/c"
    assert RepoRef.parse("db/ns/name:uid-1") == RepoRef("db", "ns", "name", "uid-1")


def test_ls_pool_still_works_next_to_catalog_listing(published, tmp_path):
    catalog = published[0]
    pool = run("ls", "--catalog", catalog, "main/acme/cats:latest")[1].split("images = ")[1].splitlines()[0]
    code, out, _ = run("ls", pool)
    assert code == 0 and "1 shard(s), 6 files" in out
    code, _, err = run("ls", "--catalog", catalog, "nodb")
    assert code == 2 and err.strip() == "error: database 'nodb' not found"


def test_real_command_publish_and_stream_into_a_closed_pipe(tmp_path):
    """The installed `headwater` script: publish, then `stream | head -n 1` must end quietly."""
    rows = [droplet(f"https://example.com/{i:05d}.jpg", f"u{i}",
                    {"cat": {"instances": [{"boundingBox": {"rectangle": [[0.1, 0.1], [0.5, 0.5]]}}]}})
            for i in range(1500)]
    path = write_jsonl(str(tmp_path / "big.jsonl"), rows)
    env = {**os.environ, "HEADWATER_CATALOG": str(tmp_path / "catalog.sqlite")}
    done = subprocess.run([HEADWATER, "publish", path, "--repo", "main/big/set", "--create-database", "-q",
                           "--split", "validation=0.1"], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "published dataset" in done.stdout
    proc = subprocess.Popen([HEADWATER, "stream", "main/big/set", "train"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()  # like `head -n 1` exiting
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, err
    assert err == "" and first["kind"] == "ImageAnnotation"
