"""Several tars indexed at once (``index_tars``, ``headwater index``): the same indexes as one at a time and as
hfutils, in the order given, a damaged tar named without stopping the others, and Ctrl-C leaving every index
either whole or absent."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from hfutils.index import tar_get_index_info

from headwater.archive import TruncatedTarError, decode_index, encode_index, index_tar
from headwater.archive.index import index_tars, usable_cores


def write_tars(folder: Path, count: int, *, members: int = 40, seed: int = 7, size: int = 30_000) -> list[Path]:
    """``count`` pax tars (tarfile's default, as ``tar.add`` writes them) of random members."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tars = []
    for t in range(count):
        path = folder / f"part-{t:02d}.tar"
        src = folder / f"src-{t}"
        src.mkdir()
        with tarfile.open(path, "w") as tar:
            for i in range(members):
                member = src / f"{i:04d}.bin"
                member.write_bytes(rng.randbytes(rng.randint(1, size)))
                tar.add(member, arcname=f"{t}/{i:04d}.bin")
        tars.append(path)
    return tars


def index_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("headwater-index", "headwater-sha"))]


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_many_at_once_equal_one_at_a_time_and_hfutils(tmp_path: Path, workers: int) -> None:
    tars = write_tars(tmp_path, 6)
    good = tars[3].read_bytes()
    tars[3].write_bytes(good[: len(good) // 2])  # cut short: named, the others still indexed
    progress: list[int] = []
    done = list(index_tars([str(t) for t in tars], workers=workers, on_progress=progress.append))
    assert [d.path for d in done] == [str(t) for t in tars]
    for shard in done:
        if shard.path == str(tars[3]):
            assert shard.index is None and isinstance(shard.error, TruncatedTarError)
            assert str(shard.error).startswith(f"{tars[3]}: archive truncated")
            continue
        assert shard.error is None and shard.index is not None
        assert shard.index == index_tar(shard.path)
        assert decode_index(encode_index(shard.index)) == shard.index
        assert json.loads(encode_index(shard.index)) == tar_get_index_info(shard.path, silent=True)
    assert sum(progress) == sum(os.path.getsize(t) for t in tars)
    assert index_threads() == []


def test_closing_early_stops_the_workers(tmp_path: Path) -> None:
    tars = write_tars(tmp_path, 8, members=20)
    walk = index_tars([str(t) for t in tars], workers=2)
    first = next(walk)
    assert first.index is not None
    walk.close()  # what an error or Ctrl-C in the caller does
    assert index_threads() == []


def test_usable_cores_is_the_affinity() -> None:
    assert usable_cores() == len(os.sched_getaffinity(0)) >= 1


_INTERRUPTED = """
import sys
from headwater.cli import main
sys.argv = ["headwater", "index", sys.argv[1], "--no-manifest", "--max-workers", "2", "-q"]
main()
"""


def test_ctrl_c_leaves_each_index_whole_or_absent(tmp_path: Path) -> None:
    tars = write_tars(tmp_path / "pool", 12, members=300, size=40_000)  # ~6 MB each: seconds of work
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED, str(tmp_path / "pool")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(t.with_suffix(".json").exists() for t in tars) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    written = [t for t in tars if t.with_suffix(".json").exists()]
    print(f"{len(written)} of {len(tars)} indexes written before Ctrl-C took effect")
    assert written, "no index written before the interrupt"
    if len(written) < len(tars):  # interrupted mid-way (on a fast machine it may have finished)
        assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, out, err)
    for tar in written:
        assert decode_index(tar.with_suffix(".json").read_bytes()) == index_tar(tar)
    assert [p.name for p in (tmp_path / "pool").iterdir() if p.name.endswith(".tmp")] == [], (out, err)
