"""A broker told to stop (SIGTERM), against real processes: parked long polls are answered
at once, empty, instead of cut off; a stopping --cluster refuses new connections instead of
taking them and resetting them; workers whose supervisor was killed stop by themselves; and
the broker ends by the signal, one process or a cluster alike."""

from __future__ import annotations

import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import BrokerProcess

CLUSTER = [pytest.param((), id="one-process"), pytest.param(("--cluster", "2"), id="cluster")]


def park(broker: BrokerProcess, n: int) -> list[socket.socket]:
    """``n`` long polls of an empty queue, each on a connection of its own, sent before this returns."""
    httpx.post(broker.url + "/queues", json={"name": "q"}).raise_for_status()
    polls = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", broker.port), timeout=30)
        s.sendall(b"GET /messages/consume?queue_name=q&wait_time=20 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        polls.append(s)
    time.sleep(0.5)  # read and parked by an idle broker: nothing to claim
    return polls


def answer_of(s: socket.socket) -> tuple[int, bytes]:
    """The status and body of the one answer a connection gets before it is closed."""
    chunks = []
    with s:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize("cluster", CLUSTER)
def test_sigterm_answers_parked_long_polls_empty_and_ends_by_the_signal(
        broker_factory: type[BrokerProcess], db_url: str, tmp_path: Path, cluster: tuple[str, ...]) -> None:
    """They used to be cut off after the grace period with no answer at all (curl: empty
    reply), which behind nginx is a 502 and a retried poll."""
    broker = broker_factory(db_url, *cluster, log_dir=tmp_path).start()
    polls = park(broker, 3)
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGTERM)
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(answer_of, polls)) == [(200, b"[]")] * 3
    assert broker.proc.wait(timeout=15) == -signal.SIGTERM


def test_a_stopping_cluster_refuses_new_connections(
        broker_factory: type[BrokerProcess], tmp_path: Path) -> None:
    """Once told to stop, nothing may take a connection it will not serve: a connection taken
    into the listening socket's queue and then reset cannot be retried by a load balancer
    (the request may have been sent), a refused one can. A client that reads nothing of a
    10 MB answer keeps a worker in its grace period meanwhile."""
    broker = broker_factory(f"sqlite:///{tmp_path / 'w.db'}", "--cluster", "2", log_dir=tmp_path).start()
    httpx.post(broker.url + "/queues", json={"name": "big", "max_message_size": 1_048_576}).raise_for_status()
    for _ in range(10):
        httpx.post(broker.url + "/messages", json={"queue_name": "big", "body": "x" * 1_000_000}).raise_for_status()
    slow = []
    for _ in range(2):  # one for each worker, most likely
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", broker.port))
        s.sendall(b"GET /queues/big/messages?size=10 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        slow.append(s)
    time.sleep(0.5)
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGTERM)
    outcomes = []
    for _ in range(100):
        time.sleep(0.02)
        try:
            with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                outcomes.append("answered" if s.recv(100).startswith(b"HTTP/1.1 ") else "reset")
        except ConnectionRefusedError:
            outcomes.append("refused")
            break
        except OSError:
            outcomes.append("reset")
    for s in slow:
        s.close()
    assert outcomes[-1] == "refused" and "reset" not in outcomes, outcomes


def test_workers_stop_when_their_supervisor_is_killed(
        broker_factory: type[BrokerProcess], tmp_path: Path) -> None:
    """kill -9 of the supervisor used to leave its workers serving the port, so a new broker
    could not start there."""
    broker = broker_factory(f"sqlite:///{tmp_path / 'w.db'}", "--cluster", "2", log_dir=tmp_path).start()
    deadline = time.monotonic() + 10
    while len(workers := broker.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) == 2
    assert broker.proc is not None
    broker.proc.kill()
    broker.proc.wait(timeout=5)
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(broker.url + "/healthz", timeout=2)


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an orphan is reaped by init, not by us)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover
        return os.path.exists(f"/proc/{pid}")
