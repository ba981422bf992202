"""Fixtures: real brokers in subprocesses on free ports, databases of both
backends, and HTTP clients.

PostgreSQL comes from ``WONDERQ_TEST_DATABASE_URL`` or a throwaway cluster
started for the session; if neither works the PostgreSQL tests fail when
``CI`` is set and are skipped otherwise."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pgcluster import PostgresCluster, create_database

BACKENDS = ["sqlite", "postgresql"]
# A form body may change state only with an Authorization header (edge/guard.py); while auth
# is off the REST API checks no key, so a test of form parsing sends this stand-in.
FORM_AUTH = {"Authorization": "Bearer wq_stand-in"}


def unique(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_queue(client: httpx.Client, name: str | None = None, **attributes: Any) -> dict[str, Any]:
    r = client.post("/queues", json={"name": name or unique(), **attributes})
    assert r.status_code == 200, r.text
    return dict(r.json())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10, sig: int = signal.SIGTERM) -> bool:
    """Signal a process still running and wait for it (killing it after ``timeout``);
    whether it ended by itself."""
    if proc.poll() is not None:
        return True
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    return True


class BrokerProcess:
    """``wonderq broker`` in a subprocess, on its own port and database."""

    def __init__(self, db: Path | str, *args: str, log_dir: Path | None = None) -> None:
        self.db = db
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        folder = log_dir or (db.parent if isinstance(db, Path) else Path(os.environ.get("TMPDIR", "/tmp")))
        self.log = folder / f"broker.{self.port}.log"

    def start(self) -> BrokerProcess:
        cmd = [
            sys.executable, "-m", "wonderq", "broker", "--port", str(self.port),
            "--db", str(self.db), "--log-level", "warning", *self.args,
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"broker did not start: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            terminate(self.proc, 10, sig)

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The URL of a PostgreSQL server for this test session."""
    url = os.environ.get("WONDERQ_TEST_DATABASE_URL")
    if url:
        yield url
        return
    try:
        cluster = PostgresCluster().init().start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and could not be started: {exc}")
        pytest.skip(f"no PostgreSQL: {exc}")
    yield cluster.url
    cluster.destroy()


def fresh_database(server_url: str) -> str:
    return create_database(server_url)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wonderq.db'}"
    return fresh_database(request.getfixturevalue("postgres"))


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[type[BrokerProcess]]:
    started: list[BrokerProcess] = []

    class Factory(BrokerProcess):
        def start(self) -> BrokerProcess:
            started.append(self)
            return super().start()

    yield Factory
    for b in started:
        b.stop(signal.SIGKILL if os.environ.get("WONDERQ_TEST_FAST_STOP") else signal.SIGTERM)


@pytest.fixture
def broker(broker_factory: type[BrokerProcess], db_url: str, tmp_path: Path) -> BrokerProcess:
    """A broker of its own for one test, on each backend."""
    return broker_factory(db_url, log_dir=tmp_path).start()


@pytest.fixture(scope="module", params=BACKENDS)
def module_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    """One broker shared by a module's tests, on each backend; the module
    fails if any request crashed a handler."""
    folder = tmp_path_factory.mktemp("broker")
    if request.param == "sqlite":
        db: Path | str = folder / "wonderq.db"
    else:
        db = fresh_database(request.getfixturevalue("postgres"))
    yield from shared_broker(db, folder)


@pytest.fixture(scope="module")
def sqlite_module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One SQLite broker shared by a module's tests, for tests of what sits on
    the HTTP API (clients, services), which does not depend on the backend."""
    folder = tmp_path_factory.mktemp("broker")
    yield from shared_broker(folder / "wonderq.db", folder)


def shared_broker(db: Path | str, folder: Path) -> Iterator[BrokerProcess]:
    b = BrokerProcess(db, log_dir=folder).start()
    yield b
    b.stop()
    log = b.log.read_text()
    assert "Traceback" not in log, log  # no request may have crashed a handler


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, timeout=30) as c:
        yield c


@pytest.fixture
def queue(client: httpx.Client) -> dict[str, object]:
    r = client.post("/queues", json={"name": "jobs"})
    assert r.status_code == 200, r.text
    return dict(r.json())
