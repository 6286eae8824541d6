"""A real PostgreSQL server for the tests: initdb into a fresh folder, pg_ctl start on a free
loopback port, a ``callcenter`` role that logs in with a password over TCP (as a daemon on
another host would), and one fresh database per test.

PostgreSQL refuses to run as root; run as root (CI), the server runs as the ``postgres``
user that Debian's packages create. ``scripts/test`` installs the server where it is missing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

PASSWORD = "s3cret-records"
_numbers = itertools.count(1)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise RuntimeError(
        f"PostgreSQL's {name} is not installed: run scripts/test as root, or "
        "apt-get install postgresql"
    )


@dataclass
class PostgresServer:
    folder: Path
    port: int
    socket_dir: Path

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the server's Unix socket."""
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres",
            autocommit=True,
        )  # fmt: skip

    def new_database(self) -> str:
        """A fresh database owned by ``callcenter``; returns its connection string (no
        password in it: that comes from the environment, as in production)."""
        name = f"records_{os.getpid()}_{next(_numbers)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER callcenter')
        return f"postgresql://callcenter@127.0.0.1:{self.port}/{name}"

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        _as_owner(
            [_binary("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop"],
            self.folder,
        )

    def start(self) -> None:
        _as_owner(
            [
                _binary("pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-l",
                str(self.folder / "log"),
                "-w",
                "start",
            ],
            self.folder,
        )


def _as_owner(argv: list[str], folder: Path) -> None:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, cwd=folder)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_orphans() -> None:
    """Stop the servers of earlier runs that were killed before they could stop them (a
    ``timeout``, a ^C twice): their ``owner.pid`` names a process that is gone."""
    for owner in Path(tempfile.gettempdir()).glob("cc-postgres-*/owner.pid"):
        try:
            os.kill(int(owner.read_text()), 0)
            continue  # that run is still going
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue
        folder = owner.parent
        with contextlib.suppress(Exception):
            _as_owner(
                [_binary("pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"], folder
            )
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    _stop_orphans()
    folder = Path(tempfile.mkdtemp(prefix="cc-postgres-"))
    (folder / "owner.pid").write_text(str(os.getpid()))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    server = PostgresServer(folder, port, folder)
    try:
        _as_owner(
            [_binary("initdb"), "-D", str(folder / "data"), "-U", "postgres",
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions"],
            folder,
        )  # fmt: skip
        with (folder / "data" / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{folder}'\nfsync = off\nfull_page_writes = off\n"
            )
        server.start()
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE callcenter LOGIN PASSWORD '{PASSWORD}'")
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
