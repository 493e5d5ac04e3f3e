"""datatap's endpoint layer: a script written for ``datatap.api.endpoints.ApiEndpoints`` runs against headwater
with only its import line changed — against a live server and embedded — and returns, key for key, what the
real datatap 0.3.0 endpoint layer (in its own venv) returns from the same server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from headwater.catalog import ChunkError
from headwater.client import Api, ApiEndpoints, StreamCache, StreamKey
from headwater.server.app import ServerConfig

from ..server.test_datatap import build
from ..support.servers import live_server

DATATAP_IMPORT = "from datatap.api.endpoints import ApiEndpoints"
HEADWATER_IMPORT = "from headwater.client import ApiEndpoints"

# Written for datatap: configured through datatap's environment, as its users do.
SCRIPT = textwrap.dedent(f'''
    import json
    {DATATAP_IMPORT}

    endpoints = ApiEndpoints()
    out = {{"user": endpoints.user.current(), "databases": endpoints.database.list()}}
    db = endpoints.database.query_by_name("alices")[0]
    out["by_name"] = db
    out["by_uid"] = endpoints.database.query_by_uid(db["uid"])
    out["repositories"] = endpoints.repository.list(db["uid"])
    out["repository"] = endpoints.repository.query(db["uid"], "acme", "cats")
    dataset = endpoints.dataset.query(db["uid"], "acme", "cats", "stable")
    out["dataset"] = dataset
    out["chunks"] = {{}}
    for n in (1, 3):
        out["chunks"][n] = [list(endpoints.dataset.stream_split(
            database_uid=db["uid"], namespace="acme", name="cats", uid=dataset["uid"], split="train", chunk=k,
            nchunks=n)) for k in range(n)]
    out["again"] = list(endpoints.dataset.stream_split(
        database_uid=db["uid"], namespace="acme", name="cats", uid=dataset["uid"], split="train", chunk=1, nchunks=3))
    out["errors"] = []
    for chunk, nchunks in ((3, 3), (-1, 3), (0, 0)):
        try:
            endpoints.dataset.stream_split(database_uid=db["uid"], namespace="acme", name="cats", uid=dataset["uid"],
                                           split="train", chunk=chunk, nchunks=nchunks)
        except Exception as exc:
            out["errors"].append(str(exc))
    print(json.dumps(out))
''')


def _run(python: str, script: str, env: dict[str, str], cwd: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "DATATAP_"))}
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=180, cwd=cwd,
                          env={**clean, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_datatap_endpoint_script_runs_unchanged_but_its_import(datatap_python: str, tmp_path) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    cat, keys, db, v1, _v2, _ = build(path, train=100)
    ours = SCRIPT.replace(DATATAP_IMPORT, HEADWATER_IMPORT)
    assert ours.count("\n") == SCRIPT.count("\n") and ours != SCRIPT  # one line changed, nothing else
    with live_server(ServerConfig(path)) as url:
        env = {"DATATAP_API_KEY": keys["alice"], "DATATAP_BASE_URI": url, "HEADWATER_CACHE": str(tmp_path / "c")}
        theirs = _run(datatap_python, SCRIPT, env, str(tmp_path))
        remote = _run(sys.executable, ours, env, str(tmp_path))
    embedded = _run(sys.executable, ours, {"HEADWATER_CATALOG": path, "HEADWATER_CACHE": str(tmp_path / "e")},
                    str(tmp_path))

    assert remote == theirs  # the differential: every dict equal, key for key
    assert theirs["dataset"]["uid"] == v1 and theirs["by_name"]["uid"] == db["alices"]
    union = [d for chunk in theirs["chunks"]["3"] for d in chunk]
    assert union == theirs["chunks"]["1"][0] and len(union) == 100 and theirs["again"] == theirs["chunks"]["3"][1]
    assert [len(c) for c in theirs["chunks"]["3"]] == [33, 33, 34]
    assert theirs["errors"] == ["Invalid chunk specification. 3 must be in the range [0, 3)",
                                "Invalid chunk specification. -1 must be in the range [0, 3)",
                                "Invalid chunk specification. 0 must be in the range [0, 0)"]
    # embedded: the same answers from the catalog itself, but the user (the local account, not a server's)
    assert embedded.pop("user")["uid"] == "local"
    theirs.pop("user")
    assert embedded == theirs
    cat.close()


def test_stream_split_is_cached_and_checks_its_chunk_at_call_time(tmp_path) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    cat, keys, db, v1, _v2, _ = build(path, train=30)
    cache = StreamCache(str(tmp_path / "cache"))
    with live_server(ServerConfig(path)) as url:
        api = Api(url=url, api_key=keys["alice"], cache=cache)
        endpoints = api.endpoints
        args = {"database_uid": db["alices"], "namespace": "acme", "name": "cats", "uid": v1, "split": "train"}
        for chunk, nchunks in ((2, 2), (-1, 2), (0, 0)):
            with pytest.raises(ChunkError, match="Invalid chunk specification") as info:
                endpoints.dataset.stream_split(**args, chunk=chunk, nchunks=nchunks)  # no iteration needed
            assert isinstance(info.value, ValueError)
        first = list(endpoints.dataset.stream_split(**args, chunk=1, nchunks=2))
        assert cache.lookup(StreamKey(v1, "train", 1, 2)) is not None  # promoted: the pass completed
        sent = api.transport.requests  # type: ignore[attr-defined]
        assert list(endpoints.dataset.stream_split(**args, chunk=1, nchunks=2)) == first
        assert api.transport.requests == sent  # type: ignore[attr-defined]  # replayed, not streamed again
        assert first == [json.loads(line) for line in cat.read_range(v1, "train", 15, 30)]
    # an abandoned pass leaves no entry (datatap's truncated the next one)
    partial = ApiEndpoints(catalog=path, cache=cache).dataset.stream_split(**args, chunk=0, nchunks=2)
    next(partial)
    partial.close()
    assert cache.lookup(StreamKey(v1, "train", 0, 2)) is None
    cat.close()
