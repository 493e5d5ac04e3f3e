"""headwater's side of ``bench_torch.py``: ``DropletLoader(DropletDataset(...))`` for one epoch (project venv).

Settings (one JSON argument, see ``_torch_epoch.config``): ``catalog``, ``cache`` (stream cache dir),
``pool`` (None: the dataset's own local pool; else the pool's URL), ``shuffle``, ``seed``, ``workers``,
``batch``, ``mode`` (``time``/``verify``). Droplets always come from the local SQLite catalog; with
``pool`` set the images come over HTTP through the pool's manifest and planned range reads.

The catalog engine's lazy imports are done before the clock starts (as the peers' imports are).
``persistent_workers=True`` is passed when ``DropletLoader`` accepts it (the run reports whether it did):
one epoch per process makes no difference to the figure, but the setting a user would pick is the one
measured.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from _torch_epoch import config, run_epoch


def main() -> None:
    cfg = config()
    warnings.filterwarnings("ignore")
    # headwater imports its catalog engine (SQLAlchemy, alembic) lazily, on the first Api(catalog=...): done
    # here, before the clock, as the peers' imports are (a training job pays it once, not every epoch)
    import headwater.catalog.streams  # noqa: F401
    from headwater.client import Api, ClientError
    from headwater.integrations.torch import DropletDataset, DropletLoader

    images: Literal["pil", "bytes"] = "bytes" if cfg["mode"] == "verify" else "pil"
    notes: list[str] = []

    def build() -> Any:
        dataset = Api(catalog=cfg["catalog"], cache=cfg["cache"]).get_default_database().get_dataset(
            "bench/torch:latest")
        pools = None if cfg["pool"] is None else {"images": cfg["pool"]}
        data = DropletDataset(dataset, "train", images=images, pools=pools,
                              shuffle_seed=cfg["seed"] if cfg["shuffle"] else None)
        try:
            return DropletLoader(data, batch_size=cfg["batch"], num_workers=cfg["workers"], persistent_workers=True)
        except ClientError as err:
            if "persistent_workers" not in str(err):
                raise
            notes.append("persistent_workers refused")
            return DropletLoader(data, batch_size=cfg["batch"], num_workers=cfg["workers"])

    def sample(item: dict[str, Any]) -> tuple[int, Any]:
        return int(item["droplet"].uid), item["image"]

    run_epoch(build, sample, cfg["mode"], notes=notes)


if __name__ == "__main__":
    main()
