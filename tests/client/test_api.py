"""The client API over a real catalog: datatap's names, sharded/shuffled/resumed streams, the cache."""

from __future__ import annotations

import os
import pickle

import msgspec
import pytest

from headwater.catalog import Catalog, NotFoundError
from headwater.client import (
    Api,
    ClientError,
    Dataset,
    EmbeddedTransport,
    RemoteUnavailableError,
    StreamCache,
    StreamKey,
    Transport,
)
from headwater.client.transports import HttpTransport
from headwater.droplet import (
    DropletError,
    ImageAnnotation,
    ImageAnnotationTemplate,
    encode_droplet,
)

TEMPLATE = {"kind": "ImageAnnotationTemplate",
            "classes": {"cat": {"instances": {"boundingBox": True}}, "dog": {"instances": {"boundingBox": True}}}}
CLASSES = ["cat", "dog", "bird"]


def droplet(i: int, version: int = 1) -> bytes:
    classes = {}
    name = CLASSES[i % 3]
    boxes = [{"boundingBox": {"rectangle": [[0.1, 0.1], [0.2 + 0.01 * (i % 50), 0.5]]}}] * (1 + i % 4)
    classes[name] = {"instances": boxes, "multiInstances": []}
    if i % 5 == 0:
        classes["dog"] = {"instances": [], "multiInstances": []}  # a class key with nothing in it
    # "dog" also appears in some image paths: a raw-bytes match that is not a class
    path = f"pool://imgs/dog-{i}.jpg" if i % 7 == 0 else f"pool://imgs/{i}.jpg"
    return msgspec.json.encode({"kind": "ImageAnnotation", "image": {"paths": [path]}, "classes": classes,
                                "uid": f"v{version}-{i}"})


N_TRAIN = 103


def make_catalog(location: str) -> dict[str, str]:
    with Catalog(location) as cat:
        cat.create_database("main")
        v1 = cat.publish("main", "acme", "pets", template=TEMPLATE,
                         splits={"train": [droplet(i) for i in range(N_TRAIN)],
                                 "validation": [droplet(i) for i in range(1000, 1010)]},
                         tags=("latest", "v1"), pools={"imgs": "/nowhere"})
        v2 = cat.publish("main", "acme", "pets", template=TEMPLATE,
                         splits={"train": [droplet(i, 2) for i in range(20)]}, tags=("latest",))
        cat.publish("main", "acme", "birds", template=TEMPLATE, splits={"train": [droplet(2)]})
    return {"v1": v1.uid, "v2": v2.uid}


@pytest.fixture
def catalog_path(tmp_path) -> str:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    make_catalog(path)
    return path


@pytest.fixture
def api(catalog_path, tmp_path) -> Api:
    return Api(catalog=catalog_path, cache=StreamCache(tmp_path / "streams"))


@pytest.fixture
def v1(api) -> Dataset:
    return api.get_database_by_name("main").get_dataset("acme/pets:v1")


def uids(droplets) -> list[str]:
    return [d.uid for d in droplets]


TRAIN = [f"v1-{i}" for i in range(N_TRAIN)]


# -- datatap names ---------------------------------------------------------------------------------

