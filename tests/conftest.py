"""Shared fixtures: generated pools on disk and a live range server on 127.0.0.1."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from headwater.archive import pack_directory

from .rangeserver import RangeServer


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path_factory.mktemp("hw-cache")))


def make_files(folder: str, ids: list[int], *, seed: int = 0, ext: str = ".bin", lo: int = 50,
               hi: int = 4000) -> dict[int, bytes]:
    """Random-content files ``<id><ext>``; returns id → bytes."""
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    out = {}
    for rid in ids:
        data = rng.randbytes(rng.randint(lo, hi))
        with open(os.path.join(folder, f"{rid}{ext}"), "wb") as f:
            f.write(data)
        out[rid] = data
    return out


@pytest.fixture
def id_pool(tmp_path: object) -> tuple[str, dict[int, bytes]]:
    """An increment-id pool (base_level 2: 100 shards) of 1,500 files with sparse ids."""
    root = str(tmp_path)
    ids = sorted(random.Random(7).sample(range(1, 50_000), 1500))
    files = make_files(os.path.join(root, "src"), ids)
    pack_directory(os.path.join(root, "src"), os.path.join(root, "pool"), layout="increment-id",
                   base_level=2, silent=True)
    return os.path.join(root, "pool"), files


@pytest.fixture
def served_pool(id_pool: tuple[str, dict[int, bytes]]) -> Iterator[tuple[RangeServer, dict[int, bytes]]]:
    pool_dir, files = id_pool
    with RangeServer(pool_dir) as server:
        yield server, files
