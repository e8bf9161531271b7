"""A throwaway PostgreSQL cluster for the PostgreSQL connectors' tests: Debian's server
binaries (``scripts/setup.sh`` installs ``postgresql``), ``initdb`` into a temp dir, the
server on a free loopback port (and a unix socket in the temp dir), stopped and removed at
the end. PostgreSQL refuses to run as root: as root, the cluster runs as the ``postgres``
system user the Debian package creates.

``stop``/``start`` again on the same data directory is the "database goes away and comes
back" of the tests.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["PgServer", "pg_bin_dir", "pg_server"]

USER = "streamlog"


def pg_bin_dir() -> Path | None:
    """The newest installed server's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    try:
        return int(Path(path).parent.parent.name)
    except ValueError:
        return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One cluster: ``start`` (initdb on first), ``stop``, ``remove``; ``dsn`` for psycopg."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # not under pytest's tmp_path: as root that is a 0700 tree the postgres user
        # cannot enter
        self.base = Path(tempfile.mkdtemp(prefix="streamlog-pg-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self._databases = 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres connect_timeout=5"

    def new_database(self) -> str:
        """A fresh, empty database on the cluster: its DSN."""
        import psycopg

        self._databases += 1
        name = f"test_{self._databases}"
        with psycopg.connect(self.dsn, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.dsn.replace("dbname=postgres", f"dbname={name}")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=check)

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
                "--no-sync", "--no-instructions",
            )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.base} -c max_connections=30 "
            "-c shared_buffers=16MB"
        )
        done = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.base / "log"), "-o", options,
            "-w", "-t", "30", "start", check=False,
        )  # fmt: skip
        if done.returncode != 0:
            log = (self.base / "log").read_text() if (self.base / "log").exists() else ""
            raise RuntimeError(f"postgres did not start: {done.stderr}\n{log[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is the closest to a crash pg_ctl offers (no checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server():
    """A running cluster for the test module (skipped, saying why, without the binaries)."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries missing (scripts/setup.sh installs postgresql)")
    server = PgServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.remove()
