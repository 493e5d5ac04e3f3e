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


def test_ls_of_an_http_pool_without_a_manifest_is_an_error_not_an_empty_pool(tmp_path, file_server):
    make_files(str(tmp_path / "src"), [1, 2, 3])
    assert run("pack", str(tmp_path / "src"), str(tmp_path / "pool"), "-q")[0] == 0
    server = file_server(tmp_path / "pool")
    assert run("ls", server.url)[1].strip().endswith("1 shard(s), 3 files, " + str(
        os.path.getsize(tmp_path / "pool" / "shard-00000.tar")) + " bytes")
    os.unlink(tmp_path / "pool" / "headwater-manifest.sqlite")  # or a mistyped URL: plain HTTP cannot list
    result = CliRunner().invoke(main, ["ls", server.url])
    assert result.exit_code == 2 and "0 shard(s)" not in result.output
    assert "no headwater-manifest.sqlite at " in result.output and "cannot be listed" in result.output


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


def _cut_shard_pool(tmp_path) -> tuple[str, dict[int, bytes], list[str], int]:
    """A one-shard pool of 30 files cut in the middle of its 16th member: (pool, files, members by offset,
    the shard's new size)."""
    files = make_files(str(tmp_path / "src"), list(range(1, 31)), seed=11, lo=600, hi=3000)
    pool = str(tmp_path / "pool")
    code, _out = run("pack", str(tmp_path / "src"), pool, "-q")
    assert code == 0
    index = json.loads((tmp_path / "pool" / "shard-00000.json").read_text())["files"]
    order = sorted(index, key=lambda n: index[n]["offset"])
    size = index[order[15]]["offset"] + index[order[15]]["size"] // 3
    os.truncate(os.path.join(pool, "shard-00000.tar"), size)
    return pool, files, order, size


def test_extract_of_a_cut_shard_extracts_every_intact_member_and_names_each_damaged_one(tmp_path):
    pool, files, order, size = _cut_shard_pool(tmp_path)
    dst = tmp_path / "dst"
    result = CliRunner().invoke(main, ["extract", pool, "shard-00000.tar", str(dst)], catch_exceptions=False)
    assert result.exit_code == 1, result.output  # finished, some members failed
    assert "extracted 15 file(s)" in result.stdout
    assert sorted(os.listdir(dst)) == sorted(order[:15])  # no partial file, no temp file
    for name in order[:15]:
        assert (dst / name).read_bytes() == files[int(name.split(".")[0])]
    refused = [line for line in result.stderr.splitlines() if line.startswith("refused")]
    assert [line.split("'")[1] for line in refused] == order[15:]
    cut = order[15]
    got = size - json.loads((tmp_path / "pool" / "shard-00000.json").read_text())["files"][cut]["offset"]
    expected = len(files[int(cut.split(".")[0])])
    assert (f"refused {cut!r}: truncated: got {got} of {expected} bytes (the shard ends at byte {size}); "
            "the shard is damaged") in result.stderr


_FSIZE_LIMIT = 2000


def _run_limited(*args: str) -> subprocess.CompletedProcess[str]:
    """``headwater ARGS`` in a child process whose files may not grow past 2,000 bytes (RLIMIT_FSIZE; SIGXFSZ
    ignored, so a write past it fails with EFBIG as on a full disk) — no mount needed."""
    import resource
    import signal

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (_FSIZE_LIMIT, _FSIZE_LIMIT))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "headwater.cli", *args], capture_output=True, text=True,
                          env=env, preexec_fn=limit, timeout=300, check=False)


def _small_then_mixed(src) -> dict[int, bytes]:
    """40 files: 1-20 below the limit (they come first in the shard), 21-40 of any size up to 4,000 bytes."""
    return {**make_files(str(src), list(range(1, 21)), seed=5, lo=100, hi=1500),
            **make_files(str(src), list(range(21, 41)), seed=6, lo=100, hi=4000)}


def _assert_stopped_cleanly(result: subprocess.CompletedProcess[str], out, files: dict[int, bytes]) -> list[str]:
    """One ``error:`` line naming the file, exit 3, no traceback; every file left is whole and correct."""
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "File too large" in errors[0], result.stderr
    named = errors[0].split("cannot write ")[1].split(":")[0]
    assert os.path.dirname(named) == str(out) and len(files[int(os.path.basename(named).split(".")[0])]) > 1000
    assert not os.path.exists(named)  # nothing under its final name
    left = sorted(os.listdir(out))
    assert left  # what was written before the limit is there
    for name in left:  # no temp file: only whole, correct files
        assert not name.startswith("."), left
        assert (out / name).read_bytes() == files[int(name.split(".")[0])]
    return left


