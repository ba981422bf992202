"""A client that half-closes (sends its EOF) after its requests still gets their answers,
against a real broker process (the EOF arrives only on a real socket; uvloop's, as served):
a send is acknowledged and stored once, pipelined requests are answered in order, a long
poll ends at once and claims nothing, and a request cut short gets no answer and no error.
Two tests feed the protocol by hand (test_connections' stand-in transport): the body
budget returned, and an EOF that comes while the last answer is being written."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import pytest

from tests.conftest import BrokerProcess, unique
from tests.edge.test_connections import APP, connect, post
from wonderq.edge.connection import MAX_PIPELINED

READ_WITHIN = 5.0  # seconds a test waits for the server to finish answering and close


@pytest.fixture(scope="module")
def broker(sqlite_module_broker: BrokerProcess) -> BrokerProcess:
    return sqlite_module_broker


@pytest.fixture
def queue(broker: BrokerProcess) -> str:
    name = unique("halfclose")
    assert httpx.post(broker.url + "/queues", json={"name": name}, timeout=10).status_code == 200
    return name


def half_closed(broker: BrokerProcess, data: bytes, pause: float = 0.0) -> tuple[bytes, float]:
    """Send ``data``, wait ``pause``, half-close; everything read until the server closes,
    and the seconds that took after the half-close. Without a pause the data and the FIN
    leave in one segment (corked), so the server reads them at once, as from ``socat``."""
    with socket.create_connection(("127.0.0.1", broker.port), timeout=READ_WITHIN) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.sendall(data)
        if pause:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)  # sent now
            time.sleep(pause)
        s.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        chunks = []
        while chunk := s.recv(65536):  # each read bounded by the socket's timeout
            chunks.append(chunk)
            assert time.monotonic() - started < READ_WITHIN, "the server did not close the connection"
        return b"".join(chunks), time.monotonic() - started


def responses(raw: bytes) -> list[tuple[int, dict[str, str], Any]]:
    """The answers in ``raw``, in order: status, headers, JSON body."""
    answers = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        length = int(headers["content-length"])
        answers.append((int(status_line.split(" ")[1]), headers, json.loads(rest[:length])))
        raw = rest[length:]
    return answers


def get(path: str, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (path.encode(), extra)


def send(queue: str, body: str) -> bytes:
    payload = json.dumps({"queue_name": queue, "body": body}).encode()
    return (b"POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))


def peek(broker: BrokerProcess, queue: str, size: int = 10) -> list[dict[str, Any]]:
    r = httpx.get(f"{broker.url}/queues/{queue}/messages", params={"size": size}, timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json())


def test_readyz_is_answered(broker: BrokerProcess) -> None:
    raw, _ = half_closed(broker, get("/readyz", close=True))
    [(status, headers, body)] = responses(raw)
    assert status == 200 and body == {"status": "ready"} and headers["connection"] == "close"


def test_a_send_is_acknowledged_and_stored_once(broker: BrokerProcess, queue: str) -> None:
    raw, _ = half_closed(broker, send(queue, "once"))
    [(status, headers, body)] = responses(raw)  # no Connection: close asked, so the EOF closes it
    assert status == 200 and headers["connection"] == "close"
    stored = peek(broker, queue)
    assert [(m["id"], m["body"]) for m in stored] == [(body["id"], "once")]


def test_pipelined_requests_are_answered_in_order(broker: BrokerProcess, queue: str) -> None:
    raw, _ = half_closed(broker, send(queue, "first") + get(f"/queues/{queue}/messages"))
    [(sent, kept, ack), (peeked, last, listed)] = responses(raw)
    assert sent == 200 and "connection" not in kept  # kept alive for the one after it
    assert peeked == 200 and last["connection"] == "close"
    assert [(m["id"], m["body"]) for m in listed] == [(ack["id"], "first")]  # answered after the send


def test_more_pipelined_requests_than_are_read_ahead(broker: BrokerProcess, queue: str) -> None:
    bodies = [f"m{i}" for i in range(MAX_PIPELINED + 4)]  # reading pauses; the EOF is read once it resumes
    raw, _ = half_closed(broker, b"".join(send(queue, body) for body in bodies))
    answers = responses(raw)
    assert [status for status, _, _ in answers] == [200] * len(bodies)
    ids = [ack["id"] for _, _, ack in answers]
    assert ids == sorted(ids) and [m["body"] for m in peek(broker, queue, len(bodies))] == bodies


@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["with-the-request", "while-it-waits"])
def test_a_long_poll_ends_at_the_eof_and_claims_nothing(broker: BrokerProcess, queue: str, pause: float) -> None:
    raw, took = half_closed(broker, get(f"/messages/consume?queue_name={queue}&wait_time=10"), pause)
    assert took < 3  # not the 10 s wait
    [(status, headers, body)] = responses(raw)
    assert status == 200 and body == [] and headers["connection"] == "close"
    r = httpx.post(broker.url + "/messages", json={"queue_name": queue, "body": "later"}, timeout=10)
    assert r.status_code == 200, r.text
    assert [m["state"] for m in peek(broker, queue)] == ["visible"]  # no parked poll took it
    r = httpx.get(broker.url + "/messages/consume", params={"queue_name": queue, "wait_time": 0}, timeout=10)
    assert [m["body"] for m in r.json()] == ["later"]


@pytest.mark.parametrize("partial", [
    b"GET /readyz HTTP/1.1\r\nHost: local",
    b"POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"queue_name":',
], ids=["headers", "body"])
def test_a_request_cut_short_is_closed_unanswered(broker: BrokerProcess, partial: bytes) -> None:
    logged = broker.log.stat().st_size
    raw, took = half_closed(broker, partial)
    assert raw == b"" and took < 3  # not the header or body timeout
    assert httpx.get(broker.url + "/healthz", timeout=10).status_code == 200
    new = broker.log.read_bytes()[logged:].decode()
    assert "ERROR" not in new and "Traceback" not in new, new


def test_a_request_cut_short_after_complete_ones(broker: BrokerProcess, queue: str) -> None:
    partial = b"POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{"
    raw, took = half_closed(broker, send(queue, "whole") + partial)
    [(status, headers, _)] = responses(raw)
    assert status == 200 and headers["connection"] == "close" and took < 3
    assert [m["body"] for m in peek(broker, queue)] == ["whole"]


async def test_a_request_cut_short_returns_its_body_budget() -> None:
    conn, transport = connect()
    conn.data_received(post(b"one") + post(b"two") + post(b"thr")[:-1])
    assert conn.eof_received() is True  # two to answer: the transport stays open for them
    await asyncio.sleep(0.1)
    assert transport.out.count(b"HTTP/1.1 200 OK") == 2 and transport.out.count(b"connection: close") == 1
    assert transport.closing and APP.budget.held == 0


async def test_an_eof_while_the_last_answer_is_written_closes() -> None:
    conn, transport = connect()
    conn.data_received(post(b"one"))
    conn.pause_writing()  # the client reads slowly: the answer waits on the buffer, kept alive
    await asyncio.sleep(0.05)
    assert transport.out.startswith(b"HTTP/1.1 200 OK") and b"connection: close" not in transport.out
    assert conn.eof_received() is True
    conn.resume_writing()
    for _ in range(100):  # a few loop turns; seconds at worst on a loaded machine
        if transport.closing:
            break
        await asyncio.sleep(0.01)
    assert transport.closing  # not kept alive for a request that can never come
