"""MosaicML Streaming's side of ``bench_torch.py``; runs in ``.venv-peers/mosaic`` (mosaicml-streaming 0.13).

``convert``: ``MDSWriter`` writes the source files (``{key}.jpg`` + ``{key}.json``) as columns
``key: int``, ``jpg: bytes``, ``json: json``, uncompressed, shards of about ``size_limit`` bytes (the tar
shards' size, so every format has the same number of samples per shard); prints the seconds and the
samples and shards the index lists.

``time``/``verify``: one epoch of ``StreamingDataset`` through a plain ``DataLoader``. Local: read in place
(``local=`` the MDS directory, no remote). HTTP: Streaming 0.13 has no plain-HTTP downloader (its remotes
are s3, gs, oci, azure, dbfs, hf, sftp), so it reads ``s3://bucket/mds`` with ``S3_ENDPOINT_URL`` pointed at
the benchmark's file server (path-style GET/HEAD of ``/bucket/key``, what boto3 sends) into a fresh
``local`` cache dir. Shuffled: ``shuffle=True, shuffle_algo="py1e"`` (its default algorithm and block).
The sample's JPEG bytes are decoded with ``_torch_epoch.decode_image`` in ``__getitem__`` (in the worker).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from typing import Any

from _torch_epoch import config, decode_image, run_epoch


def _import_streaming_base() -> None:
    """Make ``import streaming.base`` work without running ``streaming/__init__``.

    Why: ``streaming/__init__`` imports its vision datasets, which import torchvision, and the only
    torchvision 0.28 wheel pip can install here is built against the CUDA torch (its ``_C.so`` needs
    ``libtorch_cuda.so``), while the venv has the CPU torch 2.13 wheel: ``import streaming`` raises. The
    classes measured (``MDSWriter``, ``StreamingDataset``) live in ``streaming.base`` and never use
    torchvision, so the package is registered without its ``__init__`` and ``streaming.base`` imported
    as usual — the code that runs is Streaming's own, unchanged."""
    import importlib.util
    import types

    spec = importlib.util.find_spec("streaming")
    if spec is None or spec.submodule_search_locations is None:
        raise SystemExit("mosaicml-streaming is not installed in this venv")
    package = types.ModuleType("streaming")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("streaming", package)


def convert(cfg: dict[str, Any]) -> None:
    _import_streaming_base()
    from streaming.base import MDSWriter

    start = time.perf_counter()
    with MDSWriter(out=cfg["out"], columns={"key": "int", "jpg": "bytes", "json": "json"},
                   size_limit=int(cfg["size_limit"]), progress_bar=False) as writer:
        for i in range(cfg["n"]):
            key = f"{i:07d}"
            with open(os.path.join(cfg["src"], key + ".jpg"), "rb") as f:
                jpg = f.read()
            with open(os.path.join(cfg["src"], key + ".json"), "rb") as f:
                droplet = json.load(f)
            writer.write({"key": i, "jpg": jpg, "json": droplet})
    seconds = time.perf_counter() - start
    with open(os.path.join(cfg["out"], "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    samples = sum(shard["samples"] for shard in index["shards"])
    print("CONVERT-RESULT " + json.dumps({"seconds": seconds, "samples": samples, "shards": len(index["shards"])}))


def main() -> None:
    cfg = config()
    warnings.filterwarnings("ignore")
    if cfg["mode"] == "convert":
        convert(cfg)
        return
    if cfg["remote"]:
        os.environ.update(S3_ENDPOINT_URL=cfg["endpoint"], AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_DEFAULT_REGION="us-east-1")
    _import_streaming_base()
    from streaming.base import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory
    from torch.utils.data import DataLoader

    clean_stale_shared_memory()
    verify = cfg["mode"] == "verify"

    class Samples(StreamingDataset):  # type: ignore[misc]
        def __getitem__(self, index: int) -> Any:
            row = super().__getitem__(index)
            return row["key"], (row["jpg"] if verify else decode_image(row["jpg"])), row["json"]

    def build() -> Any:
        if cfg["remote"]:
            location = {"remote": cfg["remote"], "local": os.path.join(cfg["cache"], "mds")}
        else:
            location = {"local": cfg["local"]}
        ds = Samples(**location, shuffle=cfg["shuffle"], shuffle_algo="py1e", shuffle_seed=cfg["seed"],
                     batch_size=cfg["batch"])
        return DataLoader(ds, batch_size=cfg["batch"], num_workers=cfg["workers"], collate_fn=list,
                          persistent_workers=cfg["workers"] > 0)

    def sample(item: tuple[int, Any, Any]) -> tuple[int, Any]:
        return int(item[0]), item[1]

    run_epoch(build, sample, cfg["mode"])


if __name__ == "__main__":
    main()
