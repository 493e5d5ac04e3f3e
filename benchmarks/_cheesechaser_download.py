"""The cheesechaser side of ``bench_server_download.py``; runs inside ``.venv-peers/cheesechaser``
(cheesechaser==0.2.2, with the huggingface_hub and hfutils it pulls in).

Only cheesechaser's public API, as a user calls it: ``IncrementIDDataPool(repo, base_level=…)
.batch_download_to_directory(ids, dst, max_workers=…)``. The server comes from ``HF_ENDPOINT`` (and the
key from ``HF_TOKEN``) in the environment, as huggingface_hub reads them at import; ``HF_HOME`` is set by
the caller to a fresh directory so every run starts cold (index JSON files are not cached across runs).

Usage: ``python _cheesechaser_download.py REPO IDS_FILE DST BASE_LEVEL WORKERS``. Prints one JSON line:
``{"seconds": …}`` (the time of the ``batch_download_to_directory`` call only, not the imports).
"""

from __future__ import annotations

import json
import sys
import time

from cheesechaser.datapool import IncrementIDDataPool


def main() -> None:
    repo, ids_file, dst, base_level, workers = sys.argv[1:6]
    with open(ids_file) as f:
        ids = [int(token) for token in f.read().split()]
    start = time.perf_counter()
    pool = IncrementIDDataPool(repo, base_level=int(base_level), hf_token=None)  # token: HF_TOKEN
    pool.batch_download_to_directory(ids, dst, max_workers=int(workers), silent=True)
    print(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
