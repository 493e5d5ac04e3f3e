"""Interop: the real datatap 0.3.0 client (from PyPI, in its own venv ``.venv-peers/datatap``) against a
live headwater server on 127.0.0.1 — user, databases, repositories, a dataset by tag, every chunk of a
split for several ``nchunks`` (the union is the split, in order), and errors surfacing as datatap's own."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

from headwater.server.app import ServerConfig
from headwater.server.rate_limits import DEFAULT_RATE_LIMIT

from ..server.test_datatap import build
from ..support.servers import live_server

# Runs inside the datatap venv: only datatap's public API, as a user would call it.
_SCRIPT = textwrap.dedent('''
    import json, sys
    from datatap import Api

    url, key = sys.argv[1], sys.argv[2]
    api = Api(key, uri=url)
    out = {}
    user = api.get_current_user()
    out["user"] = [user.uid, user.username, user.email, user.default_database]
    out["default"] = api.get_default_database().name
    out["databases"] = [[d.uid, d.name] for d in api.get_database_list()]
    db = api.get_database_by_name("alices")
    out["by_uid"] = api.get_database_by_uid(db.uid).name
    out["repositories"] = [[r.namespace, r.name, sorted((t.tag, t.dataset, sorted((s.split, s.annotation_count)
                            for s in t.splits)) for t in r.tags)] for r in db.get_repository_list()]
    repo = db.get_repository("acme/cats")
    out["tags"] = sorted(t.tag for t in repo.tags)
    ds = db.get_dataset("acme/cats:stable")
    out["dataset"] = [ds.uid, ds.database, ds.repository.namespace, ds.repository.name, ds.splits,
                      sorted(ds.template.classes)]
    out["chunks"] = {}
    for n in (1, 3):
        out["chunks"][n] = [[a.to_json() | {"uid": a.uid} for a in ds.stream_split("train", k, n)] for k in range(n)]
    out["validation"] = [a.uid for a in ds.stream_split("validation")]
    try:
        api.get_database_by_name("alices").get_dataset("acme/cats:no-such-tag")
    except Exception as exc:  # datatap raises a bare Exception carrying the server's "error"
        out["error"] = str(exc)
    print(json.dumps(out))
''')


def test_datatap_client_reads_everything(datatap_python: str, tmp_path) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    cat, keys, db, v1, v2, _ = build(path, train=100)
    with live_server(ServerConfig(path, rate_limit=DEFAULT_RATE_LIMIT)) as url:  # serve's default beyond loopback
        proc = subprocess.run([datatap_python, "-c", _SCRIPT, url, keys["alice"]], capture_output=True, text=True,
                              timeout=120, cwd=str(tmp_path), env={**os.environ, "DATATAP_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)

    alice = cat.user("alice")
    assert out["user"] == [alice.uid, "alice", "alice@example.org", db["alices"]]
    assert out["default"] == "alices"
    assert out["databases"] == [[db[n], n] for n in ("alices", "open", "shared")]
    assert out["by_uid"] == "alices"
    assert out["repositories"] == [
        ["acme", "cats", [["latest", v2, [["empty", 0], ["train", 5]]],
                          ["stable", v1, [["train", 100], ["validation", 7]]]]],
        ["acme", "dogs", [["latest", cat.dataset("alices", "acme", "dogs", "latest").uid, [["train", 1]]]]],
    ]
    assert out["tags"] == ["latest", "stable"]
    assert out["dataset"] == [v1, db["alices"], "acme", "cats", ["train", "validation"], ["cat"]]

    split = [json.loads(row) for row in cat.read_range(v1, "train")]
    for n, chunks in out["chunks"].items():
        assert len(chunks) == int(n)
        union = [d for chunk in chunks for d in chunk]
        assert [d["uid"] for d in union] == [d["uid"] for d in split], n  # disjoint, covering, in order
        for theirs, ours in zip(union, split, strict=True):  # and each droplet survives datatap's round trip
            assert theirs["image"]["paths"] == ours["image"]["paths"]
            assert (theirs["classes"]["cat"]["instances"][0]["boundingBox"]["rectangle"]
                    == ours["classes"]["cat"]["instances"][0]["boundingBox"]["rectangle"])
    sizes = [len(c) for c in out["chunks"]["3"]]
    assert sizes == [33, 33, 34]
    assert out["validation"] == [f"val-{i}" for i in range(7)]
    assert "no tag or dataset 'no-such-tag'" in out["error"]
    cat.close()
