"""``headwater download --retry-for SECONDS`` (and ``$HEADWATER_RETRY_FOR``): a pool's server that keeps
refusing is retried for that long — more than the store's default six attempts — and a shorter limit ends
with each id reported failed, saying how long it tried. (The dataset commands: tests/client/test_server_restart.)
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from headwater.cli import main

from ..support.httpserver import Fault

SHARD = "images/007.tar"


def download(server: Any, ids: list[int], out: str, *options: str, env: dict[str, str] | None = None
             ) -> tuple[int, dict[str, Any], str]:
    report = out + ".report.json"
    result = CliRunner().invoke(main, ["download", server.url, *map(str, ids), "-o", out, "--layout", "increment-id",
                                       "--base-level", "2", "--report", report, "-q", *options], env=env)
    with open(report) as f:
        return result.exit_code, json.load(f), result.stderr


def test_download_keeps_trying_for_retry_for_seconds(served_pool: Any, tmp_path: Any) -> None:
    server, files = served_pool
    ids = [rid for rid in sorted(files) if rid % 100 == 7][:5]
    # the store's default: six attempts per read, however little they wait (Retry-After: 0)
    server.inject(SHARD, *[Fault.status(503, {"Retry-After": "0"})] * 100)
    code, report, stderr = download(server, ids, str(tmp_path / "default"))
    assert code == 1 and sorted(int(k) for k in report["failed"]) == ids, stderr
    assert all("still failing after 6 attempts" in reason for reason in report["failed"].values())
    server.faults.clear()
    # ten refusals in a row: more than six attempts, well within 30 s
    server.inject(SHARD, *[Fault.status(503, {"Retry-After": "0"})] * 10)
    code, report, stderr = download(server, ids, str(tmp_path / "patient"), "--retry-for", "30")
    assert code == 0 and sorted(report["downloaded"]) == ids, stderr
    for rid in ids:
        assert (tmp_path / "patient" / f"{rid}.bin").read_bytes() == files[rid]
    assert server.requests[SHARD] == 6 + 11  # six attempts by default; ten refusals and the answer with --retry-for
    # the environment variable, and a limit shorter than the refusals: failed, saying how long it tried
    server.inject(SHARD, *[Fault.status(503, {"Retry-After": "1"})] * 100)
    code, report, stderr = download(server, ids, str(tmp_path / "short"), env={"HEADWATER_RETRY_FOR": "0.5"})
    assert code == 1 and sorted(int(k) for k in report["failed"]) == ids
    assert all("(deadline 0.5 s)" in reason for reason in report["failed"].values()), report["failed"]


def test_download_refuses_a_bad_retry_for(served_pool: Any, tmp_path: Any) -> None:
    server, _ = served_pool
    for bad in ("-3", "later"):
        result = CliRunner().invoke(main, ["download", server.url, "7", "-o", str(tmp_path), "--retry-for", bad])
        assert result.exit_code == 2 and "--retry-for" in result.stderr and "Traceback" not in result.stderr


def test_ls_of_a_served_pool_keeps_trying_for_retry_for_seconds(served_pool: Any) -> None:
    server, files = served_pool
    server.inject("headwater-manifest.sqlite", *[Fault.status(503, {"Retry-After": "0"})] * 10)
    result = CliRunner().invoke(main, ["ls", server.url, "--retry-for", "30"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith(f"100 shard(s), {len(files)} files")
    assert server.requests["headwater-manifest.sqlite"] > 10
