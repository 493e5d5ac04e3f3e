"""The PyTorch integration with real DataLoader workers over a real catalog and a real packed pool."""

from __future__ import annotations

import io
import os

import msgspec
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from headwater.archive import pack_directory
from headwater.catalog import Catalog
from headwater.client import Api, ClientError
from headwater.integrations.torch import (
    DropletDataset,
    DropletLoader,
    collate_samples,
    worker_batches,
)

TEMPLATE = {"kind": "ImageAnnotationTemplate", "classes": {}}


def droplet(i: int, path: str | None = None) -> bytes:
    return msgspec.json.encode({"kind": "ImageAnnotation", "image": {"paths": [path or f"{i}.jpg"]},
                                "classes": {}, "uid": str(i)})


def publish(path: str, splits: dict[str, list[bytes]], pools: dict[str, str] | None = None):
    with Catalog(path) as cat:
        cat.create_database("main", exist_ok=True)
        cat.publish("main", "acme", "pets", template=TEMPLATE, splits=splits, pools=pools)
    return Api(catalog=path, cache=False).get_default_database().get_dataset("acme/pets:latest")


@pytest.fixture
def make_dataset(tmp_path):
    def make(n: int):
        return publish(os.path.join(str(tmp_path), f"cat{n}.sqlite"), {"train": [droplet(i) for i in range(n)]})
    return make


def ids(batches) -> list[int]:
    return [int(s["droplet"].uid) for batch in batches for s in batch]


def test_workers_see_every_sample_exactly_once(make_dataset):
    ds = make_dataset(101)
    data = DropletDataset(ds, "train", shuffle_seed=3)
    loader = DropletLoader(data, batch_size=4, num_workers=2)
    seen = ids(loader)
    assert sorted(seen) == list(range(101)) and seen != list(range(101))
    assert len(data) == 101
    # a plain DataLoader works too (with the list collate)
    plain = DataLoader(DropletDataset(ds, "train"), batch_size=5, num_workers=2, collate_fn=collate_samples)
    assert sorted(ids(plain)) == list(range(101))


def test_epochs_reshuffle(make_dataset):
    ds = make_dataset(60)
    data = DropletDataset(ds, "train", shuffle_seed=7)
    loader = DropletLoader(data, batch_size=8, num_workers=2)
    first = ids(loader)
    assert ids(loader) == first  # same epoch, same order
    data.set_epoch(1)
    second = ids(loader)
    assert sorted(first) == sorted(second) == list(range(60)) and first != second


def test_persistent_workers_reshuffle_every_epoch(make_dataset):
    ds = make_dataset(90)
    fresh = DropletDataset(ds, "train", shuffle_seed=4)
    want = []
    for epoch in range(3):  # what workers started anew each epoch give
        fresh.set_epoch(epoch)
        want.append(ids(DropletLoader(fresh, batch_size=8, num_workers=2)))
    assert len({tuple(w) for w in want}) == 3

    data = DropletDataset(ds, "train", shuffle_seed=4)
    loader = DropletLoader(data, batch_size=8, num_workers=2, persistent_workers=True)
    got, pids = [], []
    for epoch in range(3):
        data.set_epoch(epoch)
        it = iter(loader)
        got.append(ids(it))
        pids.append(tuple(w.pid for w in it._inner._workers))  # type: ignore[attr-defined]  # torch's iterator
    assert got == want  # each kept worker read the new epoch
    assert len(set(pids)) == 1  # ... and the same two processes served every epoch


@pytest.mark.parametrize("seed", [None, 6])
def test_persistent_workers_resume_mid_epoch(make_dataset, seed):
    ds = make_dataset(50)
    data = DropletDataset(ds, "train", shuffle_seed=seed)
    loader = DropletLoader(data, batch_size=4, num_workers=2, persistent_workers=True)
    assert sorted(ids(loader)) == list(range(50))  # epoch 0, whole: the workers are up
    data.set_epoch(1)
    it = iter(loader)
    head = [next(it) for _ in range(5)]
    state = loader.state_dict()
    assert state["epoch"] == 1 and sum(state["offsets"]) == sum(len(b) for b in head)
    # the same kept workers resume (the rest of the epoch interrupted above, then a full epoch 2)
    loader.load_state_dict(state)
    rest = ids(loader)
    assert sorted(ids(head) + rest) == list(range(50)) and not set(ids(head)) & set(rest)
    reference = DropletDataset(ds, "train", shuffle_seed=seed)
    reference.set_epoch(1)
    assert sorted(ids(head) + rest) == sorted(ids(DropletLoader(reference, batch_size=4, num_workers=2)))
    data.set_epoch(2)
    reference.set_epoch(2)
    assert ids(loader) == ids(DropletLoader(reference, batch_size=4, num_workers=2))


