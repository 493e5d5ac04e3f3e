"""publish(): JSONL/COCO/YOLO → one catalog transaction + a packed pool; all-or-nothing on problems."""

from __future__ import annotations

import json
import os
import re
import stat

import msgspec
import pytest

from headwater.archive import MANIFEST_NAME, pack_directory, verify_pool
from headwater.droplet import (
    ImageFetcher,
    decode_droplet,
    encode_droplet,
    parse_image_ref,
)
from headwater.publish import (
    POOL_MARKER,
    CocoSource,
    JsonlSource,
    PublishError,
    SourceItem,
    YoloSource,
    publish,
)

from ..support.datasets import (
    box,
    catalog_is_empty,
    coco_dataset,
    droplet,
    jsonl_dataset,
    make_image,
    new_catalog,
    write_jsonl,
    yolo_dataset,
)


def stream_all(cat, record) -> dict[str, list[dict]]:
    return {split: [msgspec.json.decode(b) for b in cat.read_range(record.uid, split, 0, None)]
            for split in record.splits}


def leftovers(folder) -> list[str]:
    """Anything publish may have left next to a pool target (staging folders, the target)."""
    return sorted(n for n in os.listdir(folder) if n not in ("catalog.sqlite", "catalog.sqlite-wal",
                                                             "catalog.sqlite-shm"))


def test_jsonl_publish_round_trip_with_pool(tmp_path):
    path, images, rows, blobs = jsonl_dataset(str(tmp_path / "src"))
    cat = new_catalog(str(tmp_path))
    pool_dir = tmp_path / "out" / "pool"
    record = publish(cat, "main", "acme", "cats", path, images=images, pool_dir=str(pool_dir), silent=True)
    assert record.splits == {"train": 6}
    assert record.pools == {"images": str(pool_dir)}
    assert cat.dataset("main", "acme", "cats", "latest").uid == record.uid
    # the template was inferred from what the droplets use
    assert record.template == {"kind": "ImageAnnotationTemplate",
                               "classes": {"cat": {"instances": {"boundingBox": True}}}}
    # the pool is a real, verifiable pool with a manifest and the marker
    assert verify_pool(str(pool_dir), silent=True).ok
    assert (pool_dir / MANIFEST_NAME).is_file()
    marker = json.loads((pool_dir / POOL_MARKER).read_text())
    assert marker["database"] == "main" and marker["images"] == 6
    # stream back: equal to the input except image paths, which are pool refs now
    streamed = stream_all(cat, record)["train"]
    assert len(streamed) == len(rows)
    fetcher = ImageFetcher(record.pools)
    for got, want in zip(streamed, rows, strict=True):
        ref = parse_image_ref(got["image"]["paths"][0])
        assert ref.kind == "pool" and ref.pool == "images" and ref.key is not None
        original = want["image"]["paths"][0]
        assert os.path.splitext(ref.key)[1] == os.path.splitext(original)[1]
        canonical = encode_droplet(decode_droplet(json.dumps(want)))  # adds datatap's empty multiInstances
        assert msgspec.json.decode(canonical) == {**got, "image": want["image"]}
        assert fetcher.fetch(decode_droplet(msgspec.json.encode(got))) == blobs[original]
    # no staging folder left beside the pool, and the pool is not private (mkdtemp's 0700)
    assert os.listdir(tmp_path / "out") == ["pool"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(pool_dir).st_mode) == 0o777 & ~umask


