#!/usr/bin/env python3
"""One entry point for a fresh machine: ``python3 dev.py demo`` and ``python3 dev.py test``.

Each command creates ``.venv`` if missing, installs the project with the extras it needs (again only
when pyproject.toml changed), then runs. ``test`` runs ``ruff check``, ``mypy`` and ``pytest`` (extra
arguments go to pytest), first installing through apt-get what the tests start when it is missing: Debian's
PostgreSQL server and its headless Chromium (the viewer's tests drive a real browser; ``bench`` needs the
browser too). Only the standard library is used here, so it works with a bare Python 3.11.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
PY = os.path.join(VENV, "bin", "python")
EXTRAS = {"demo": "[server]", "test": "[dev]", "bench": "[dev]"}  # demo: it ends by printing a `serve` command


def ensure_env(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs under any python3 and must say it is too old
        sys.exit(f"headwater needs Python >= 3.11, this is {sys.version.split()[0]}")
    if not os.path.exists(PY):
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        stamp = hashlib.sha256(f.read() + extras.encode()).hexdigest()
    stamp_file = os.path.join(VENV, f".headwater-installed{extras.strip('[]') and '-' + extras.strip('[]')}")
    if os.path.exists(stamp_file) and pathlib.Path(stamp_file).read_text() == stamp:
        return
    print(f"installing headwater{extras} into {VENV}", flush=True)
    subprocess.run([PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", f".{extras}"],
                   cwd=ROOT, check=True)
    with open(stamp_file, "w") as f:
        f.write(stamp)


def have_postgres() -> bool:
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return True
    return any(os.path.exists(os.path.join(os.path.dirname(p), "pg_ctl"))
               for p in glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def apt_install(package: str, why: str) -> None:
    """Install Debian's ``package`` through apt-get (with sudo when not root), or exit saying how to."""
    if not shutil.which("apt-get"):
        sys.exit(f"{why}, and there is no apt-get here: install {package} with your package manager")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            sys.exit(f"{why}; run as root or install it yourself: apt-get install {package}")
        prefix = ["sudo"]
    print(f"installing Debian's {package} ({why})", flush=True)
    apt = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    subprocess.run([*apt, "update"], check=True)
    subprocess.run([*apt, "install", "-y", "--no-install-recommends", package], check=True)


def ensure_postgres() -> None:
    """The catalog tests start a real PostgreSQL server (initdb + pg_ctl); install Debian's if missing."""
    if have_postgres():
        return
    apt_install("postgresql", "the catalog tests start a real PostgreSQL server (initdb, pg_ctl)")
    if not have_postgres():
        sys.exit("installed postgresql but still found no initdb/pg_ctl on PATH or under /usr/lib/postgresql")


CHROMIUMS = ("chromium-headless-shell", "chromium")
"""Debian's Chromium builds the viewer's browser tests can drive (tests/support/browser.py finds them);
Playwright's own browser download needs the internet, so the tests use the system's."""


def ensure_chromium() -> None:
    """The viewer's tests run in a real headless Chromium; install Debian's headless shell if none is here."""
    if any(shutil.which(name) for name in CHROMIUMS):
        return
    apt_install("chromium-headless-shell", "the viewer's tests run in a real headless Chromium")
    if not any(shutil.which(name) for name in CHROMIUMS):
        sys.exit("installed chromium-headless-shell but found neither of "
                 f"{', '.join(CHROMIUMS)} on PATH")


def run_checks(pytest_args: list[str]) -> int:
    """ruff (lint), mypy (types) and the test suite, all three even when one fails; the worst status wins."""
    bin_dir = os.path.join(VENV, "bin")
    steps = [("ruff", [os.path.join(bin_dir, "ruff"), "check", "src", "tests", "benchmarks", "dev.py"]),
             ("mypy", [os.path.join(bin_dir, "mypy")]),
             ("pytest", [PY, "-m", "pytest", *pytest_args])]
    failed = []
    for name, cmd in steps:
        print(f"== {name}", flush=True)
        if subprocess.call(cmd) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print("usage: python3 dev.py demo|test|bench [args...]", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env(EXTRAS[command])
    os.chdir(ROOT)
    if command == "demo":
        return subprocess.call([os.path.join(VENV, "bin", "headwater"), "demo", *rest])
    if command == "test":
        ensure_postgres()
        ensure_chromium()
        return run_checks(rest)
    ensure_chromium()  # bench_viewer times a grid page in the real browser
    code = 0
    for script in sorted(os.listdir(os.path.join(ROOT, "benchmarks"))):
        if script.startswith("bench_") and script.endswith(".py"):
            code |= subprocess.call([PY, os.path.join("benchmarks", script), *rest])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
