"""The datatap side of ``bench_server_stream.py``; runs inside ``.venv-peers/datatap`` (datatap==0.3.0).

Only datatap's public API, as a user calls it against a server: ``Api(api_key, uri=url)``,
``get_database_by_name``, ``Database.get_dataset("ns/name:tag")``, then ``Dataset.stream_split(split)``
for each pass, counting the decoded ``ImageAnnotation`` objects. Everything of datatap's own path is in
the timed loop: ``requests`` streaming with ``iter_lines``, ``json.loads`` per line, its
``CacheGenerator`` (a writer thread that ``json.dumps`` + flushes every droplet into a temp file under
``tempfile.mkdtemp(prefix="datatap-")``, a reader that polls that file) and ``ImageAnnotation.from_json``.

Usage: ``python _datatap_remote.py URL API_KEY DATABASE NS/NAME:TAG SPLIT PASSES``. Prints one JSON line:
``{"passes": [{"seconds", "count", "boxes"}…], "cache_dir", "promoted"}``.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

from datatap import Api
from datatap.api.endpoints import dataset_endpoints


def main() -> None:
    url, key, database, ref, split, passes = sys.argv[1:7]
    api = Api(key, uri=url)
    dataset = api.get_database_by_name(database).get_dataset(ref)
    results = []
    for _ in range(int(passes)):
        start = time.perf_counter()
        count = boxes = 0
        for annotation in dataset.stream_split(split):
            count += 1
            boxes += sum(len(c.instances) for c in annotation.classes.values())
        results.append({"seconds": time.perf_counter() - start, "count": count, "boxes": boxes})
    cache_dir = dataset_endpoints.process_directory
    promoted = bool(glob.glob(os.path.join(cache_dir, "*", "chunk-0.jsonl")))
    print(json.dumps({"passes": results, "cache_dir": cache_dir, "promoted": promoted}))


if __name__ == "__main__":
    main()