def test_urls_and_existing_pool_refs_are_kept_and_images_deduplicated(tmp_path):
    img = tmp_path / "x.png"
    data = make_image(str(img))
    rows = [droplet("https://example.com/1.jpg", "a"), droplet("x.png", "b"), droplet(str(img), "c"),
            droplet("pool://old/17.jpg", "d")]
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    cat = new_catalog(str(tmp_path))
    with pytest.raises(PublishError, match=re.escape("line 4: image 'pool://old/17.jpg' names pool 'old'")):
        publish(cat, "main", "a", "b", path, pool_dir=str(tmp_path / "p"), silent=True)
    old = str(tmp_path / "old-pool")
    make_image(str(tmp_path / "old-src" / "17.jpg"))
    pack_directory(str(tmp_path / "old-src"), old, silent=True)
    record = publish(cat, "main", "a", "b", path, pool_dir=str(tmp_path / "p"), pools={"old": old}, silent=True)
    got = [d["image"]["paths"][0] for d in stream_all(cat, record)["train"]]
    assert got[0] == "https://example.com/1.jpg" and got[3] == "pool://old/17.jpg"
    assert got[1] == got[2] == "pool://images/0.png"  # the same file (relative and absolute) packed once
    assert record.pools == {"old": old, "images": str(tmp_path / "p")}
    assert ImageFetcher(record.pools).read_ref(got[1]) == data


def test_no_local_images_means_no_pool(tmp_path):
    path = write_jsonl(str(tmp_path / "d.jsonl"), [droplet("https://h/1.jpg")])
    cat = new_catalog(str(tmp_path))
    record = publish(cat, "main", "a", "b", path, silent=True)
    assert record.pools == {} and not (tmp_path / "pools").exists()


def test_default_pool_dir_lives_beside_the_catalog(tmp_path):
    path, images, _, _ = jsonl_dataset(str(tmp_path / "src"), n=2)
    cat = new_catalog(str(tmp_path))
    record = publish(cat, "main", "acme", "cats", path, images=images, silent=True)
    pool = record.pools["images"]
    assert os.path.dirname(pool) == str(tmp_path / "pools" / "main" / "acme" / "cats")
    assert verify_pool(pool, silent=True).ok


def test_bad_droplets_are_all_reported_with_line_numbers_and_nothing_is_written(tmp_path):
    make_image(str(tmp_path / "ok.png"))
    rows = [
        droplet("ok.png", "1"),
        "{not json",
        droplet("ok.png", "3", {"cat": {"instances": [box(0.5, 0.5, 1.5, 0.9)]}}),
        "",
        droplet("missing.png", "5"),
        '{"kind": "ImageAnnotation", "image": {"paths": ["ok.png"]}, "classes": {}, "split": "no/slash"}',
        "[1, 2]",
        '{"kind": "ImageAnnotation", "image": {"paths": []}, "classes": {}}',
    ]
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    cat = new_catalog(str(tmp_path))
    with pytest.raises(PublishError) as info:
        publish(cat, "main", "acme", "cats", path, pool_dir=str(tmp_path / "pool"), silent=True)
    err = info.value
    assert err.total == 6
    wheres = [p.where for p in err.problems]
    assert wheres == ["line 2", "line 3", "line 5", "line 6", "line 7", "line 8"]
    text = str(err)
    assert "line 2: invalid JSON" in text
    assert "line 3: $.classes.cat.instances[0].boundingBox.rectangle[1][0]: coordinate 1.5 is outside [0, 1]" in text
    assert f"line 5: image 'missing.png' not found (looked for {tmp_path / 'missing.png'})" in text
    assert "line 6: invalid split name 'no/slash'" in text
    assert "line 7: expected a JSON object, got list" in text
    assert "line 8: $.image.paths" in text
    # nothing in the catalog, no pool, no staging folder
    assert catalog_is_empty(cat)
    assert leftovers(tmp_path) == ["d.jsonl", "ok.png"]


def test_problem_list_is_capped_but_counted(tmp_path):
    path = write_jsonl(str(tmp_path / "d.jsonl"), ["nope"] * 250)
    cat = new_catalog(str(tmp_path))
    with pytest.raises(PublishError) as info:
        publish(cat, "main", "a", "b", path, max_problems=100, silent=True)
    assert info.value.total == 250 and len(info.value.problems) == 100
    assert str(info.value).endswith("… and 150 more")
    assert "250 problem(s)" in str(info.value)