def test_download_stopped_by_a_full_disk_says_which_file_and_resumes(tmp_path):
    files = _small_then_mixed(tmp_path / "src")
    pool = str(tmp_path / "pool")
    assert run("pack", str(tmp_path / "src"), pool, "-q")[0] == 0
    out = tmp_path / "out"
    first = _run_limited("download", pool, "1-40", "-o", str(out), "-q", "--max-workers", "1")
    left = _assert_stopped_cleanly(first, out, files)
    assert len(left) < 40
    code, text = run("download", pool, "1-40", "-o", str(out), "-q", "--report", str(tmp_path / "r.json"))
    assert code == 0, text
    report = json.loads((tmp_path / "r.json").read_text())
    assert sorted(report["skipped"]) == sorted(int(n.split(".")[0]) for n in left)  # not fetched again
    assert len(report["downloaded"]) == 40 - len(left)
    for rid, data in files.items():
        assert (out / f"{rid}.bin").read_bytes() == data


def test_extract_stopped_by_a_full_disk_says_which_file_and_resumes(tmp_path):
    files = _small_then_mixed(tmp_path / "src")
    pool = str(tmp_path / "pool")
    assert run("pack", str(tmp_path / "src"), pool, "-q")[0] == 0
    out = tmp_path / "out"
    left = _assert_stopped_cleanly(_run_limited("extract", pool, "shard-00000.tar", str(out)), out, files)
    code, text = run("extract", pool, "shard-00000.tar", str(out))
    assert code == 0, text
    assert f"extracted {40 - len(left)} file(s), {len(left)} already there" in text
    for rid, data in files.items():
        assert (out / f"{rid}.bin").read_bytes() == data


def test_one_name_policy_for_download_extract_and_verify_and_non_regular_members_are_named(tmp_path):
    """A foreign tar holding an escaping name, a name too long for any file system, and members that are
    not regular files. ``index`` indexes the files and names each member it skipped; ``verify`` lists every
    one as a problem; ``extract`` and ``download`` refuse the same two names (download would otherwise
    write their harmless-looking base names ``7.bin`` and ``8.bin``)."""
    import io
    import tarfile

    long_dir = "d" * 300
    os.makedirs(tmp_path / "pool")
    with tarfile.open(tmp_path / "pool" / "foreign.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        folder = tarfile.TarInfo("ok")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in (("ok/1.bin", b"one"), ("../evil/7.bin", b"seven"), (f"{long_dir}/8.bin", b"eight")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, kind, link in (("link.bin", tarfile.SYMTYPE, "ok/1.bin"), ("hard.bin", tarfile.LNKTYPE, "ok/1.bin"),
                                 ("pipe", tarfile.FIFOTYPE, ""), ("null", tarfile.CHRTYPE, ""),
                                 ("disk", tarfile.BLKTYPE, "")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            tar.addfile(info)
    pool = str(tmp_path / "pool")
    result = CliRunner().invoke(main, ["index", pool, "-q"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "indexed 1 shard(s), skipped 5 member(s) that are not regular files" in result.stdout
    skipped = sorted(line for line in result.stderr.splitlines() if line.startswith("skipped"))
    shard = os.path.join(pool, "foreign.tar")
    assert skipped == sorted(f"skipped {shard}: {name!r}: {kind}, not a regular file (not indexed)" for name, kind in (
        ("link.bin", "symlink"), ("hard.bin", "hardlink"), ("pipe", "fifo"), ("null", "character device"),
        ("disk", "block device")))
    assert sorted(json.loads((tmp_path / "pool" / "foreign.json").read_text())["files"]) == sorted(
        ["ok/1.bin", "../evil/7.bin", f"{long_dir}/8.bin"])

    code, out = run("verify", pool, "-q")
    assert code == 1
    problems = sorted(line.split(": ")[1:3] for line in out.splitlines() if line.startswith("foreign.tar"))
    assert problems == sorted([["../evil/7.bin", "unsafe-name"], [f"{long_dir}/8.bin", "unsafe-name"],
                               ["link.bin", "not-a-file"], ["hard.bin", "not-a-file"], ["pipe", "not-a-file"],
                               ["null", "not-a-file"], ["disk", "not-a-file"]])
    assert "too long (300 bytes in one part" in out

    result = CliRunner().invoke(main, ["extract", pool, "foreign.tar", str(tmp_path / "x")], catch_exceptions=False)
    assert result.exit_code == 1
    refused = sorted(line.split("'")[1] for line in result.stderr.splitlines() if line.startswith("refused"))
    assert refused == sorted(["../evil/7.bin", f"{long_dir}/8.bin"])
    assert os.listdir(tmp_path / "x") == ["ok"]

    code, out = run("download", pool, "1", "7", "8", "-o", str(tmp_path / "dl"), "-q")
    assert code == 1
    assert os.listdir(tmp_path / "dl") == ["1.bin"]
    failed = sorted(line.split(":")[0] for line in out.splitlines() if line.startswith("failed"))
    assert failed == ["failed 7", "failed 8"] and out.count("UnsafeMemberError: unsafe member name") == 2


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
