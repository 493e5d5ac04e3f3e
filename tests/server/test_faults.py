"""End to end under network faults and a crashed worker (issue 8): real clients → the fault proxy → a real
``headwater serve --workers 2`` process.

What must hold, whatever the proxy does (resets inside bodies, cut bodies, stalls, slow links, 429/503 with
``Retry-After``) and when a worker is SIGKILLed in the middle of a stream:

* a stream delivers each droplet once, in order — exactly the embedded stream of the same catalog;
* a download ends with every file correct (sha256 of the source) or reported failed, never a wrong or
  partial file in the destination;
* a publish commits once or not at all (never twice, never half), also when the client retries.

Tests of defects other engineers fixed in parallel (damaged shards, retry deadline, publish idempotency) were
``xfail(strict=True)`` until their fixes reached main.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import headwater
from headwater.archive import pack_directory
from headwater.catalog import Catalog
from headwater.client import Api
from headwater.storage import RetryPolicy

from ..support.faultproxy import FaultPlan, FaultProxy, ProxyFault
from ..support.files import make_files
from ..support.servers import ServeProcess, make_user, serve_process

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds server workers in /proc")

REPO = "acme/px"
DAMAGED = "acme/damaged"
DAMAGED_IDS = list(range(1, 31))
IDS = list(range(1, 121))
DROPLETS = 3000
FAST = RetryPolicy(attempts=8, base_delay=0.05, max_delay=0.5)


@dataclass
class World:
    root: str
    catalog: str
    pool: str
    files: dict[int, bytes]
    key: str
    uid: str
    server: ServeProcess


def _droplet(i: int) -> bytes:
    return (b'{"kind":"ImageAnnotation","image":{"paths":["https://img.example/%d.jpg"],"uid":"d%d"},'
            b'"classes":{"cat":{"instances":[{"boundingBox":{"rectangle":[[0.1,0.1],[0.5,0.6]]}}]}},"uid":"u%d"}'
            % (i, i, i))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = str(tmp_path_factory.mktemp("faults"))
    files = make_files(os.path.join(root, "src"), IDS, seed=11, lo=2000, hi=30_000)
    pool = os.path.join(root, "pool")
    pack_directory(os.path.join(root, "src"), pool, layout="increment-id", base_level=1, silent=True)
    catalog = os.path.join(root, "catalog.sqlite")
    with Catalog(catalog) as cat:
        key = make_user(cat, "alice", permission="write")
        cat.create_database("main", owner="alice")
        cat.change_pool_access(REPO, owner="alice", public=True)
        template = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {"instances": {"boundingBox": True}}}}
        uid = cat.publish("main", "acme", "cats", template=template,
                          splits={"train": [_droplet(i) for i in range(DROPLETS)]}).uid
    damaged = os.path.join(root, "damaged")
    make_files(os.path.join(root, "src-damaged"), DAMAGED_IDS, seed=12, lo=2000, hi=5000)
    pack_directory(os.path.join(root, "src-damaged"), damaged, layout="increment-id", base_level=1, silent=True)
    with Catalog(catalog) as cat:
        cat.change_pool_access(DAMAGED, owner="alice", public=True)
    with serve_process(catalog, "--pool", f"{REPO}={pool}", "--pool", f"{DAMAGED}={damaged}",
                       "--workers", "2") as server:
        yield World(root, catalog, pool, files, key, uid, server)
        assert "Traceback" not in server.stderr(), server.stderr()[-3000:]


@pytest.fixture
def proxy(world: World) -> Iterator[FaultProxy]:
    with FaultProxy(world.server.port) as p:
        yield p


def remote(world: World, proxy: FaultProxy, **options: Any) -> Api:
    return Api(url=proxy.url, api_key=world.key, cache=False, retry=options.pop("retry", FAST), **options)


def embedded_stream(world: World, **options: Any) -> list[bytes]:
    dataset = Api(catalog=world.catalog, cache=False).get_database_by_name("main").get_dataset("acme/cats:latest")
    return list(dataset.stream_split("train", raw=True, **options))


def remote_stream(api: Api, **options: Any) -> list[bytes]:
    dataset = api.get_database_by_name("main").get_dataset("acme/cats:latest")
    return list(dataset.stream_split("train", raw=True, **options))


# -- streams --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["reset", "truncate", "status"])
def test_a_stream_cut_or_refused_resumes_exactly(world: World, proxy: FaultProxy, kind: str) -> None:
    """The stream's connection is cut inside the body (or refused with 503 + Retry-After): the client resumes
    after the last whole droplet, and the pass equals the embedded one."""
    for cut in (0, 1, 5000, 150_000):
        proxy.inject(kind, path="/stream", cut_after=cut, retry_after=0)
    api = remote(world, proxy)
    assert remote_stream(api) == embedded_stream(world)
    assert proxy.faults[kind] == 4 and proxy.pending() == 0


def test_streams_survive_a_mix_of_faults_on_a_third_of_the_connections(world: World, proxy: FaultProxy) -> None:
    proxy.plan = FaultPlan.uniform(0.35, seed=3, cut_after=(0, 120_000), stall_seconds=0.2, slow_chunk=16_384,
                                   slow_delay=0.001, retry_after=0)
    api = remote(world, proxy, retry=RetryPolicy(attempts=12, base_delay=0.02, max_delay=0.2))
    # how many requests a pass makes depends on timing (read-ahead, keep-alive), so the number of faults a
    # fixed list of passes meets varies: the passes go round until at least 3 faults were survived
    passes = [(0, 1, None), (1, 3, None), (2, 4, 7), (0, 2, 99)]
    for _round in range(3):
        for chunk, nchunks, seed in passes:
            options = {"chunk": chunk, "nchunks": nchunks, "shuffle_seed": seed}
            got = remote_stream(api, **options)
            assert got == embedded_stream(world, **options), options
            assert len(set(got)) == len(got)
        if sum(proxy.faults.values()) >= 3:
            break
    assert sum(proxy.faults.values()) >= 3, proxy.faults


def worker_with_connection_from(server: ServeProcess, client_port: int) -> int | None:
    """The worker holding the server end of the TCP connection whose other end is ``127.0.0.1:client_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if int(remote.rsplit(":", 1)[1], 16) == client_port and \
                        int(local.rsplit(":", 1)[1], 16) == server.port:
                    inodes.add(fields[9])
    for pid in server.workers():
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return pid
    return None