def test_given_template_is_enforced_strictly(tmp_path):
    rows = [droplet("https://h/1.jpg", "1", {"cat": {"instances": [box(0.1, 0.1, 0.2, 0.2)]}}),
            droplet("https://h/2.jpg", "2", {"cat": {"instances": [{}]}}),
            droplet("https://h/3.jpg", "3", {"dog": {"instances": [box(0.1, 0.1, 0.2, 0.2)]}})]
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    cat = new_catalog(str(tmp_path))
    template = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {"instances": {"boundingBox": True}}}}
    with pytest.raises(PublishError) as info:
        publish(cat, "main", "a", "b", path, template=template, silent=True)
    assert [p.where for p in info.value.problems] == ["line 2", "line 3"]
    assert "class 'dog' is not in the template" in str(info.value)
    with pytest.raises(PublishError, match="bad template"):
        publish(cat, "main", "a", "b", path, template='{"kind": "Nope"}', silent=True)
    assert catalog_is_empty(cat)
    # strict=False checks only what is present; the template (from a file) is stored as given
    (tmp_path / "t.json").write_text(json.dumps(template))
    first_two = write_jsonl(str(tmp_path / "e.jsonl"), rows[:2])
    record = publish(cat, "main", "a", "b", first_two, template=str(tmp_path / "t.json"), strict=False,
                     silent=True)
    assert record.template == template and record.splits == {"train": 2}


def test_pool_target_must_be_new(tmp_path):
    path, images, _, _ = jsonl_dataset(str(tmp_path / "src"), n=2)
    cat = new_catalog(str(tmp_path))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(PublishError, match="already exists and is not empty"):
        publish(cat, "main", "a", "b", path, images=images, pool_dir=str(tmp_path / "taken"), silent=True)
    (tmp_path / "empty").mkdir()
    record = publish(cat, "main", "a", "b", path, images=images, pool_dir=str(tmp_path / "empty"), silent=True)
    assert verify_pool(record.pools["images"], silent=True).ok
    assert catalog_is_empty(cat) is False


class RacingSource:
    """A source whose folder gains a competing pool while publish is writing (pass 2)."""

    template = None

    def __init__(self, inner: JsonlSource, target: str) -> None:
        self.inner, self.target, self.passes = inner, target, 0
        self.name, self.images_root = inner.name, inner.images_root

    def items(self):
        self.passes += 1
        if self.passes == 2:
            os.makedirs(self.target)
            with open(os.path.join(self.target, "someone-else"), "w") as f:
                f.write("x")
        yield from self.inner.items()


def test_failure_after_packing_removes_the_staged_pool_and_rolls_back(tmp_path):
    path, images, _, _ = jsonl_dataset(str(tmp_path / "src"), n=3)
    cat = new_catalog(str(tmp_path))
    target = str(tmp_path / "out" / "pool")
    source = RacingSource(JsonlSource(path, images), target)
    with pytest.raises(PublishError, match="already exists and is not empty"):
        publish(cat, "main", "a", "b", source, pool_dir=target, silent=True)
    assert catalog_is_empty(cat)
    assert os.listdir(tmp_path / "out") == ["pool"]  # no staging folder left
    assert os.listdir(target) == ["someone-else"]  # the other writer's folder is untouched


class ChangingSource:
    """Yields one more droplet on the second pass than on the first."""

    template = None

    def __init__(self) -> None:
        self.name, self.images_root, self.passes = "changing", None, 0

    def items(self):
        self.passes += 1
        for i in range(2 + (self.passes > 1)):
            yield SourceItem(f"item {i}", droplet(f"https://h/{i}.jpg", str(i)))


def test_source_changing_between_passes_is_refused(tmp_path):
    cat = new_catalog(str(tmp_path))
    with pytest.raises(PublishError, match="the source changed while publishing"):
        publish(cat, "main", "a", "b", ChangingSource(), silent=True)
    assert catalog_is_empty(cat)


def test_unknown_database_and_bad_names_fail_before_any_work(tmp_path):
    path = write_jsonl(str(tmp_path / "d.jsonl"), [droplet("https://h/1.jpg")])
    cat = new_catalog(str(tmp_path))
    with pytest.raises(KeyError, match="nodb"):
        publish(cat, "nodb", "a", "b", path, silent=True)
    with pytest.raises(PublishError, match="invalid namespace 'a b'"):
        publish(cat, "main", "a b", "b", path, silent=True)
    with pytest.raises(PublishError, match="invalid tag"):
        publish(cat, "main", "a", "b", path, tags=["x:y"], silent=True)
    with pytest.raises(PublishError, match="holds no droplets"):
        publish(cat, "main", "a", "b", write_jsonl(str(tmp_path / "e.jsonl"), []), silent=True)


