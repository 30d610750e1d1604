"""A real, throw-away PostgreSQL server for the test session.

Started with Debian's ``initdb``/``pg_ctl`` in a temporary directory on a free
loopback port, trusting local connections; run as the ``postgres`` user when
the tests run as root (``initdb`` refuses root).  Stopped at session end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def find_pg_binary(name: str) -> str | None:
    for d in PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server; :meth:`create_database` gives each test its own database."""

    root: Path
    port: int
    user: str
    run_as: str | None

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def outage(self, seconds: float) -> None:
        """Stop the server abruptly (every connection drops), stay down ``seconds``, start it again on its data."""
        pg_ctl = find_pg_binary("pg_ctl")
        assert pg_ctl is not None
        data = str(self.root / "data")
        _run([pg_ctl, "-D", data, "-m", "immediate", "stop"], self.run_as)
        time.sleep(seconds)
        _run([pg_ctl, "-D", data, "-o", _server_options(self.port, self.root), "-l", str(self.root / "log"), "-w",
              "-t", "60", "start"], self.run_as)

    @contextlib.contextmanager
    def down_for(self, seconds: float) -> Iterator[None]:
        """The block runs while an outage of ``seconds`` (:meth:`outage`, in the background) is under way: it starts
        once the server refuses connections, and the server is back when the block has ended."""
        import psycopg

        from tests.support.processes import wait_for

        down = threading.Thread(target=self.outage, args=(seconds,))
        down.start()

        def refused() -> bool:
            try:
                conninfo = f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"
                psycopg.connect(conninfo, connect_timeout=2).close()
            except psycopg.OperationalError:
                return True
            return False

        try:
            wait_for(refused, 60, "the server to go down")
            yield
        finally:
            down.join()

    def stop(self) -> None:
        pg_ctl = find_pg_binary("pg_ctl")
        if pg_ctl:
            _run([pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop"], self.run_as, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _run(cmd: list[str], run_as: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    if run_as:
        cmd = ["runuser", "-u", run_as, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)


def _server_options(port: int, root: Path) -> str:
    return f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c max_connections=200"


def start_postgres() -> PostgresServer:
    """Initialise and start a server; raise ``RuntimeError`` saying why when it cannot."""
    initdb, pg_ctl = find_pg_binary("initdb"), find_pg_binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise FileNotFoundError("PostgreSQL's initdb/pg_ctl are not installed (Debian package 'postgresql')")
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="matloop-pg-"))
    data = root / "data"
    if run_as:
        shutil.chown(root, user=run_as)
    os.chmod(root, 0o755)
    user = run_as or os.environ.get("USER", "postgres")
    port = free_port()
    _run([initdb, "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"], run_as)
    proc = _run([pg_ctl, "-D", str(data), "-o", _server_options(port, root), "-l", str(root / "log"), "-w", "-t", "60", "start"], run_as,
                check=False)
    if proc.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {proc.stderr}\n{log[-2000:]}")
    server = PostgresServer(root=root, port=port, user=user, run_as=run_as)
    deadline = time.monotonic() + 30
    import psycopg

    while True:
        try:
            psycopg.connect(f"host=127.0.0.1 port={port} user={user} dbname=postgres").close()
            return server
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)
