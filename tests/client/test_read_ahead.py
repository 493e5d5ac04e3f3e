"""read_ahead: the same blocks in the same order, the source's error at its place, a clean stop on close."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from headwater.catalog import Catalog
from headwater.client import Api
from headwater.client.read_ahead import read_ahead
from headwater.client.transports import EmbeddedTransport, HttpTransport


def test_blocks_arrive_in_order_read_by_another_thread() -> None:
    threads: list[str] = []

    def source() -> Iterator[bytes]:
        for i in range(50):
            threads.append(threading.current_thread().name)
            yield b"%d\n" % i

    assert list(read_ahead(source(), depth=3)) == [b"%d\n" % i for i in range(50)]
    assert set(threads) == {"headwater-read-ahead"}


def test_an_error_of_the_source_is_raised_after_the_blocks_before_it() -> None:
    def source() -> Iterator[bytes]:
        yield b"a\n"
        yield b"b\n"
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for block in read_ahead(source()):
            got.append(block)
    assert got == [b"a\n", b"b\n"]


def test_closing_stops_the_thread_and_closes_the_source_before_returning() -> None:
    closed = threading.Event()
    produced = []

    def source() -> Iterator[bytes]:
        try:
            for i in range(10_000):
                produced.append(i)
                yield b"x\n"
        finally:
            closed.set()

    stream = read_ahead(source(), depth=2)
    assert next(stream) == b"x\n"
    stream.close()  # type: ignore[attr-defined]
    assert closed.is_set()
    assert len(produced) <= 5  # the reader stayed at most `depth` (+ the one in hand) ahead, then stopped
    assert not any(t.name == "headwater-read-ahead" for t in threading.enumerate())


def test_a_local_catalog_reads_ahead_and_a_server_does_not(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    assert EmbeddedTransport(Catalog(path)).read_ahead
    assert not EmbeddedTransport(Catalog("sqlite://")).read_ahead  # one connection shared by every thread
    assert not HttpTransport("http://127.0.0.1:9").read_ahead


def test_an_abandoned_first_pass_read_ahead_leaves_no_cache_entry(tmp_path: object) -> None:
    root = str(tmp_path)
    cat = Catalog(os.path.join(root, "catalog.sqlite"))
    cat.create_database("main")
    data = [b'{"image":{"paths":["%d.jpg"]},"classes":{}}' % i for i in range(3000)]
    cat.publish("main", "acme", "cats", template={}, splits={"train": data})
    api = Api(catalog=cat, cache=os.path.join(root, "cache"))
    dataset = api.get_database_by_name("main").get_dataset("acme/cats:latest")
    stream = dataset.stream_split("train", raw=True)
    assert next(stream) == data[0]
    stream.close()  # type: ignore[attr-defined]
    assert api.cache is not None and api.cache.entries() == []
    assert [d for d in os.listdir(os.path.join(root, "cache")) if d.endswith(".tmp")] == []
    assert list(dataset.stream_split("train", raw=True)) == data  # a whole pass: promoted
    assert len(api.cache.entries()) == 1