@pytest.mark.parametrize("seed", [None, 11])
def test_resume_mid_epoch_with_workers(make_dataset, seed):
    ds = make_dataset(17)  # two workers: 8 and 9 samples → 2 and 3 batches of 4: uneven batch counts
    total_batches = 5
    for k in range(total_batches + 1):
        data = DropletDataset(ds, "train", shuffle_seed=seed)
        data.set_epoch(2)
        it = iter(DropletLoader(data, batch_size=4, num_workers=2))
        head = [next(it) for _ in range(k)]
        state = data.state_dict()
        del it
        assert state["epoch"] == 2 and sum(state["offsets"]) == sum(len(b) for b in head)

        fresh = DropletDataset(ds, "train", shuffle_seed=seed)
        fresh_loader = DropletLoader(fresh, batch_size=4, num_workers=2)
        fresh_loader.load_state_dict(state)
        fresh.set_epoch(2)  # the usual loop calls set_epoch(epoch) again: the resume state stays
        rest = ids(fresh_loader)
        assert sorted(ids(head) + rest) == list(range(17)), (k, ids(head), rest)
        assert not set(ids(head)) & set(rest)
        assert fresh.state_dict()["offsets"] == [8, 9]  # the epoch is complete


def test_resume_twice_and_in_process(make_dataset):
    ds = make_dataset(40)
    data = DropletDataset(ds, "train", shuffle_seed=1)
    it = iter(DropletLoader(data, batch_size=3, num_workers=2))
    a = [next(it) for _ in range(3)]
    s1 = data.state_dict()
    del it
    second = DropletDataset(ds, "train", shuffle_seed=1)
    loader2 = DropletLoader(second, batch_size=3, num_workers=2)
    loader2.load_state_dict(s1)
    assert second.state_dict() == s1  # loaded, not iterated yet
    it2 = iter(loader2)
    b = [next(it2) for _ in range(4)]
    s2 = loader2.state_dict()
    del it2
    third = DropletDataset(ds, "train", shuffle_seed=1)
    third.load_state_dict(s2)
    loader3 = DropletLoader(third, batch_size=3, num_workers=2)
    c = ids(loader3)
    assert sorted(ids(a) + ids(b) + c) == list(range(40))

    # without workers, plain iteration in this process is tracked too
    single = DropletDataset(ds, "train")
    it = iter(single)
    first = [next(it)["position"] for _ in range(7)]
    state = single.state_dict()
    assert state["offsets"] == [7] and first == list(range(7))
    again = DropletDataset(ds, "train")
    again.load_state_dict(state)
    assert [s["position"] for s in again] == list(range(7, 40))


def test_resume_state_is_checked(make_dataset):
    ds = make_dataset(30)
    data = DropletDataset(ds, "train", shuffle_seed=1)
    it = iter(DropletLoader(data, batch_size=2, num_workers=2))
    next(it)
    state = data.state_dict()
    del it
    with pytest.raises(ClientError, match="shuffle_seed"):
        DropletDataset(ds, "train", shuffle_seed=2).load_state_dict(state)
    with pytest.raises(ClientError, match="world_size"):
        DropletDataset(ds, "train", shuffle_seed=1, rank=0, world_size=2).load_state_dict(state)
    other = DropletDataset(ds, "train", shuffle_seed=1)
    other.load_state_dict(state)
    with pytest.raises(ClientError, match="same num_workers"):
        iter(DropletLoader(other, batch_size=2, num_workers=1))
    with pytest.raises(ClientError, match="in_order"):
        DropletLoader(other, batch_size=2, num_workers=2, in_order=False)


@pytest.mark.parametrize("seed", [None, 5])
def test_ranks_get_equal_disjoint_samples_and_equal_batches(make_dataset, seed):
    ds = make_dataset(103)
    per_rank, batches = [], []
    for rank in range(2):
        data = DropletDataset(ds, "train", rank=rank, world_size=2, shuffle_seed=seed)
        assert len(data) == 51
        got = list(DropletLoader(data, batch_size=4, num_workers=2))
        batches.append(len(got))
        per_rank.append(ids(got))
    assert [len(p) for p in per_rank] == [51, 51]  # floor(103 / 2) each
    assert not set(per_rank[0]) & set(per_rank[1])
    assert batches[0] == batches[1]
    # rank 0's state resumes rank 1 (equal ranks share offsets)
    r0 = DropletDataset(ds, "train", rank=0, world_size=2, shuffle_seed=seed)
    it = iter(DropletLoader(r0, batch_size=4, num_workers=2))
    [next(it) for _ in range(3)]
    state = r0.state_dict()
    del it
    r1 = DropletDataset(ds, "train", rank=1, world_size=2, shuffle_seed=seed)
    r1.load_state_dict(state)
    assert len(ids(DropletLoader(r1, batch_size=4, num_workers=2))) == 51 - 12
    # without equal_samples, ranks differ by at most one and cover the whole split
    uneven = [ids([list(DropletDataset(ds, "train", rank=r, world_size=2, equal_samples=False))])
              for r in range(2)]
    assert sorted(uneven[0] + uneven[1]) == list(range(103))


