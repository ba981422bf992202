"""A throwaway PostgreSQL server for tests and benchmarks.

``initdb`` into a temporary directory (as the ``postgres`` user when we are
root, since initdb refuses to run as root), then ``postgres`` on a free
loopback port. Nothing outside the directory is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def pg_bin(name: str) -> str:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1:]
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found if isinstance(found, str) else found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_database(server_url: str) -> str:
    """Create an empty database on the server; return its URL."""
    import asyncpg

    name = f"wq_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:  # callable from inside a running event loop too
        pool.submit(asyncio.run, create()).result()
    return server_url.rsplit("/", 1)[0] + "/" + name


class PostgresCluster:
    def __init__(self, cpu: int | None = None, **settings: str) -> None:
        self.cpu = cpu  # pin the server (and every backend it forks) to this CPU
        self.dir = Path(tempfile.mkdtemp(prefix="wonderq-pg-"))
        self.port = free_port()
        self.settings = {
            "listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.dir),
            "fsync": "on", "synchronous_commit": "on", "max_connections": "200",
            "shared_buffers": "128MB", **settings,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as(self) -> dict[str, object]:
        """Popen arguments that drop to the postgres user when we are root."""
        return {"user": "postgres", "group": "postgres", "extra_groups": []} if self.as_postgres else {}

    def init(self) -> PostgresCluster:
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
        data = str(self.dir / "data")
        subprocess.run(
            [pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True, capture_output=True, cwd=self.dir, **self._as(),  # type: ignore[call-overload]
        )
        return self

    def start(self) -> PostgresCluster:
        options = [f"-c{k}={v}" for k, v in self.settings.items()]
        command = [*self._pin(), pg_bin("postgres"), "-D", str(self.dir / "data"), "-p", str(self.port)]
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115 - postgres keeps it
        if self.as_postgres:
            shutil.chown(self.dir / "postgres.log", "postgres")
        with log:
            self.proc = subprocess.Popen(  # type: ignore[call-overload]
                [*command, *options],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, **self._as(),
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + (self.dir / "postgres.log").read_text())
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                if self._ready():
                    return self
            time.sleep(0.05)
        raise RuntimeError("postgres did not start: " + (self.dir / "postgres.log").read_text())

    def _pin(self) -> list[str]:
        return [] if self.cpu is None else ["taskset", "-c", str(self.cpu)]

    def _ready(self) -> bool:
        result = subprocess.run(
            [pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
        )
        return result.returncode == 0

    def stop(self, sig: int = signal.SIGINT) -> None:
        """SIGINT: fast shutdown; SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
