"""The ``headwater`` command end to end (pack → index → verify → ls → download → extract)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from headwater.cli import main, parse_ids, parse_size

from ..support.files import make_files


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_parse_helpers():
    assert parse_size("1GB") == 10**9 and parse_size("64MiB") == 64 << 20 and parse_size("4096") == 4096
    assert list(parse_ids(["3-5", "9,abc"])) == [3, 4, 5, 9, "abc"]


def test_pack_verify_ls_download_cycle(tmp_path):
    files = make_files(str(tmp_path / "src"), list(range(100, 160)))
    pool = str(tmp_path / "pool")
    code, out = run("pack", str(tmp_path / "src"), pool, "--layout", "increment-id", "--base-level", "1", "-q")
    assert code == 0 and "packed 60 files into 10 shard(s)" in out
    code, out = run("verify", pool, "-q")
    assert code == 0 and out.strip().endswith("ok")
    code, out = run("ls", pool)
    assert code == 0 and "10 shard(s), 60 files" in out
    (tmp_path / "ids.txt").write_text("150 151\n999\n")
    code, out = run("download", pool, "100-104", "--ids-file", str(tmp_path / "ids.txt"), "-o",
                    str(tmp_path / "out"), "--layout", "increment-id", "--base-level", "1", "-q",
                    "--report", str(tmp_path / "r.json"))
    assert code == 1, out  # an id the pool does not hold: the download finished, with a report
    assert "downloaded 7" in out and "missing: 999" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert sorted(report["downloaded"]) == [100, 101, 102, 103, 104, 150, 151]
    assert (tmp_path / "out" / "151.bin").read_bytes() == files[151]
    # corrupt one member: verify names shard and member, exits 1
    shard = tmp_path / "pool" / "images" / "00.tar"
    data = bytearray(shard.read_bytes())
    data[512 + 5] ^= 0xFF
    shard.write_bytes(bytes(data))
    code, out = run("verify", pool, "-q")
    assert code == 1 and "images/00.tar: 100.bin: member-corrupt" in out


def test_index_foreign_tars_and_http_download(tmp_path, file_server):
    import tarfile

    files = make_files(str(tmp_path / "src"), [1, 2, 3])
    os.makedirs(tmp_path / "pool")
    with tarfile.open(tmp_path / "pool" / "part.tar", "w") as tar:
        tar.add(str(tmp_path / "src"), arcname=".")
    code, out = run("index", str(tmp_path / "pool"), "-q")
    assert code == 0 and "indexed 1 shard(s)" in out
    server = file_server(tmp_path / "pool")
    code, out = run("download", server.url, "1", "3", "-o", str(tmp_path / "out"), "-q")
    assert code == 0, out
    assert (tmp_path / "out" / "3.bin").read_bytes() == files[3]


def test_extract_refuses_traversal(tmp_path):
    import io
    import tarfile

    os.makedirs(tmp_path / "pool")
    with tarfile.open(tmp_path / "pool" / "evil.tar", "w") as tar:
        for name in ("../escape.txt", "ok.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    assert run("index", str(tmp_path / "pool"), "-q")[0] == 0
    code, _out = run("extract", str(tmp_path / "pool"), "evil.tar", str(tmp_path / "dst"))
    assert code == 1
    assert os.listdir(tmp_path / "dst") == ["ok.txt"]
    assert not (tmp_path / "escape.txt").exists()


def test_bad_input_gives_clear_errors(tmp_path):
    os.makedirs(tmp_path / "src")
    os.symlink("/etc/hostname", tmp_path / "src" / "link.txt")
    code, out = run("pack", str(tmp_path / "src"), str(tmp_path / "pool"))
    assert code == 2 and "symlink" in out
    assert not (tmp_path / "pool").exists() or not os.listdir(tmp_path / "pool")
    code, out = run("pack", str(tmp_path / "src"), str(tmp_path / "pool"), "--max-shard-size", "lots")
    assert code == 2 and "not a size" in out


def test_console_script_runs():
    exe = os.path.join(os.path.dirname(sys.executable), "headwater")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("pack", "index", "verify", "download", "ls", "extract", "demo"):
        assert command in out


def test_readme_pack_examples_keep_every_name_unique(tmp_path):
    # the README packed photos/ twice into pool/ (increment-id, then sequential): every name twice, verify ok
    make_files(str(tmp_path / "photos"), [1, 2, 1001], ext=".jpg")
    pool = str(tmp_path / "pool")
    assert run("pack", str(tmp_path / "photos"), pool, "--layout", "increment-id", "--base-level", "3", "-q")[0] == 0
    code, out = run("pack", str(tmp_path / "photos"), pool, "--max-shard-size", "1GB", "-q")
    assert code == 2 and "error:" in out and "--add" in out
    code, out = run("pack", str(tmp_path / "photos"), pool, "--add", "-q")
    assert code == 2 and "already holds 3" in out and "1.jpg (in images/0001.tar)" in out
    code, out = run("verify", pool, "-q")
    assert code == 0 and out.strip().endswith("ok")  # the refused packs wrote nothing
    make_files(str(tmp_path / "more"), [3], ext=".jpg")
    code, out = run("pack", str(tmp_path / "more"), pool, "--add", "--layout", "increment-id", "--base-level", "3",
                    "-q")
    assert code == 0 and "packed 1 files" in out
    assert run("verify", pool, "-q")[0] == 0
    assert run("pack", str(tmp_path / "photos"), str(tmp_path / "pool-seq"), "-q")[0] == 0  # README's second
    # a pool put together by hand with one name in two shards: verify names the name and both shards
    for name in ("shard-00000.tar", "shard-00000.json"):
        os.replace(tmp_path / "pool-seq" / name, os.path.join(pool, name))
    assert run("index", pool, "-q")[0] == 0
    code, out = run("verify", pool, "-q")
    assert code == 1 and "images/0001.tar: 1.jpg: ambiguous-name" in out and "images/0001.tar, shard-00000.tar" in out