def test_datatap_names_walk_the_catalog(api, catalog_path):
    user = api.get_current_user()
    db = api.get_default_database()
    assert user.default_database == db.uid and db.name == "main"
    assert [d.name for d in api.get_database_list()] == ["main"]
    assert api.get_database_by_uid(db.uid).name == "main"
    assert [d.uid for d in api.get_database_by_name("main", allow_multiple=True)] == [db.uid]
    assert api.get_database_by_name("nope", allow_multiple=True) == []
    with pytest.raises(NotFoundError, match="database 'nope' not found"):
        api.get_database_by_name("nope")
    assert "credential" not in str(db.connection_options).lower()

    repos = db.get_repository_list()
    assert [(r.namespace, r.name) for r in repos] == [("acme", "birds"), ("acme", "pets")]
    repo = db.get_repository("acme/pets")
    assert db.get_repository("acme", "pets").tags[0].tag == repo.tags[0].tag
    tags = {t.tag: t for t in repo.tags}
    assert set(tags) == {"latest", "v1"}
    assert {s.split: s.annotation_count for s in tags["v1"].splits} == {"train": N_TRAIN, "validation": 10}
    assert tags["latest"].updated_at.tzinfo is not None

    latest = repo.get_dataset("latest")
    assert latest.uid == tags["latest"].dataset != tags["v1"].dataset
    by_slug = db.get_dataset("acme/pets:v1")
    by_args = db.get_dataset("acme", "pets", "v1")
    by_uid = repo.get_dataset(tags["v1"].dataset)
    assert by_slug.uid == by_args.uid == by_uid.uid == tags["v1"].dataset
    assert by_slug.database == db.uid
    assert (by_slug.repository.namespace, by_slug.repository.name) == ("acme", "pets")
    assert by_slug.splits == ["train", "validation"]
    assert isinstance(by_slug.template, ImageAnnotationTemplate)
    assert set(by_slug.template.classes) == {"cat", "dog"}
    assert by_slug.pools == {"imgs": "/nowhere"}
    assert by_slug.split_count("train") == N_TRAIN and by_slug.split_count("validation") == 10
    assert by_slug.get_stable_identifier() == f"acme/pets:{by_slug.uid}"
    assert by_slug.uid in repr(by_slug)


def test_lookup_errors(api):
    db = api.get_default_database()
    with pytest.raises(NotFoundError):
        db.get_repository("acme/nope")
    with pytest.raises(NotFoundError):
        db.get_dataset("acme/pets:nope")
    with pytest.raises(ClientError, match="namespace/name:tag"):
        db.get_dataset("acme/pets")
    with pytest.raises(ClientError, match="namespace/name"):
        db.get_repository("pets")
    with pytest.raises(ClientError, match="no split 'test'"):
        db.get_dataset("acme/pets:v1").stream_split("test")


def test_default_database_rules(catalog_path, tmp_path):
    with Catalog(catalog_path) as cat:
        cat.create_database("other")
    api = Api(catalog=catalog_path, cache=False)
    with pytest.raises(ClientError, match="no default database"):
        api.get_default_database()
    assert Api(catalog=catalog_path, default_database="other", cache=False).get_default_database().name == "other"
    with Catalog(catalog_path) as cat:
        cat.create_database("default")
    assert api.get_default_database().name == "default"