def test_worker_batches_rule():
    assert worker_batches([8, 9], 4, 0) == [0, 0]
    assert worker_batches([8, 9], 4, 3) == [8, 4]
    assert worker_batches([8, 9], 4, 4) == [8, 8]
    assert worker_batches([8, 9], 4, 5) == [8, 9]
    assert worker_batches([0, 5, 5], 2, 4) == [0, 4, 4]
    assert worker_batches([8, 9], 4, 4, drop_last=True) == [8, 8]
    with pytest.raises(ClientError, match="more than"):
        worker_batches([8, 9], 4, 6)


def test_transform_runs_in_workers(make_dataset):
    ds = make_dataset(12)
    data = DropletDataset(ds, "train", transform=lambda s: (int(s["droplet"].uid), os.getpid()))
    got = [x for b in DataLoader(data, batch_size=3, num_workers=2, collate_fn=collate_samples) for x in b]
    assert sorted(i for i, _ in got) == list(range(12))
    assert os.getpid() not in {pid for _, pid in got} and len({pid for _, pid in got}) == 2


@pytest.mark.parametrize("seed", [None, 3])
def test_images_from_a_packed_pool(tmp_path, seed):
    src = tmp_path / "src"
    src.mkdir()
    files = {}
    for i in range(70):  # shuffled: several blocks and windows
        image = Image.new("RGB", (4 + i % 3, 5), (i * 3, 255 - i * 3, 7))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        files[i] = buf.getvalue()
        (src / f"{i}.png").write_bytes(files[i])
    pool = tmp_path / "pool"
    pack_directory(str(src), str(pool), silent=True)
    ds = publish(str(tmp_path / "c.sqlite"), {"train": [droplet(i, f"pool://imgs/{i}.png") for i in range(70)]},
                 pools={"imgs": str(pool)})
    data = DropletDataset(ds, "train", images="pil", image_batch=5, shuffle_seed=seed)
    seen = []
    for batch in DropletLoader(data, batch_size=4, num_workers=2):
        for sample in batch:
            i = int(sample["droplet"].uid)
            img = sample["image"]
            assert img.size == (4 + i % 3, 5) and img.getpixel((0, 0)) == (i * 3, 255 - i * 3, 7)
            seen.append(i)
    assert sorted(seen) == list(range(70))
    raw = DropletDataset(ds, "train", images="bytes", pools={"imgs": str(pool)}, shuffle_seed=seed)
    pairs = [(int(s["droplet"].uid), s["image"]) for s in raw]
    assert dict(pairs) == files
    assert [i for i, _ in pairs] == [int(d.uid) for d in ds.stream_split("train", shuffle_seed=seed)]


def test_bad_arguments(make_dataset):
    ds = make_dataset(5)
    with pytest.raises(ClientError, match="images"):
        DropletDataset(ds, "train", images="tensor")  # type: ignore[arg-type]  # refused at run time too
    with pytest.raises(ClientError, match="rank"):
        DropletDataset(ds, "train", rank=2, world_size=2)
    with pytest.raises(ClientError, match="no split"):
        DropletDataset(ds, "test")
    with pytest.raises(ClientError, match="epoch"):
        DropletDataset(ds, "train").set_epoch(-1)


def _rank_main(rank: int, store: str, catalog_path: str, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        ds = Api(catalog=catalog_path, cache=False).get_default_database().get_dataset("acme/pets:latest")
        data = DropletDataset(ds, "train", shuffle_seed=4)  # rank and world size from torch.distributed
        got = ids(DropletLoader(data, batch_size=4, num_workers=2))
        queue.put((rank, data.rank, data.world_size, got))
    finally:
        dist.destroy_process_group()


def test_rank_and_world_size_come_from_torch_distributed(tmp_path):
    import multiprocessing

    path = str(tmp_path / "c.sqlite")
    publish(path, {"train": [droplet(i) for i in range(45)]})
    ctx = multiprocessing.get_context("fork")  # torch is already imported here: much faster than spawn
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank_main, args=(r, str(tmp_path / "pg-store"), path, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [(r, rank, world) for r, rank, world, _ in results] == [(0, 0, 2), (1, 1, 2)]
    a, b = results[0][3], results[1][3]
    assert len(a) == len(b) == 22 and not set(a) & set(b)
