"""A throwaway PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temp dir on 127.0.0.1.

Why a real server: the catalog's PostgreSQL path (COPY, transactional DDL, advisory locks, the
planner's choice of an index scan) can only be checked against PostgreSQL itself. ``python3 dev.py
test`` installs Debian's ``postgresql`` when its binaries are missing; if they are still missing the
fixture fails with a message saying so (it never silently skips).

initdb refuses to run as root, so when the tests run as root the server runs as the ``postgres``
system user (created by the Debian package), with its data and socket dirs chowned to it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from typing import Any

from .ports import free_port

__all__ = ["PostgresServer", "find_pg_bin"]


def find_pg_bin() -> str:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's versioned dirs)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(on_path))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    for initdb in reversed(candidates):
        if os.path.exists(os.path.join(os.path.dirname(initdb), "pg_ctl")):
            return os.path.dirname(initdb)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; "
        "run the tests with `python3 dev.py test` (it installs Debian's `postgresql`) or "
        "`apt-get install postgresql`")


class PostgresServer:
    """Start with :meth:`start`, stop and delete everything with :meth:`stop` (also after a failed start); or
    ``with PostgresServer() as server:``."""

    def __init__(self) -> None:
        self.bin = find_pg_bin()
        self.root = tempfile.mkdtemp(prefix="hw-pg-")
        self.data = os.path.join(self.root, "data")
        self.sockets = os.path.join(self.root, "sock")
        self.log = os.path.join(self.root, "server.log")
        self.port = 0
        self._options = ""
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                import pwd

                pw = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root, ignore_errors=True)
                raise RuntimeError("running as root, and there is no `postgres` user to run the test "
                                   "PostgreSQL server as (install Debian's `postgresql`)") from None
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.mkdir(self.sockets)
        if self._run_as:
            os.chown(self.sockets, self._run_as["user"], self._run_as["group"])

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run([os.path.join(self.bin, args[0]), *args[1:]], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "LC_ALL": "C"}, cwd=self.root, check=False,
                              **self._run_as)
        if proc.returncode != 0:
            log = ""
            if os.path.exists(self.log):
                with open(self.log) as f:
                    log = f.read()[-4000:]
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()}\n{log}")

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale",
                  "--no-sync")
        self.port = free_port()
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._options = options
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", options, "start")
        return self

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self) -> None:
        """Restart the server on the same port (``-m fast``: every session is ended, open transactions are
        rolled back), as an operator's restart or a failover does to the clients connected at the time."""
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-m", "fast", "-w", "-t", "60", "-o", self._options,
                  "restart")

    def stop(self) -> None:
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str | None = None) -> str:
        """A new database (empty, or a copy of database ``template``); returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
