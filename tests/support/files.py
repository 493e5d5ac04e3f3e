"""Files to pack and fetch: random bytes under ids, reproducible from a seed.

Example:
    >>> import tempfile
    >>> files = make_files(tempfile.mkdtemp(), [1, 2], lo=3, hi=3)
    >>> sorted(files), len(files[1])
    ([1, 2], 3)
"""

from __future__ import annotations

import io
import os
import random
import tarfile

__all__ = ["make_files", "tar_bytes"]


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


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """A tar archive (GNU format) holding ``members`` (name → bytes), in that order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()
