"""The datatap side of ``bench_stream.py``; runs inside ``.venv-peers/datatap`` (datatap==0.3.0).

It reproduces what ``datatap.api.entities.Dataset.stream_split`` does once the HTTP body arrives: the
endpoint's ``CacheGenerator(file, create_stream)`` where ``create_stream`` yields ``json.loads(line)`` for
each NDJSON line (``StreamRequester`` does exactly that over ``response.iter_lines``), then
``ImageAnnotation.from_json`` for every droplet. The lines come from a local file instead of a socket, so
the network costs nothing and only the client's own decode + cache path is timed. ``datatap.api`` is not
imported: it calls ``set_start_method('spawn', force=True)`` at import and is not needed here.

Prints one JSON object: seconds and count for each pass.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from datatap.droplet import ImageAnnotation
from datatap.utils.cache_generator import CacheGenerator


def main() -> None:
    source, passes = sys.argv[1], int(sys.argv[2])
    cache_dir = tempfile.mkdtemp(prefix="datatap-bench-")
    file_name = os.path.join(cache_dir, "ns-name-uid-training-1", "chunk-0.jsonl")

    def create_stream() -> Iterator[Any]:
        with open(source) as f:
            for line in f:
                yield json.loads(line)

    results: list[dict[str, object]] = []
    try:
        run_passes(passes, file_name, create_stream, results)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    print(json.dumps(results))


def run_passes(passes: int, file_name: str, create_stream: object, results: list[dict[str, object]]) -> None:
    """Time each pass: the first fills datatap's cache file, later ones replay it."""
    for _ in range(passes):
        start = time.perf_counter()
        count = 0
        for droplet in CacheGenerator(file_name, create_stream):
            ImageAnnotation.from_json(droplet)
            count += 1
        results.append({"seconds": time.perf_counter() - start, "count": count,
                        "promoted": os.path.exists(file_name)})


if __name__ == "__main__":
    main()