def test_coco_publish_keeps_every_class_and_reports_missing_images_by_id(tmp_path):
    path, images, blobs = coco_dataset(str(tmp_path / "coco"))
    cat = new_catalog(str(tmp_path))
    record = publish(cat, "main", "coco", "val", CocoSource(path, images, split="validation"),
                     pool_dir=str(tmp_path / "pool"), silent=True)
    assert record.splits == {"validation": 3}
    assert list(record.template["classes"]) == ["person", "car", "boat"]
    streamed = stream_all(cat, record)["validation"]
    assert [d["uid"] for d in streamed] == ["1", "2", "3"]
    images_back = ImageFetcher(record.pools).fetch_many([decode_droplet(msgspec.json.encode(d)) for d in streamed])
    assert images_back == [blobs["a.png"], blobs["b.png"], blobs["c.png"]]
    os.remove(os.path.join(images, "b.png"))
    with pytest.raises(PublishError) as info:
        publish(cat, "main", "coco", "val", CocoSource(path, images), pool_dir=str(tmp_path / "pool2"),
                silent=True)
    assert [str(p) for p in info.value.problems] == [
        f"image id 2 (b.png): image 'b.png' not found (looked for {os.path.join(images, 'b.png')})"]
    assert not (tmp_path / "pool2").exists()
    assert len(cat.datasets("main", "coco", "val")) == 1


def test_yolo_publish_uses_folder_splits_and_several_sources_merge(tmp_path):
    root, blobs = yolo_dataset(str(tmp_path / "y"))
    coco, images, _ = coco_dataset(str(tmp_path / "c"))
    cat = new_catalog(str(tmp_path))
    record = publish(cat, "main", "mix", "all", [YoloSource(root), CocoSource(coco, images, split="extra")],
                     pool_dir=str(tmp_path / "pool"), silent=True)
    assert record.splits == {"train": 3, "val": 1, "extra": 3}
    assert list(record.template["classes"]) == ["cat", "dog", "bird", "person", "car", "boat"]
    val = stream_all(cat, record)["val"]
    assert val[0]["metadata"] == {"source": "images/val/d.jpg"}
    assert ImageFetcher(record.pools).fetch(decode_droplet(msgspec.json.encode(val[0]))) == blobs["images/val/d.jpg"]


def test_several_sources_name_the_source_in_problems(tmp_path):
    good = write_jsonl(str(tmp_path / "a.jsonl"), [droplet("https://h/1.jpg")])
    bad = write_jsonl(str(tmp_path / "b.jsonl"), [droplet("https://h/1.jpg"), "oops"])
    cat = new_catalog(str(tmp_path))
    with pytest.raises(PublishError) as info:
        publish(cat, "main", "a", "b", [JsonlSource(good), JsonlSource(bad)], silent=True)
    assert [p.where for p in info.value.problems] == [f"{bad} line 2"]


def test_progress_bars_go_to_stderr_and_can_be_silenced(tmp_path, capsys):
    path = write_jsonl(str(tmp_path / "d.jsonl"), [droplet(f"https://h/{i}.jpg") for i in range(3)])
    cat = new_catalog(str(tmp_path))
    publish(cat, "main", "a", "b", path, silent=True)
    assert capsys.readouterr().err == ""
    publish(cat, "main", "a", "c", path, silent=False)
    err = capsys.readouterr().err
    assert "Validating" in err and "Writing" in err


