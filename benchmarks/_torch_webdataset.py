"""WebDataset's side of ``bench_torch.py``: one epoch over the tar shards (project venv, ``webdataset``).

Settings (one JSON argument): ``shards`` (paths or ``http://`` URLs — WebDataset reads a URL with its own
``curl`` pipe, one request per shard), ``shuffle``, ``seed``, ``buffer`` (sample shuffle buffer),
``workers``, ``batch``, ``mode``. Shards are split over the DataLoader workers by WebDataset's own worker
splitter; the JPEG is decoded by its ``decode("pil")`` and the JSON parsed by its decoder. Shuffled:
shard order shuffled (``shardshuffle``) and samples through ``.shuffle(buffer)`` — WebDataset's own way.
"""

from __future__ import annotations

import warnings
from typing import Any

from _torch_epoch import config, run_epoch


def main() -> None:
    cfg = config()
    warnings.filterwarnings("ignore")
    import webdataset as wds
    from torch.utils.data import DataLoader

    def build() -> Any:
        if cfg["shuffle"]:
            ds = wds.WebDataset(cfg["shards"], shardshuffle=len(cfg["shards"]), seed=cfg["seed"], empty_check=False)
            ds = ds.shuffle(cfg["buffer"])
        else:
            ds = wds.WebDataset(cfg["shards"], shardshuffle=False, empty_check=False)
        if cfg["mode"] != "verify":
            ds = ds.decode("pil")
        ds = ds.to_tuple("__key__", "jpg", "json")
        return DataLoader(ds, batch_size=cfg["batch"], num_workers=cfg["workers"], collate_fn=list,
                          persistent_workers=cfg["workers"] > 0)

    def sample(item: tuple[str, Any, Any]) -> tuple[int, Any]:
        return int(item[0]), item[1]

    run_epoch(build, sample, cfg["mode"])


if __name__ == "__main__":
    main()
