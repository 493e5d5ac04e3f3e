"""LitData's side of ``bench_torch.py``; runs in ``.venv-peers/litdata`` (litdata 0.2.76).

``convert``: ``litdata.optimize`` over the sample keys, each item ``{"key": int, "jpg": bytes, "json": str}``
read from the source files, ``chunk_size`` samples a chunk (as many as a tar shard); prints the seconds and
the samples and chunks its ``index.json`` lists (``optimize`` can write 0 chunks without an error, so the
caller checks the count).

``time``/``verify``: one epoch of ``StreamingDataset`` through its ``StreamingDataLoader``. Local: the
optimized directory read in place. HTTP: LitData has no plain-HTTP downloader (s3, gs, azure, hf, local),
so it reads ``s3://bucket/litdata`` with ``storage_options`` pointing its S3 clients (boto3 for the index,
obstore for chunks, with ``allow_http`` added) at the benchmark's file server (path-style GET/HEAD of
``/bucket/key``), chunks downloaded into a fresh ``cache_dir``. Shuffled:
``shuffle=True`` with ``seed``. The JPEG bytes are decoded with ``_torch_epoch.decode_image`` and the JSON
parsed with ``json.loads`` in ``__getitem__`` (in the worker); LitData hands out the JPEG as a memoryview
into its chunk, which ``verify`` copies to ``bytes`` (a memoryview cannot cross the worker queue).
"""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from typing import Any

from _torch_epoch import config, decode_image, run_epoch


def _item(src: str, index: int) -> dict[str, Any]:
    key = f"{index:07d}"
    with open(os.path.join(src, key + ".jpg"), "rb") as f:
        jpg = f.read()
    with open(os.path.join(src, key + ".json"), encoding="utf-8") as f:
        text = f.read()
    return {"key": index, "jpg": jpg, "json": text}


def convert(cfg: dict[str, Any]) -> None:
    from litdata import optimize

    start = time.perf_counter()
    # its worker is spawned: the source dir travels in a partial, not a global
    optimize(fn=functools.partial(_item, cfg["src"]), inputs=list(range(cfg["n"])), output_dir=cfg["out"],
             chunk_size=int(cfg["chunk_size"]), num_workers=1, mode="overwrite")
    seconds = time.perf_counter() - start
    with open(os.path.join(cfg["out"], "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    samples = sum(chunk["chunk_size"] for chunk in index["chunks"])
    print("CONVERT-RESULT " + json.dumps({"seconds": seconds, "samples": samples, "shards": len(index["chunks"])}))


def main() -> None:
    cfg = config()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("DISABLE_S5CMD", "1")  # boto3, not an s5cmd binary that may or may not be there
    if cfg["mode"] == "convert":
        convert(cfg)
        return
    from litdata import StreamingDataLoader, StreamingDataset

    if cfg["remote"]:
        # its obstore S3 client refuses a plain-http endpoint unless told allow_http, which storage_options
        # does not pass through; this is the only change made to LitData's own download path
        from litdata.streaming import downloader

        downloader._OBSTORE_CLIENT_OPTIONS = {**downloader._OBSTORE_CLIENT_OPTIONS, "allow_http": "true"}

    verify = cfg["mode"] == "verify"

    class Samples(StreamingDataset):  # type: ignore[misc]
        def __getitem__(self, index: Any) -> Any:
            row = super().__getitem__(index)
            return row["key"], (bytes(row["jpg"]) if verify else decode_image(row["jpg"])), json.loads(row["json"])

    def build() -> Any:
        if cfg["remote"]:
            options = {"endpoint_url": cfg["endpoint"], "aws_access_key_id": "bench",
                       "aws_secret_access_key": "bench", "region_name": "us-east-1"}
            ds = Samples(cfg["remote"], cache_dir=cfg["cache"], storage_options=options, shuffle=cfg["shuffle"],
                         seed=cfg["seed"])
        else:
            ds = Samples(cfg["local"], shuffle=cfg["shuffle"], seed=cfg["seed"])
        return StreamingDataLoader(ds, batch_size=cfg["batch"], num_workers=cfg["workers"], collate_fn=list,
                                   persistent_workers=cfg["workers"] > 0)

    def sample(item: tuple[int, Any, Any]) -> tuple[int, Any]:
        return int(item[0]), item[1]

    run_epoch(build, sample, cfg["mode"])


if __name__ == "__main__":
    main()