def test_a_worker_killed_mid_stream_is_survived_exactly(world: World, proxy: FaultProxy) -> None:
    """SIGKILL of the worker serving a stream, after part of it arrived: the client resumes on the other
    worker, the pass equals the embedded one, and the server replaces the dead worker."""
    before = world.server.workers()
    assert len(before) == 2, before
    proxy.inject("slow", path="/stream", slow_chunk=4096, slow_delay=0.01)  # keep the stream in flight
    api = remote(world, proxy)
    dataset = api.get_database_by_name("main").get_dataset("acme/cats:latest")
    stream = dataset.stream_split("train", raw=True)
    got = [next(stream) for _ in range(200)]
    victim = None
    deadline = time.monotonic() + 10
    while victim is None and time.monotonic() < deadline:
        victim = next((w for port in proxy.upstream_ports() if (w := worker_with_connection_from(world.server, port))),
                      None)
    assert victim is not None, "no worker holds the stream's connection"
    os.kill(victim, signal.SIGKILL)
    got += list(stream)
    assert got == embedded_stream(world)
    deadline = time.monotonic() + 20
    while (len(world.server.workers()) < 2 or victim in world.server.workers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert victim not in world.server.workers() and len(world.server.workers()) == 2
    assert httpx.get(world.server.url + "/healthz").status_code == 200


# -- downloads ------------------------------------------------------------------------------------------------
def download(world: World, proxy: FaultProxy, out: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    """``headwater download`` (a real CLI process) of every id through the proxy; (exit code, report, stderr)."""
    report = out + ".report.json"
    tree = os.path.dirname(os.path.dirname(os.path.abspath(headwater.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "download", f"{proxy.url}/datasets/{REPO}/resolve/main",
         f"{IDS[0]}-{IDS[-1]}", "-o", out, "--layout", "increment-id", "--base-level", "1", "--report", report,
         "-q", *extra],
        capture_output=True, text=True, timeout=300, env=env)
    with open(report) as f:
        return proc.returncode, json.load(f), proc.stderr


def assert_every_file_correct_or_reported(world: World, out: str, report: dict[str, Any]) -> None:
    failed = {int(k) for k in report["failed"]}
    delivered = set(report["downloaded"]) | set(report["skipped"])
    assert delivered | failed == set(IDS) and not delivered & failed, report
    names = sorted(os.listdir(out))
    expected = {f"{rid}.bin" for rid in delivered}
    data_files = [n for n in names if not n.endswith("_metainfo.json")]
    assert set(data_files) == expected, set(data_files) ^ expected  # nothing partial or stray beside them
    for rid in delivered:
        with open(os.path.join(out, f"{rid}.bin"), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(world.files[rid]).hexdigest(), rid


def test_a_download_through_faults_ends_with_every_file_correct(world: World, proxy: FaultProxy,
                                                                tmp_path) -> None:
    for kind, cut in [("reset", 0), ("truncate", 100), ("reset", 5000), ("truncate", 20_000), ("stall", 0),
                      ("slow", 0)]:
        proxy.inject(kind, path=".tar", cut_after=cut, stall_seconds=0.2, slow_chunk=8192, slow_delay=0.001)
    proxy.plan = FaultPlan({"reset": 0.1, "truncate": 0.1},
                           ProxyFault("reset", cut_after=(0, 60_000)), seed=5)
    out = str(tmp_path / "out")
    code, report, stderr = download(world, proxy, out, "--max-workers", "4")
    assert_every_file_correct_or_reported(world, out, report)
    assert sum(proxy.faults.values()) >= 6 and proxy.pending() == 0, proxy.faults
    assert code == (1 if report["failed"] else 0), stderr
    assert "Traceback" not in stderr, stderr
    # a re-run without faults completes what failed and re-downloads nothing that is there
    proxy.plan = FaultPlan()
    code, again, stderr = download(world, proxy, out)
    assert code == 0, stderr
    assert_every_file_correct_or_reported(world, out, again)
    assert not again["failed"] and set(again["skipped"]) == set(report["downloaded"])


def test_a_download_refused_with_retry_after_is_retried_not_failed(world: World, proxy: FaultProxy,
                                                                  tmp_path) -> None:
    for status in (429, 503, 429):
        proxy.inject("status", status=status, retry_after=1, path=".tar")
    out = str(tmp_path / "out")
    code, report, stderr = download(world, proxy, out)
    assert code == 0 and not report["failed"], (report["failed"], stderr)
    assert_every_file_correct_or_reported(world, out, report)


def test_a_shard_truncated_inside_one_member_fails_only_what_is_damaged(world: World, proxy: FaultProxy,
                                                                          tmp_path) -> None:
    """Shard ``images/03.tar`` of the damaged pool (members 3, 13, 23) is cut in the middle of member 13: 3
    arrives whole and is delivered, 13 and 23 are reported failed, no file of theirs is written."""
    tar = os.path.join(world.root, "damaged", "images", "03.tar")
    with open(os.path.splitext(tar)[0] + ".json", "rb") as f:
        entry = json.load(f)["files"]["13.bin"]
    with open(tar, "r+b") as f:
        f.truncate(entry["offset"] + entry["size"] // 2)
    out = str(tmp_path / "out")
    tree = os.path.dirname(os.path.dirname(os.path.abspath(headwater.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "download", f"{proxy.url}/datasets/{DAMAGED}/resolve/main",
         "1-30", "-o", out, "--layout", "increment-id", "--base-level", "1", "--report", out + ".json", "-q"],
        capture_output=True, text=True, timeout=300, env=env)
    with open(out + ".json") as f:
        report = json.load(f)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert sorted(int(k) for k in report["failed"]) == [13, 23], report["failed"]
    assert not {"13.bin", "23.bin"} & set(os.listdir(out))


# -- publishes ------------------------------------------------------------------------------------------------
def publish_items(n: int, tag: str) -> list[tuple[str, dict[str, Any]]]:
    return [("train", json.loads(_droplet(i).replace(b'"u%d"' % i, b'"%s-%d"' % (tag.encode(), i))))
            for i in range(n)]


def committed(world: World, name: str) -> list[dict[str, int]]:
    with Catalog(world.catalog) as cat:
        try:
            return [d.splits for d in cat.datasets("main", "acme", name)]
        except Exception:  # noqa: BLE001 - no repository yet: nothing committed
            return []


def test_a_publish_refused_with_503_or_429_is_retried_and_commits_once(world: World, proxy: FaultProxy) -> None:
    proxy.inject("status", status=503, retry_after=0, path="/publish")
    proxy.inject("status", status=429, retry_after=0, path="/publish")
    api = remote(world, proxy)
    api.transport.publish("main", "acme", "refused", publish_items(500, "r"), tags=["latest"])  # type: ignore[attr-defined]
    assert committed(world, "refused") == [{"train": 500}]
    assert proxy.faults["status"] == 2


@pytest.mark.parametrize(("kinds", "name"), [(["reset"], "lost-reset"), (["truncate"], "lost-truncate"),
                                             (["reset", "truncate"], "lost-twice")])
def test_a_publish_whose_answer_is_lost_is_retried_and_commits_exactly_once(world: World, proxy: FaultProxy,
                                                                            kinds: list[str], name: str) -> None:
    """The connection dies after the server got the whole body (and committed): the client sends the publish
    again, the server recognises it, and the catalog holds the whole dataset once."""
    for kind in kinds:
        proxy.inject(kind, path="/publish", cut_after=0)
    api = remote(world, proxy)
    api.transport.publish("main", "acme", name, publish_items(300, name),  # type: ignore[attr-defined]
                          tags=["latest"])
    assert committed(world, name) == [{"train": 300}]
    assert sum(proxy.cuts.values()) == len(kinds) and proxy.pending() == 0


@pytest.mark.parametrize(("cuts", "name"), [([20_000], "cut-upload"), ([600, 60_000], "cut-upload-twice")])
def test_a_publish_cut_while_uploading_is_retried_and_commits_exactly_once(world: World, proxy: FaultProxy,
                                                                          cuts: list[int], name: str) -> None:
    """The client's connection dies in the middle of the body (the server holds part of the droplets): nothing
    half is committed, the client sends the publish again, and the catalog holds the whole dataset once."""
    for cut in cuts:
        proxy.inject("upload", path="/publish", cut_after=cut)
    api = remote(world, proxy)
    api.transport.publish("main", "acme", name, publish_items(800, name),  # type: ignore[attr-defined]
                          tags=["latest"])
    assert committed(world, name) == [{"train": 800}]
    assert proxy.cuts["upload"] == len(cuts) and proxy.pending() == 0
    # the server saw a client vanish in the middle of a body: an answer nobody reads, not a 500 with a traceback
    assert "Traceback" not in world.server.stderr() and "ClientDisconnect" not in world.server.stderr()


# -- Retry-After and long outages (client-faults' lane) --------------------------------------------------------
def gaps_after_refusals(proxy: FaultProxy, path: str) -> list[float]:
    """Seconds between each refused request for ``path`` and the next request with the same request line
    (its retry — not another shard that another worker thread fetched meanwhile)."""
    out = []
    for i, (t, target, kind) in enumerate(proxy.log):
        if kind == "status" and path in target:
            retry = next((later for later, again, _ in proxy.log[i + 1 :] if again == target), None)
            if retry is not None:
                out.append(retry - t)
    return out


@pytest.mark.parametrize("status", [429, 503])
def test_a_stream_refused_with_retry_after_waits_that_long(world: World, proxy: FaultProxy, status: int) -> None:
    proxy.inject("status", status=status, retry_after=2, path="/stream")
    assert remote_stream(Api(url=proxy.url, api_key=world.key, cache=False)) == embedded_stream(world)
    assert gaps_after_refusals(proxy, "/stream") and min(gaps_after_refusals(proxy, "/stream")) >= 2


def test_a_download_refused_with_retry_after_waits_that_long(world: World, proxy: FaultProxy, tmp_path) -> None:
    proxy.inject("status", status=503, retry_after=2, path=".tar")
    out = str(tmp_path / "out")
    code, report, stderr = download(world, proxy, out)
    assert code == 0, stderr
    assert_every_file_correct_or_reported(world, out, report)
    gaps = gaps_after_refusals(proxy, ".tar")
    assert gaps and min(gaps) >= 2, gaps


def test_a_stream_survives_refusals_for_longer_than_six_attempts(world: World, proxy: FaultProxy) -> None:
    """Seven 503s in a row with ``Retry-After: 1`` (~7 s of a restarting server): the default client keeps
    trying (the issue asks for a deadline that survives a 60 s rolling restart) and the pass is exact."""
    for _ in range(7):
        proxy.inject("status", status=503, retry_after=1, path="/stream")
    api = Api(url=proxy.url, api_key=world.key, cache=False)
    assert remote_stream(api) == embedded_stream(world)