def test_remote_mode_and_missing_catalog(monkeypatch, tmp_path):
    remote = Api(url="http://127.0.0.1:1/", api_key="k", cache=False)  # nothing is contacted until asked
    transport = remote.transport
    assert isinstance(transport, HttpTransport)
    transport.retry = type(transport.retry)(attempts=2, base_delay=0.0)
    with pytest.raises(RemoteUnavailableError, match="still failing after 2 attempts"):
        remote.get_database_list()
    monkeypatch.delenv("HEADWATER_CATALOG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    expected = tmp_path / "headwater" / "catalog.sqlite"
    with pytest.raises(ClientError, match=f"no catalog at {expected}"):
        Api()
    assert not expected.exists()  # a missing default catalog is not silently created


def test_default_catalog_is_the_xdg_data_file(catalog_path, monkeypatch, tmp_path):
    monkeypatch.delenv("HEADWATER_CATALOG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    (tmp_path / "headwater").mkdir()
    os.replace(catalog_path, tmp_path / "headwater" / "catalog.sqlite")
    assert Api(cache=False).get_default_database().name == "main"


def test_catalog_from_environment(catalog_path, monkeypatch):
    monkeypatch.setenv("HEADWATER_CATALOG", catalog_path)
    assert Api(cache=False).get_default_database().name == "main"
    assert isinstance(Api(cache=False).transport, Transport)


# -- streaming -------------------------------------------------------------------------------------

def test_full_stream_is_the_published_order_and_raw_is_the_published_bytes(v1):
    assert uids(v1.stream_split("train")) == TRAIN
    raw = list(v1.stream_split("train", raw=True, cache=False))
    assert raw == [droplet(i) for i in range(N_TRAIN)]
    first = next(iter(v1.stream_split("train", cache=False)))
    assert isinstance(first, ImageAnnotation) and encode_droplet(first) == msgspec.json.encode(
        msgspec.json.decode(droplet(0)))


@pytest.mark.parametrize("nchunks", [1, 2, 3, 7, 10, 103, 150])
def test_chunks_partition_the_split(v1, nchunks):
    parts = [uids(v1.stream_split("train", k, nchunks)) for k in range(nchunks)]
    assert [u for p in parts for u in p] == TRAIN
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    # the same (uid, split, n, k) again — now from the cache — is the same droplets in the same order
    assert [uids(v1.stream_split("train", k, nchunks)) for k in range(nchunks)] == parts


def test_shuffle_is_seeded_deterministic_and_partitions(v1, api):
    order = [u for k in range(4) for u in uids(v1.stream_split("train", k, 4, shuffle_seed=11))]
    assert sorted(order) == sorted(TRAIN) and order != TRAIN
    again = uids(v1.stream_split("train", 0, 1, shuffle_seed=11, cache=False))
    assert again == order  # chunks of a shuffled pass are runs of one permutation
    other = uids(v1.stream_split("train", 0, 1, shuffle_seed=12, cache=False))
    assert other != order and sorted(other) == sorted(TRAIN)
    # another Api on the same catalog (another process would do the same) agrees
    fresh = Api(catalog=api.transport.catalog, cache=False).get_default_database().get_dataset("acme/pets:v1")
    assert uids(fresh.stream_split("train", 1, 4, shuffle_seed=11)) == uids(
        v1.stream_split("train", 1, 4, shuffle_seed=11))


@pytest.mark.parametrize("seed", [None, 5])
def test_resume_from_offset(v1, seed):
    full = uids(v1.stream_split("train", 1, 3, shuffle_seed=seed, cache=False))
    for offset in (0, 1, 17, len(full)):
        assert uids(v1.stream_split("train", 1, 3, shuffle_seed=seed, offset=offset)) == full[offset:]
    # and from a promoted cache entry
    list(v1.stream_split("train", 1, 3, shuffle_seed=seed))
    assert uids(v1.stream_split("train", 1, 3, shuffle_seed=seed, offset=9)) == full[9:]


def test_truncate(v1):
    head = uids(v1.stream_split("train", shuffle_seed=3, truncate=100, cache=False))
    assert head == uids(v1.stream_split("train", shuffle_seed=3, cache=False))[:100]
    per_rank = [uids(v1.stream_split("train", r, 4, truncate=100)) for r in range(4)]
    assert [len(p) for p in per_rank] == [25, 25, 25, 25]
    assert uids(v1.stream_split("train", truncate=1000)) == TRAIN


def test_bad_arguments_fail_at_call_time(v1):
    with pytest.raises(ValueError, match=r"Invalid chunk specification\. 3 must be in the range \[0, 3\)"):
        v1.stream_split("train", 3, 3)
    with pytest.raises(ValueError, match=r"Invalid chunk specification\. 0 must be in the range \[0, 0\)"):
        v1.stream_split("train", 0, 0)
    with pytest.raises(ClientError, match="offset must be in"):
        v1.stream_split("train", 0, 2, offset=60)
    with pytest.raises(ClientError, match="shuffle_seed"):
        v1.stream_split("train", shuffle_seed="x")
    with pytest.raises(ClientError, match="truncate"):
        v1.stream_split("train", truncate=-1)


def test_bad_droplet_in_stream_names_line_and_field(tmp_path):
    path = str(tmp_path / "bad.sqlite")
    with Catalog(path) as cat:
        cat.create_database("main")
        good = droplet(1)
        cat.publish("main", "a", "b", template=TEMPLATE,
                    splits={"train": [good, good, b'{"image":{"paths":[3]},"classes":{}}', good]})
    ds = Api(catalog=path, cache=False).get_default_database().get_dataset("a/b:latest")
    stream = ds.stream_split("train")
    assert next(stream).uid == "v1-1"
    with pytest.raises(DropletError, match=r"line 2: \$\.image\.paths\[0\]"):
        list(stream)


# -- the cache under the API -----------------------------------------------------------------------

def test_complete_pass_is_cached_and_replayed(v1, api):
    cache = api.cache
    first = uids(v1.stream_split("train", 0, 2))
    key = StreamKey(v1.uid, "train", 0, 2)
    entry = cache.lookup(key)
    assert entry is not None and entry.lines == len(first)
    # prove the next pass is served from the entry: alter it (same size) and see the change
    with open(entry.path, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.write(data.replace(b'"uid":"v1-0"', b'"uid":"v1-X"'))
    assert uids(v1.stream_split("train", 0, 2))[0] == "v1-X"
    assert uids(v1.stream_split("train", 0, 2, cache=False))[0] == "v1-0"


def test_abandoned_pass_then_full_pass(v1, api):
    stream = v1.stream_split("train", 0, 1, shuffle_seed=9)
    got = [next(stream) for _ in range(10)]
    stream.close()
    assert api.cache.lookup(StreamKey(v1.uid, "train", 0, 1, 9)) is None
    full = uids(v1.stream_split("train", 0, 1, shuffle_seed=9))
    assert full[:10] == uids(got) and sorted(full) == sorted(TRAIN)
    assert api.cache.lookup(StreamKey(v1.uid, "train", 0, 1, 9)).lines == N_TRAIN


def test_no_cache_writes_nothing(catalog_path, tmp_path):
    cache = StreamCache(tmp_path / "c")
    ds = Api(catalog=catalog_path, cache=cache).get_default_database().get_dataset("acme/pets:v1")
    list(ds.stream_split("train", cache=False))
    list(ds.stream_split("train", 0, 2, offset=3))  # a resumed pass is not a complete chunk
    assert cache.entries() == []
    no_cache_api = Api(catalog=catalog_path, cache=False)
    assert no_cache_api.cache is None
    assert len(list(no_cache_api.get_default_database().get_dataset("acme/pets:v1").stream_split("train"))) == N_TRAIN


def test_dataset_pickles_and_streams(v1):
    copy = pickle.loads(pickle.dumps(v1))
    assert uids(copy.stream_split("validation")) == [f"v1-{i}" for i in range(1000, 1010)]
    assert copy.cache.root == v1.cache.root


# -- query -----------------------------------------------------------------------------------------

def _has(d: ImageAnnotation, name: str) -> bool:
    c = d.classes.get(name)
    return bool(c and (c.instances or c.multi_instances))


def test_query_by_class_and_predicate(v1):
    all_droplets = list(v1.stream_split("train", cache=False))
    dogs = uids(v1.query("train", classes="dog"))
    assert dogs == [d.uid for d in all_droplets if _has(d, "dog")]
    assert dogs and "v1-0" not in dogs  # droplet 0 has an empty "dog" class and a "dog" path
    cats_or_birds = uids(v1.query("train", classes=["cat", "bird"]))
    assert cats_or_birds == [d.uid for d in all_droplets if _has(d, "cat") or _has(d, "bird")]
    many = v1.query("train", lambda d: sum(len(c.instances) for c in d.classes.values()) >= 3, classes="cat")
    expected = [d.uid for d in all_droplets
                if _has(d, "cat") and sum(len(c.instances) for c in d.classes.values()) >= 3]
    assert uids(many) == expected and expected
    assert uids(v1.query("train", classes="dog", limit=3)) == dogs[:3]
    assert uids(v1.query("train", lambda d: d.uid.endswith("7"))) == [u for u in TRAIN if u.endswith("7")]
    assert list(v1.query("train", classes="zebra")) == []
    assert uids(v1.query("train", classes="dog", chunk=1, nchunks=2)) == [
        u for u in dogs if int(u.split("-")[1]) >= N_TRAIN // 2]
    with pytest.raises(ClientError, match="limit"):
        v1.query("train", limit=-1)
    with pytest.raises(ClientError, match="callable"):
        v1.query("train", where="cat")


# -- both catalog backends -------------------------------------------------------------------------

def test_streams_on_each_backend(catalog_url, tmp_path):
    make_catalog(catalog_url)
    transport = EmbeddedTransport(catalog_url)
    api = Api(transport=transport, cache=StreamCache(tmp_path / "c"))
    ds = api.get_default_database().get_dataset("acme/pets:v1")
    assert [u for k in range(5) for u in uids(ds.stream_split("train", k, 5))] == TRAIN
    shuffled = [u for k in range(3) for u in uids(ds.stream_split("train", k, 3, shuffle_seed=4))]
    assert sorted(shuffled) == sorted(TRAIN) and shuffled != TRAIN
    assert uids(ds.stream_split("train", 2, 3, shuffle_seed=4, offset=5, cache=False)) == shuffled[
        2 * N_TRAIN // 3 + 5:]
