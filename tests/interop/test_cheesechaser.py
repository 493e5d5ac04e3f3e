"""Interop: the real cheesechaser 0.2.2 (from PyPI, in its own venv ``.venv-peers/cheesechaser``, with the
huggingface_hub and hfutils it pulls in) against a live headwater server on 127.0.0.1 through
``HF_ENDPOINT`` — unchanged: ``IncrementIDDataPool(repo)`` finds resources by id and downloads them with
the right bytes, ``batch_download_to_directory`` fills a directory, a private pool works with ``hf_token``.
Only 127.0.0.1 is reachable from the subprocess (every other host goes to a dead proxy)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import textwrap
from typing import Any

import httpx
import pytest

from headwater.archive import pack_directory
from headwater.server.app import ServerConfig
from headwater.server.rate_limits import DEFAULT_RATE_LIMIT

from ..support.files import make_files
from ..support.servers import live_server, make_user

REPO = "deepghs/headwater-test"

# Runs inside the cheesechaser venv: only cheesechaser's public API, as its users call it.
_SCRIPT = textwrap.dedent('''
    import hashlib, json, logging, os, sys
    from cheesechaser.datapool import IncrementIDDataPool

    repo, out, ids, token = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] or None
    pool = IncrementIDDataPool(repo, hf_token=token)            # the defaults: base_level=3, base_dir="images"
    result = {"mock": {}}
    for rid in ids[:3]:
        with pool.mock_resource(rid, {"id": rid}) as (folder, info):
            result["mock"][str(rid)] = sorted(
                [name, hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()]
                for name in os.listdir(folder))
    pool.batch_download_to_directory(ids + [999999999], out, max_workers=8, silent=True)
    result["batch"] = {name: hashlib.sha256(open(os.path.join(out, name), "rb").read()).hexdigest()
                       for name in sorted(os.listdir(out))}
    print(json.dumps(result))
''')


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[int, bytes]]:
    root = str(tmp_path_factory.mktemp("cc"))
    ids = [*sorted(random.Random(17).sample(range(1, 5_000_000), 120)), 1234, 2234, 3234]  # shared shard 0234
    files = make_files(os.path.join(root, "src"), ids, seed=9, ext=".webp")
    pack_directory(os.path.join(root, "src"), os.path.join(root, "pool"), layout="increment-id", base_level=3,
                   silent=True)
    return os.path.join(root, "pool"), files


def _run(python: str, url: str, out: str, ids: list[int], token: str = "") -> dict[str, Any]:
    env = {**os.environ, "HF_ENDPOINT": url, "HF_HOME": out + "-hf", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "ALL_PROXY": "",
           "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.run([python, "-c", _SCRIPT, REPO, out, json.dumps(ids), token], capture_output=True,
                          text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cheesechaser_downloads_by_id(cheesechaser_python: str, pool: tuple[str, dict[int, bytes]],
                                      tmp_path) -> None:
    pool_dir, files = pool
    ids = [1234, 2234, 3234, *sorted(files)[:57]]
    sha = {f"{rid}.webp": hashlib.sha256(files[rid]).hexdigest() for rid in ids}
    # under the rate limit `serve` applies beyond loopback: the stock client must not notice it
    config = ServerConfig(str(tmp_path / "catalog.sqlite"), pools={REPO: pool_dir}, rate_limit=DEFAULT_RATE_LIMIT)
    with live_server(config, public_pools=True) as url:
        out = _run(cheesechaser_python, url, str(tmp_path / "out"), ids)
    assert out["mock"] == {str(rid): [[f"{rid}.webp", sha[f"{rid}.webp"]]] for rid in ids[:3]}
    assert out["batch"] == sha  # every id, right bytes; the unknown id skipped


def test_cheesechaser_with_a_token_on_a_private_pool(cheesechaser_python: str, pool: tuple[str, dict[int, bytes]],
                                                     tmp_path) -> None:
    pool_dir, files = pool
    ids = sorted(files)[-5:]
    config = ServerConfig(str(tmp_path / "catalog.sqlite"), pools={REPO: pool_dir}, anonymous_read=False)
    with live_server(config, handle=True, public_pools=True) as server:
        key = make_user(server.app.state.catalog, "dana")
        assert httpx.get(f"{server.url}/datasets/{REPO}/resolve/main/images/0234.json").status_code == 401
        out = _run(cheesechaser_python, server.url, str(tmp_path / "out"), ids, token=key)
    assert out["batch"] == {f"{rid}.webp": hashlib.sha256(files[rid]).hexdigest() for rid in ids}
