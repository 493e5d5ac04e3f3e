"""Fixtures of the storage tests: a file to read through stores, and a retry policy that does not wait."""

from __future__ import annotations

import random

import pytest

from headwater.storage import RetryPolicy

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
SHARD = "s.tar"


@pytest.fixture
def blob(tmp_path):
    """``(folder, data)``: 100,000 random bytes at ``folder/s.tar``."""
    data = random.Random(4).randbytes(100_000)
    (tmp_path / SHARD).write_bytes(data)
    return str(tmp_path), data
