"""Fixtures: real brokers in subprocesses on free ports, and HTTP clients."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrokerProcess:
    """``wonderq broker`` in a subprocess, on its own port and database."""

    def __init__(self, db: Path, *args: str) -> None:
        self.db = db
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = db.with_suffix(f".{self.port}.log")

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
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]


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
def broker(broker_factory: type[BrokerProcess], tmp_path: Path) -> BrokerProcess:
    return broker_factory(tmp_path / "wonderq.db").start()


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, timeout=30) as c:
        yield c


@pytest.fixture
def queue(client: httpx.Client) -> dict[str, object]:
    r = client.post("/queues", json={"name": "jobs"})
    assert r.status_code == 200, r.text
    return dict(r.json())
