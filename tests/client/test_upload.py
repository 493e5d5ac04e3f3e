"""``headwater upload``: a local pool into a pool the server serves, over real HTTP; resumable by content."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from click.testing import CliRunner

from headwater.archive import pack_directory
from headwater.cli import main
from headwater.client import HttpTransport, local_shards, upload_pool
from headwater.client.errors import RemoteAuthError, RemoteNotFoundError
from headwater.pool import IncrementIDDataPool
from headwater.server.app import ServerConfig

from ..support.files import make_files
from ..support.servers import live_server, make_user


def _upload(url: str, key: str, pool: str, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["upload", pool, "acme/images", "--server", url, "--api-key", key, "-q",
                                       *extra])
    return result.exit_code, result.output


def test_upload_a_local_pool_then_resume_and_read_it_back(tmp_path) -> None:
    root = str(tmp_path)
    ids = sorted(random.Random(4).sample(range(1, 5_000), 300))
    files = make_files(os.path.join(root, "src"), ids, seed=8)
    local = os.path.join(root, "local")
    pack_directory(os.path.join(root, "src"), local, layout="increment-id", base_level=1, silent=True)
    shards = local_shards(local)
    assert len(shards) == 10 and all(s.path.startswith("images/") for s in shards)
    served = os.path.join(root, "served")
    os.makedirs(served)
    catalog = os.path.join(root, "catalog.sqlite")
    writer, reader = make_user(catalog, "alice", permission="write"), make_user(catalog, "bob")
    config = ServerConfig(catalog, pools={"acme/images": served})
    with live_server(config, public_pools=True, pool_owner="alice") as url:
        code, out = _upload(url, writer, local)
        assert code == 0, out
        report = json.loads(out)
        assert report["uploaded"] == [s.path for s in shards] and report["skipped"] == []
        assert report["bytes_sent"] == sum(s.size for s in shards) and report["commit"]
        for shard in shards:  # the bytes arrived, and the server wrote each shard's index itself
            with open(os.path.join(served, shard.path), "rb") as a, open(shard.full_path, "rb") as b:
                assert a.read() == b.read()
            assert os.path.exists(os.path.join(served, shard.path[:-4] + ".json"))

        # the served pool answers by id with the right bytes (through the server's Hub routes)
        got = IncrementIDDataPool("acme/images", base_level=1, endpoint=url).batch_download_to_directory(
            ids[::7], os.path.join(root, "out"), silent=True)
        assert sorted(got.downloaded) == ids[::7]
        for rid in ids[::7]:
            assert Path(root, "out", f"{rid}.bin").read_bytes() == files[rid]

        # run again: everything is there with the same sha256, nothing is sent
        code, out = _upload(url, writer, local)
        again = json.loads(out)
        assert code == 0 and again["uploaded"] == [] and again["bytes_sent"] == 0
        assert again["skipped"] == report["uploaded"] and again["commit"] == report["commit"]

        # one shard changes locally: only that one travels
        changed = shards[3]
        with open(changed.full_path, "ab") as f:  # same members plus trailing zero blocks: other bytes
            f.write(b"\0" * 10240)
        code, out = _upload(url, writer, local)
        assert code != 0 and "1 shard(s) already exist" in out and changed.path in out, out  # not silently
        code, out = _upload(url, writer, local, "--replace")
        third = json.loads(out)
        assert code == 0 and third["uploaded"] == [changed.path] and len(third["skipped"]) == 9
        assert third["commit"] != report["commit"]

        # a read key may not upload; an unknown pool is a clear 404; the CLI needs --server
        code, out = _upload(url, reader, local, "--prefix", "other")
        assert code != 0 and "write" in out.lower(), out
        with HttpTransport(url, writer) as t:
            try:
                upload_pool(t, "acme/nope", local)
            except RemoteNotFoundError as err:
                assert "acme/nope" in str(err)
            else:
                raise AssertionError("an unknown pool was accepted")
        with HttpTransport(url, reader) as t:
            try:
                upload_pool(t, "acme/images", local, prefix="other")
            except RemoteAuthError:
                pass
            else:
                raise AssertionError("a read key uploaded")
    result = CliRunner().invoke(main, ["upload", local, "acme/images"], env={"HEADWATER_SERVER": ""})
    assert result.exit_code != 0 and "--server" in result.output

