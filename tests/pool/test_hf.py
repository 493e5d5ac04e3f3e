"""Headwater's own Hub pools against a live headwater server on 127.0.0.1 (real tars, real HTTP):

* revision pinning — ``IncrementIDDataPool`` resolves ``main`` to a commit once and reads every file at
  that commit, so an upload landing mid-download never mixes two versions of the pool: unchanged shards
  keep their bytes, a changed shard fails with :class:`PoolChangedError` naming both commits;
* ``hf://datasets/owner/repo@revision`` end to end — ``open_pool`` through huggingface_hub's
  ``HfFileSystem`` (endpoint given as a storage option, and as ``HF_ENDPOINT`` in a subprocess together with
  the ``headwater download hf://…`` command).

Nothing here reaches huggingface.co: every endpoint is given explicitly, and the subprocesses get a dead
proxy for any host but 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tarfile
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.archive import pack_directory
from headwater.pool import IncrementIDDataPool, IntegrityError, PoolChangedError, open_pool
from headwater.server.app import ServerConfig

from ..support.files import make_files
from ..support.servers import BackgroundServer, bearer, live_server, make_user

REPO = "acme/live"

_LOCAL_ONLY = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "ALL_PROXY": "",
               "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
               "HF_TOKEN": "", "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _pack(root: str, ids: list[int], base_level: int, seed: int) -> tuple[str, dict[int, bytes]]:
    files = make_files(os.path.join(root, "src"), ids, seed=seed)
    pool = os.path.join(root, "pool")
    pack_directory(os.path.join(root, "src"), pool, layout="increment-id", base_level=base_level, silent=True)
    return pool, files


def _sha(url: str, revision: str = "main") -> str:
    return str(httpx.get(f"{url}/api/datasets/{REPO}/revision/{revision}").json()["sha"])


# -- revision pinning --------------------------------------------------------------------------------------
def test_a_pinned_pool_never_mixes_two_versions(tmp_path) -> None:
    ids = sorted(random.Random(11).sample(range(1, 5000), 200))
    pool_dir, files = _pack(str(tmp_path), ids, base_level=1, seed=12)
    by_shard: dict[int, list[int]] = defaultdict(list)
    for rid in ids:
        by_shard[rid % 10].append(rid)
    changed = by_shard[7]  # images/07.tar is replaced mid-download
    kept = [rid for rid in ids if rid % 10 != 7]
    out = tmp_path / "out"
    with live_server(ServerConfig(str(tmp_path / "c.sqlite"), pools={REPO: pool_dir}), handle=True,
                     public_pools=True, pool_owner="alice") as server:
        url, key = server.url, make_user(server.app.state.catalog, "alice", permission="write")
        c1 = _sha(url)
        pinned = IncrementIDDataPool(REPO, base_level=1, endpoint=url)
        unpinned = IncrementIDDataPool(REPO, base_level=1, endpoint=url, pin_revision=False)
        late = IncrementIDDataPool(REPO, base_level=1, endpoint=url)

        # the download starts: half of the unchanged ids, and a lookup in the shard about to change
        first = kept[::2]
        report = pinned.batch_download_to_directory(first, str(out), silent=True)
        assert sorted(report.downloaded) == first and not report.failed
        assert pinned.data_commit == pinned.idx_commit == c1
        located = pinned.locate(changed[0])
        unpinned_located = unpinned.locate(changed[0])
        assert unpinned.data_commit is None
        assert late.data_commit == c1  # pinned, but has not read the manifest yet

        # an upload lands: shard 07 with the same member names and sizes, other bytes (so the same offsets)
        index = httpx.get(f"{url}/datasets/{REPO}/resolve/main/images/07.json").json()
        names = sorted(index["files"], key=lambda n: index["files"][n]["offset"])
        new = {rid: bytes(b ^ 0xFF for b in files[rid]) for rid in changed}
        body = _tar_bytes([(n, new[int(n.split(".")[0])]) for n in names])
        r = httpx.put(f"{url}/api/pools/{REPO}/files/images/07.tar", content=body, headers=bearer(key, raw=True),
                      params={"replace": "true"})
        assert r.status_code == 201, r.text
        c2 = r.json()["commit"]
        assert c2 != c1 and _sha(url) == c2
        new_index = httpx.get(f"{url}/datasets/{REPO}/resolve/main/images/07.json").json()
        assert ({n: f["offset"] for n, f in new_index["files"].items()}
                == {n: f["offset"] for n, f in index["files"].items()})

        # the download goes on: unchanged shards still read at c1; the changed one fails cleanly, naming both
        rest = kept[1::2]
        report = pinned.batch_download_to_directory(rest + changed, str(out), silent=True)
        assert sorted(report.downloaded) == rest and sorted(report.failed) == changed and not report.missing
        for reason in report.failed.values():
            assert reason.startswith("PoolChangedError") and c1 in reason and c2 in reason, reason
        assert sorted(os.listdir(out)) == sorted(f"{rid}.bin" for rid in kept)
        for rid in kept:
            assert (out / f"{rid}.bin").read_bytes() == files[rid]
        with pytest.raises(PoolChangedError) as caught:
            list(pinned.read_members(located))  # looked up before the upload, read after it
        err = caught.value
        assert (err.commit, err.current_commit, err.path, err.revision) == (c1, c2, "images/07.tar", "main")
        assert pinned.data_commit == c1

        # unpinned, the very same sequence reads the old index's offsets in the new tar: only the hashes notice
        with pytest.raises(IntegrityError):
            list(unpinned.read_members(unpinned_located))

        # pinned before the upload but with no manifest read yet: the manifest changed (every upload rewrites
        # it), so ids resolve through the per-shard indexes of c1 — unchanged shards work, shard 07 fails
        report = late.batch_download_to_directory(kept, str(tmp_path / "late"), silent=True)
        assert sorted(report.downloaded) == kept and not report.failed
        with pytest.raises(PoolChangedError, match=c1), late.mock_resource(changed[1], None):
            pass

        # a pool opened now reads the new version, consistently
        fresh = IncrementIDDataPool(REPO, base_level=1, endpoint=url)
        report = fresh.batch_download_to_directory(changed, str(tmp_path / "fresh"), silent=True)
        assert sorted(report.downloaded) == changed and fresh.data_commit == c2
        for rid in changed:
            assert (tmp_path / "fresh" / f"{rid}.bin").read_bytes() == new[rid]

        # a commit id as the revision is used as given (no lookup) and serves what is unchanged since
        old = IncrementIDDataPool(REPO, c1, idx_revision=c1, base_level=1, endpoint=url)
        assert old.data_commit == old.idx_commit == c1 and old.data_store.stats.requests == 0
        with old.mock_resource(kept[0], None) as (folder, _):
            assert Path(folder, f"{kept[0]}.bin").read_bytes() == files[kept[0]]


def test_pinning_reports_refused_tokens_and_skips_servers_without_commits(tmp_path) -> None:
    from headwater.pool import PoolAuthError

    ids = list(range(1, 60))
    pool_dir, files = _pack(str(tmp_path), ids, base_level=1, seed=3)
    config = ServerConfig(str(tmp_path / "c.sqlite"), pools={REPO: pool_dir}, anonymous_read=False)
    with live_server(config, handle=True, public_pools=True) as server:
        key = make_user(server.app.state.catalog, "bob")
        with pytest.raises(PoolAuthError):  # the commit lookup is refused: an auth error, not "not found"
            IncrementIDDataPool(REPO, base_level=1, endpoint=server.url).data_commit  # noqa: B018 - it raises
        pool = IncrementIDDataPool(REPO, base_level=1, endpoint=server.url, hf_token=key)
        info = httpx.get(f"{server.url}/api/datasets/{REPO}", headers=bearer(key, raw=True)).json()
        assert pool.data_commit == info["sha"]
        with pool.mock_resource(7, None) as (folder, _):
            assert Path(folder, "7.bin").read_bytes() == files[7]


# -- hf:// URLs through HfFileSystem ---------------------------------------------------------------------
@dataclass
class Served:
    url: str
    files: dict[int, bytes]
    server: BackgroundServer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = str(tmp_path_factory.mktemp("hfurls"))
    ids = sorted(random.Random(5).sample(range(1, 20_000), 300))
    pool_dir, files = _pack(root, ids, base_level=2, seed=6)
    with live_server(ServerConfig(os.path.join(root, "c.sqlite"), pools={REPO: pool_dir}), handle=True,
                     public_pools=True) as server:
        yield Served(server.url, files, server)


def test_open_pool_on_hf_urls_with_an_endpoint_option(served: Served, tmp_path) -> None:
    from huggingface_hub import HfFileSystem

    options = {"endpoint": served.url, "token": False}  # explicit: never the default huggingface.co
    pool = open_pool(f"hf://datasets/{REPO}@main", layout="increment-id", base_level=2, storage_options=options)
    assert isinstance(pool.data_store.fs, HfFileSystem)
    ids = [*sorted(served.files)[::4], 19_999_999]
    report = pool.batch_download_to_directory(ids, str(tmp_path / "out"), silent=True)
    assert sorted(report.downloaded) == ids[:-1] and report.missing == [19_999_999] and not report.failed
    for rid in ids[:-1]:
        assert (tmp_path / "out" / f"{rid}.bin").read_bytes() == served.files[rid]

    commit = _sha(served.url)
    scan = open_pool(f"hf://datasets/{REPO}@{commit}", storage_options=options)  # scan layout: the served manifest
    rid = ids[5]
    with scan.mock_resource(rid, {"k": 1}) as (folder, info):
        assert Path(folder, f"{rid}.bin").read_bytes() == served.files[rid] and info == {"k": 1}


_HF_ENDPOINT_SCRIPT = textwrap.dedent('''
    import json, sys
    from headwater.pool import open_pool

    repo, out, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    pool = open_pool(f"hf://datasets/{repo}@main", layout="increment-id", base_level=2)  # HF_ENDPOINT only
    report = pool.batch_download_to_directory(ids, out, silent=True)
    print(json.dumps({"fs": type(pool.data_store.fs).__name__, "downloaded": sorted(report.downloaded),
                      "missing": report.missing, "failed": report.failed}))
''')


def test_hf_urls_with_hf_endpoint_in_a_fresh_process(served: Served, tmp_path) -> None:
    env = {**os.environ, **_LOCAL_ONLY, "HF_ENDPOINT": served.url, "HF_HOME": str(tmp_path / "hf"),
           "HEADWATER_CACHE": str(tmp_path / "cache")}
    ids = sorted(served.files)[1::5]
    proc = subprocess.run([sys.executable, "-c", _HF_ENDPOINT_SCRIPT, REPO, str(tmp_path / "a"),
                           json.dumps([*ids, 19_999_999])], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == {"fs": "HfFileSystem", "downloaded": ids, "missing": [19_999_999], "failed": {}}
    for rid in ids:
        assert (tmp_path / "a" / f"{rid}.bin").read_bytes() == served.files[rid]

    # the command line: `headwater download hf://…` (an IncrementIDDataPool over resolve URLs, pinned)
    cli = [sys.executable, "-m", "headwater.cli", "download", f"hf://datasets/{REPO}@main", *map(str, ids[:10]),
           "-o", str(tmp_path / "b"), "--layout", "increment-id", "--base-level", "2", "-q",
           "--report", str(tmp_path / "report.json")]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads((tmp_path / "report.json").read_text())["downloaded"]) == ids[:10]
    for rid in ids[:10]:
        assert (tmp_path / "b" / f"{rid}.bin").read_bytes() == served.files[rid]


def test_names_that_do_not_exist_are_errors_that_name_them(served: Served, tmp_path, file_server) -> None:
    from click.testing import CliRunner

    from headwater.cli import main
    from headwater.pool import PoolNotFoundError, UnpinnedWarning

    with pytest.raises(PoolNotFoundError, match=f"dataset repo 'acme/livez' not found on {served.url}"):
        IncrementIDDataPool("acme/livez", base_level=2, endpoint=served.url).data_commit  # noqa: B018 - the lookup
    with pytest.raises(PoolNotFoundError, match="revision 'nope' not found in dataset repo acme/live"):
        IncrementIDDataPool(REPO, "nope", base_level=2, endpoint=served.url).batch_download_to_directory(
            [1], str(tmp_path / "x"), silent=True)
    env = {"HF_ENDPOINT": served.url, "HF_TOKEN": ""}
    for url, message in (("hf://datasets/acme/livez@main", "dataset repo 'acme/livez' not found"),
                         (f"hf://datasets/{REPO}@nope", "revision 'nope' not found in dataset repo acme/live"),
                         (f"{served.url}/datasets/acme/livez/resolve/main", "dataset repo 'acme/livez' not found")):
        result = CliRunner().invoke(main, ["download", url, "1", "2", "-o", str(tmp_path / "out"), "--layout",
                                           "increment-id", "--base-level", "2", "-q"], env=env)
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {message}"), result.output
        assert "missing" not in result.output
    # a static mirror of resolve/ paths names no commit: the pool still reads, and says it is unpinned
    mirror = file_server(tmp_path)
    with pytest.warns(UnpinnedWarning, match="no Hub API revision route"):
        assert IncrementIDDataPool(REPO, base_level=2, endpoint=mirror.url).data_commit is None