def test_publish_on_both_backends_all_or_nothing(catalog_url, tmp_path):
    """The same publish, and the same refusal, on the SQLite file and on a real PostgreSQL catalog."""
    from headwater.catalog import Catalog

    path, images, rows, blobs = jsonl_dataset(str(tmp_path / "src"), n=4)
    bad = write_jsonl(str(tmp_path / "bad.jsonl"), [rows[0], droplet("sub/none.png")])
    with Catalog(catalog_url) as cat:
        cat.create_database("main")
        with pytest.raises(PublishError, match=re.escape("line 2: image 'sub/none.png' not found")):
            publish(cat, "main", "a", "b", bad, images=images, pool_dir=str(tmp_path / "bad-pool"), silent=True)
        assert catalog_is_empty(cat) and not (tmp_path / "bad-pool").exists()
        record = publish(cat, "main", "a", "b", path, images=images, pool_dir=str(tmp_path / "pool"),
                         splits={"validation": 0.5}, split_seed=2, silent=True)
        assert sum(record.splits.values()) == 4
        got = [decode_droplet(b) for s in sorted(record.splits) for b in cat.read_range(record.uid, s, 0, None)]
        assert sorted(ImageFetcher(record.pools).fetch_many(got)) == sorted(blobs.values())
        if cat.backend == "postgresql":  # no catalog folder to put a default pool beside
            with pytest.raises(PublishError, match="give pool_dir"):
                publish(cat, "main", "a", "c", path, images=images, silent=True)


def test_pool_refs_must_name_a_pool_and_member_that_exist(tmp_path):
    make_image(str(tmp_path / "old-src" / "17.jpg"))
    make_image(str(tmp_path / "a.png"))
    old = str(tmp_path / "old-pool")
    pack_directory(str(tmp_path / "old-src"), old, silent=True)
    cat = new_catalog(str(tmp_path))
    rows = [droplet("pool://old/17.jpg", "ok"),         # line 1: there
            droplet("pool://old/18.jpg", "no-member"),  # line 2: no such member
            droplet("pool://gone/1.jpg", "no-pool"),    # line 3: no such pool name
            droplet("pool://images/0.jpg", "new"),      # line 4: the pool this publish creates: but it packs none
            droplet("https://example.com/x.jpg", "url")]
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    with pytest.raises(PublishError) as info:
        publish(cat, "main", "a", "b", path, pools={"old": old}, silent=True)
    got = {p.where: p.message for p in info.value.problems}
    assert sorted(got) == ["line 2", "line 3", "line 4"], got
    assert "'18'" in got["line 2"] and "'old'" in got["line 2"] and got["line 2"].endswith("(at $.image.paths[0])")
    assert "pool 'gone', which is not among the dataset's pools ['old']" in got["line 3"]
    assert "pool 'images'" in got["line 4"]
    # a pool location that does not exist: named once per ref, as a pool that cannot be read
    with pytest.raises(PublishError, match=r"line 1: image 'pool://old/17\.jpg': pool 'old' at /no/such/pool cannot"):
        publish(cat, "main", "a", "b", write_jsonl(str(tmp_path / "e.jsonl"), rows[:1]), pools={"old": "/no/such/pool"},
                silent=True)
    # refs into the new pool are fine when they name a member it will hold (members 0.png, 1.…, in order of use)
    path = write_jsonl(str(tmp_path / "f.jsonl"), [droplet("a.png", "local"), droplet("pool://images/0.png", "same"),
                                                   droplet("pool://images/1.png", "beyond")])
    with pytest.raises(PublishError, match=r"line 3: image 'pool://images/1\.png': no member '1\.png'"):
        publish(cat, "main", "a", "b", path, pool_dir=str(tmp_path / "p1"), silent=True)
    assert catalog_is_empty(cat) and not (tmp_path / "p1").exists()


def test_duplicate_uids_are_refused_naming_both_lines(tmp_path):
    cat = new_catalog(str(tmp_path))
    rows = [droplet("https://h/1.jpg", "cat-1"), droplet("https://h/2.jpg", "cat-2"),
            droplet("https://h/3.jpg", "cat-1"), droplet("https://h/4.jpg", "cat-3"),
            droplet("https://h/5.jpg", "cat-1"), droplet("https://h/6.jpg")]
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    with pytest.raises(PublishError) as info:
        publish(cat, "main", "a", "b", path, silent=True)
    assert [str(p) for p in info.value.problems] == [
        "line 3: duplicate uid 'cat-1': line 1 has it too (every droplet of a dataset needs its own uid)",
        "line 5: duplicate uid 'cat-1': line 1 has it too (every droplet of a dataset needs its own uid)"]
    assert catalog_is_empty(cat)
    unique = write_jsonl(str(tmp_path / "e.jsonl"), [*rows[:2], rows[3], rows[5], rows[5]])
    record = publish(cat, "main", "a", "b", unique, silent=True)
    assert record.splits == {"train": 5}  # droplets without a uid may be many


