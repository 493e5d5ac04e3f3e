"""What every ``headwater`` command does the same way: errors and exit codes, missing things named, options
spelled once, progress bars only on a terminal, one line for a missing extra."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tarfile

import pytest
from click.testing import CliRunner

from headwater.cli import EXIT_CODES, main

from ..support.files import make_files


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


def test_help_documents_the_exit_codes():
    code, out, _ = run("--help")
    assert code == 0 and "Exit status:" in out
    for status, meaning in EXIT_CODES.items():
        assert f"{status:>3}  {meaning}" in out
    assert set(EXIT_CODES) == {0, 1, 2, 3, 130}


def test_a_missing_pool_is_an_error_not_an_empty_success(tmp_path):
    missing = str(tmp_path / "missing")
    code, out, err = run("verify", missing)
    assert code == 2 and out == "" and err == f"error: no pool at {missing}: no such folder\n"
    code, out, err = run("download", missing, "1", "-o", str(tmp_path / "out"))
    assert code == 2 and err == f"error: no pool at {missing}: no such folder\n"
    code, out, err = run("ls", missing + "/")  # a path-looking target that does not exist is a catalog name
    assert code == 2 and err.startswith("error: ")


def test_index_names_a_damaged_shard_and_indexes_the_others(tmp_path):
    make_files(str(tmp_path / "src"), [1, 2, 3], lo=3000, hi=3000)
    pool = tmp_path / "pool"
    pool.mkdir()
    for name in ("good.tar", "bad.tar"):
        with tarfile.open(pool / name, "w") as tar:
            tar.add(str(tmp_path / "src"), arcname=".")
    bad = pool / "bad.tar"
    bad.write_bytes(bad.read_bytes()[:5000])  # cut inside a member
    code, out, err = run("index", str(pool), "--no-progress")
    assert code == 1
    assert f"failed {bad}: archive truncated inside member './1.bin'" in err
    assert "indexed 1 shard(s)" in out and "manifest" in out
    assert (pool / "good.json").exists() and not (pool / "bad.json").exists()


def test_old_spellings_still_work_hidden_and_warned(tmp_path):
    make_files(str(tmp_path / "src"), [5, 6])
    pool = str(tmp_path / "pool")
    assert run("pack", str(tmp_path / "src"), pool, "-q")[0] == 0
    code, _, err = run("download", pool, "5", "6", "-o", str(tmp_path / "out"), "--workers", "2", "--token", "t",
                         "--quiet")
    assert code == 0, err
    assert "warning: --workers is deprecated and will be removed; use --max-workers" in err
    assert "warning: --token is deprecated and will be removed; use --api-key" in err
    assert "warning: --quiet is deprecated" in err
    help_text = run("download", "--help")[1]
    assert "--max-workers" in help_text and "--api-key" in help_text and "--progress / -q, --no-progress" in help_text
    assert "--workers" not in help_text and "--token" not in help_text
    # the same layout options in pack and download; pack refuses what it cannot do
    code, _, err = run("pack", str(tmp_path / "src"), str(tmp_path / "p2"), "--layout", "increment-id",
                       "--base-level", "2", "--base-level", "3")
    assert code == 2 and "give one --base-level" in err
    code, _, err = run("download", pool, "5", "-o", str(tmp_path / "o2"), "--layout", "scan", "-q")
    assert code == 0, err


def test_progress_bars_only_on_a_terminal_or_when_asked(tmp_path):
    make_files(str(tmp_path / "src"), list(range(10)))
    code, _, err = run("pack", str(tmp_path / "src"), str(tmp_path / "a"))  # stderr is not a terminal here
    assert code == 0 and "Packing" not in err and "\r" not in err
    code, _, err = run("pack", str(tmp_path / "src"), str(tmp_path / "b"), "--progress")
    assert code == 0 and "Packing" in err
    code, _, err = run("verify", str(tmp_path / "b"))
    assert code == 0 and "Verifying" not in err


def test_a_missing_extra_is_one_line_naming_what_to_install(tmp_path):
    def blocked(module: str, *args: str) -> subprocess.CompletedProcess[str]:
        code = ("import sys\n"
                "class Block:\n"
                "    def find_spec(self, name, path=None, target=None):\n"
                f"        if name.split('.')[0] == {module!r}:\n"
                "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
                "sys.meta_path.insert(0, Block())\n"
                "from headwater.cli import main\n"
                f"main({list(args)!r})\n")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)

    done = blocked("fastapi", "serve", "--catalog", str(tmp_path / "c.sqlite"), "--port", "0")
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("error: headwater serve needs the 'server' extra (fastapi is not installed): "
                           "pip install 'headwater[server]'\n")
    done = blocked("s3fs", "verify", "s3://bucket/pool")
    assert done.returncode == 2
    assert done.stderr == ("error: reading s3:// stores needs the 's3' extra (s3fs is not installed): "
                           "pip install 'headwater[s3]'\n")


def test_serve_names_its_catalog_warns_about_a_new_one_and_refuses_a_busy_port(tmp_path):
    path = str(tmp_path / "new" / "catalog.sqlite")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run("serve", "--catalog", path, "--port", str(port))
        assert code == 2 and f"error: cannot listen on 127.0.0.1:{port}:" in err and "pick another --port" in err
    assert not os.path.exists(path)
    exe = os.path.join(os.path.dirname(sys.executable), "headwater")
    proc = subprocess.Popen([exe, "serve", "--catalog", path, "--port", "0", "--log-level", "warning"],
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stderr.readline() for _ in range(2)] if proc.stderr else []
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert lines[0].startswith(f"warning: no catalog at {path}: serving a new, empty one")
    assert lines[1] == f"serving catalog {path}\n"


@pytest.mark.parametrize("args", [["ls", "--catalog", "{missing}"], ["keys", "list", "--catalog", "{missing}"],
                                  ["tag", "a/b/c", "--catalog", "{missing}"]])
def test_commands_that_read_a_catalog_do_not_create_one(tmp_path, args):
    missing = str(tmp_path / "none.sqlite")
    code, _, err = run(*[a.format(missing=missing) for a in args])
    assert code == 2 and f"error: no catalog at {missing}" in err and not os.path.exists(missing)
