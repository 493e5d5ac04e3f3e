"""Patience is a deadline: a real ``headwater serve`` process killed in the middle of a stream and started
again on the same port after an outage longer than the old budget (six attempts from 0.25 s, ~8 s).

The stream must complete with every droplet exactly once and in order; with ``retry_for`` shorter than the
outage it must fail with an error saying how long it tried. The CLI's ``--retry-for`` and
``$HEADWATER_RETRY_FOR`` reach the same policy, and bad values are refused with a message.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import msgspec
import pytest
from click.testing import CliRunner

from headwater.catalog import Catalog
from headwater.cli import main
from headwater.client import Api, ClientError, HttpTransport, RemoteUnavailableError
from headwater.storage import RetryPolicy
from headwater.storage.retry import UNLIMITED

from ..support.ports import free_port
from ..support.servers import ServeProcess, make_user, serve_process

TEMPLATE = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {"instances": {"boundingBox": True}}}}
N = 20_000  # ~10 MB of NDJSON: more than the socket buffers hold, so the kill cuts the body for real


def droplet(i: int) -> bytes:
    return msgspec.json.encode({"kind": "ImageAnnotation", "uid": f"d-{i}", "image": {"paths": [f"{i}.jpg"]},
                                "classes": {"cat": {"instances": [
                                    {"boundingBox": {"rectangle": [[0.1, 0.1], [0.5, 0.5]]}}]}},
                                "metadata": {"pad": "x" * 400}})


@dataclass
class World:
    path: str
    key: str
    want: list[bytes]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    path = str(tmp_path_factory.mktemp("restart") / "catalog.sqlite")
    with Catalog(path) as cat:
        cat.create_database("main")
        cat.publish("main", "acme", "big", template=TEMPLATE, splits={"train": [droplet(i) for i in range(N)]})
        key = make_user(cat, "alice")
        cat.choose_default_database("alice", "main")
    want = list(Api(catalog=path, default_database="main", cache=False).get_default_database()
                .get_dataset("acme/big:latest").stream_split("train", raw=True))
    assert len(want) == N
    return World(path, key, want)


@contextmanager
def restarted_after(path: str, port: int, seconds: float) -> Iterator[threading.Event]:
    """From now on, start the server again on ``port`` after ``seconds`` (in a thread); the event is set once
    it answers. It is stopped when the block ends."""
    up = threading.Event()
    done = threading.Event()
    failed: list[Exception] = []

    def run() -> None:
        if done.wait(seconds):
            return
        try:
            with serve_process(path, port=port):
                up.set()
                done.wait(120)
        except Exception as err:  # noqa: BLE001 - handed to the test thread, raised there
            failed.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield up
    finally:
        done.set()
        thread.join(60)
        if failed:
            raise failed[0]


def kill(server: ServeProcess) -> float:
    server.proc.kill()
    server.proc.wait(30)
    return time.monotonic()


def test_a_stream_survives_a_server_restart_longer_than_the_old_budget(world: World) -> None:
    """Default policy (60 s): a ~10 s outage in the middle of the stream; every droplet once, in order."""
    port = free_port()
    with serve_process(world.path, port=port) as first:
        api = Api(url=first.url, api_key=world.key, cache=False)
        assert api.transport.retry.deadline == 60.0  # type: ignore[attr-defined]
        stream = api.get_default_database().get_dataset("acme/big:latest").stream_split("train", raw=True)
        got = [next(stream) for _ in range(50)]
        killed = kill(first)
        with restarted_after(world.path, port, 9.0) as up:
            got.extend(stream)
            assert up.is_set()
            waited = time.monotonic() - killed
    assert len(got) == N and got == world.want  # each droplet once, in order
    assert api.transport.retried >= 1  # type: ignore[attr-defined]
    assert waited > 9.0  # the stream did wait out the outage (and the old budget was ~8 s at most)


def test_the_deadline_counts_not_the_attempts(world: World) -> None:
    """Retrying every few ms under a deadline: many more attempts than the old six, and still exact."""
    port = free_port()
    with serve_process(world.path, port=port) as first:
        transport = HttpTransport(first.url, world.key, retry=RetryPolicy(attempts=UNLIMITED, base_delay=0.01,
                                                                         max_delay=0.02, deadline=60.0))
        stream = Api(transport=transport, cache=False).get_default_database().get_dataset(
            "acme/big:latest").stream_split("train", raw=True)
        got = [next(stream) for _ in range(50)]
        kill(first)
        with restarted_after(world.path, port, 0.5):
            got.extend(stream)
    assert got == world.want
    assert transport.retried > 6


def test_a_deadline_shorter_than_the_outage_fails_saying_how_long_it_tried(world: World,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_RETRY_FOR", "1.5")
    with serve_process(world.path) as server:
        api = Api(url=server.url, api_key=world.key, cache=False)
        stream = api.get_default_database().get_dataset("acme/big:latest").stream_split("train", raw=True)
        got = [next(stream) for _ in range(50)]
        kill(server)
        with pytest.raises(RemoteUnavailableError, match=r"deadline 1\.5 s") as info:
            got.extend(stream)
    message = str(info.value)
    tried = float(re.search(r"over (\d+\.\d) s", message).group(1))  # type: ignore[union-attr]
    assert tried >= 1.4 and "droplets received" in message
    assert 50 <= len(got) < N and got == world.want[:len(got)]


def test_the_cli_retries_for_retry_for_and_refuses_bad_values(world: World) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # nothing listens there
    runner = CliRunner()
    result = runner.invoke(main, ["stream", "main/acme/big", "train", "--server", url, "--api-key", world.key,
                                  "--retry-for", "0.5"])
    assert result.exit_code not in (0, 2)  # a failure to reach the server, not a usage error
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "deadline 0.5 s" in result.stderr
    # the environment variable, and the server coming back within it
    with restarted_after(world.path, port, 0.3):
        result = runner.invoke(main, ["stream", "main/acme/big", "train", "--server", url, "--api-key", world.key,
                                      "--limit", "3"], env={"HEADWATER_RETRY_FOR": "60"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.encode().splitlines() == world.want[:3]
    for bad in ("-1", "soon", "nan", "inf"):
        result = runner.invoke(main, ["stream", "main/acme/big", "train", "--server", url, "--retry-for", bad])
        assert result.exit_code == 2 and "--retry-for" in result.stderr, (bad, result.stderr)
        result = runner.invoke(main, ["tag", "main/acme/big", "--server", url], env={"HEADWATER_RETRY_FOR": bad})
        assert result.exit_code == 2 and "--retry-for" in result.stderr, (bad, result.stderr)


@pytest.mark.parametrize("bad", [-1, "soon", float("nan"), float("inf"), True])
def test_bad_retry_for_is_refused_by_the_api_and_in_the_environment(bad: object,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClientError, match="retry_for must be a number of seconds >= 0"):
        Api(url="http://127.0.0.1:9", retry_for=bad)  # type: ignore[arg-type]
    monkeypatch.setenv("HEADWATER_RETRY_FOR", str(bad))
    with pytest.raises(ClientError, match=r"\$HEADWATER_RETRY_FOR must be a number of seconds >= 0"):
        Api(url="http://127.0.0.1:9")
    monkeypatch.setenv("HEADWATER_RETRY_FOR", " 2.5 ")
    assert Api(url="http://127.0.0.1:9").transport.retry.deadline == 2.5  # type: ignore[attr-defined]
    assert Api(url="http://127.0.0.1:9", retry_for=0).transport.retry.deadline == 0  # type: ignore[attr-defined]