_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from headwater.cli import main
main(sys.argv[2:], prog_name="headwater")
"""


def test_publish_that_fills_the_disk_leaves_no_pool_and_reruns(tmp_path):
    import random
    import resource
    import subprocess
    import sys

    rng = random.Random(0)
    rows = []
    for i in range(6):
        (tmp_path / f"{i}.jpg").write_bytes(rng.randbytes(60_000))  # one shard of ~360 KB
        rows.append(droplet(f"{i}.jpg", f"img-{i}"))
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    catalog = str(tmp_path / "catalog.sqlite")
    args = ["publish", path, "--repo", "main/acme/cats", "--catalog", catalog, "--create-database",
            "--pool-dir", str(tmp_path / "pools" / "cats"), "-q"]

    def run(limit: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _LIMITED, str(limit), *args], capture_output=True, text=True,
                              timeout=120)

    done = run(250_000)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith(f"error: cannot write {tmp_path / 'pools' / 'cats'}: File too large")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "pools" / "cats").exists() and os.listdir(tmp_path / "pools") == []  # no staging left
    again = run(resource.RLIM_INFINITY)
    assert again.returncode == 0, again.stderr
    assert verify_pool(str(tmp_path / "pools" / "cats"), silent=True).ok


class ReReadSource:
    """A JSONL file's items behind the plain Source interface: the path that re-reads the source in pass 2."""

    template = None

    def __init__(self, path: str) -> None:
        self._jsonl = JsonlSource(path)
        self.name, self.images_root = path, self._jsonl.images_root

    def items(self):
        return self._jsonl.items()


def test_jsonl_fast_path_writes_what_the_re_read_path_writes(tmp_path):
    """JSONL lines are decoded once (checked decode, bytes kept for pass 2); the result must be byte for byte
    what the full path (validate each item, re-read and re-encode in pass 2) writes: explicit splits (also
    spelt with an escape, or only nested), the seeded rule, legacy bare-string attributes, unknown keys."""
    make_image(str(tmp_path / "a.png"))
    legacy = droplet("https://h/legacy.jpg", "legacy")
    legacy["classes"] = {"cat": {"instances": [{"attributes": {"color": "red"}}]}}
    lines = [json.dumps({**droplet(f"https://h/{i}.jpg", f"u{i}"), "extra": {"split": 3}}) for i in range(40)]
    lines += [json.dumps({**droplet("a.png", "local"), "split": "validation"}),
              json.dumps(legacy),
              json.dumps(droplet("https://h/x.jpg", "escaped"))[:-1] + ', "\\u0073plit": "test"}',
              json.dumps({**droplet("https://h/y.jpg"), "metadata": {"split": "not this"}})]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    cat = new_catalog(str(tmp_path))
    fast = publish(cat, "main", "a", "fast", str(path), pool_dir=str(tmp_path / "p1"), splits={"test": 0.3},
                   silent=True)
    slow = publish(cat, "main", "a", "slow", ReReadSource(str(path)), pool_dir=str(tmp_path / "p2"),
                   splits={"test": 0.3}, silent=True)
    assert fast.splits == slow.splits and fast.splits["validation"] == 1 and fast.splits["test"] > 1
    assert fast.template == slow.template
    for split in fast.splits:
        assert list(cat.read_range(fast.uid, split, 0, None)) == list(cat.read_range(slow.uid, split, 0, None))
    got = [msgspec.json.decode(b) for b in cat.read_range(fast.uid, "validation", 0, None)]
    assert got[0]["image"]["paths"] == ["pool://images/0.png"]
