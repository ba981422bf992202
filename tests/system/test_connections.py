"""Connections that cannot lock clients out, against a real broker process (the limits
live in the HTTP server's protocol, which only a real socket exercises): header, body and
keep-alive timeouts, the header size limit, the connection cap, and malformed HTTP answered
with the error envelope."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BrokerProcess

LIMITS = ("--header-timeout", "1", "--body-timeout", "1", "--keep-alive-timeout", "1",
          "--max-header-bytes", "4096", "--max-connections", "20")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    folder = tmp_path_factory.mktemp("limits")
    b = BrokerProcess(folder / "wonderq.db", *LIMITS, log_dir=folder).start()
    yield b
    b.stop()
    assert "Traceback" not in b.log.read_text()


def connect(broker: BrokerProcess) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    return s


def read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def envelope(raw: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body)["error"]


def test_a_connection_that_sends_nothing_is_closed(broker: BrokerProcess) -> None:
    with connect(broker) as s:
        started = time.monotonic()
        status, error = envelope(read_all(s))
        assert 0.8 < time.monotonic() - started < 3
    assert status == 408 and error["code"] == "request_timeout" and "header_timeout" in error["message"]


def test_slowloris_headers_are_cut_off(broker: BrokerProcess) -> None:
    with connect(broker) as s:
        started = time.monotonic()
        s.sendall(b"GET /queues HTTP/1.1\r\nHost: localhost\r\n")
        try:
            for _ in range(20):  # a header line every 0.2 s, never finishing
                time.sleep(0.2)
                s.sendall(b"X-Slow: 1\r\n")
        except OSError:
            pass  # closed on us: that is the point
        raw = read_all(s)
        assert time.monotonic() - started < 3
    assert envelope(raw)[0] == 408


def test_a_body_that_never_comes_is_cut_off(broker: BrokerProcess) -> None:
    with connect(broker) as s:
        s.sendall(b"POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"queue_name\":")
        started = time.monotonic()
        status, error = envelope(read_all(s))  # no handler has the request yet: it is told why
        assert 0.8 < time.monotonic() - started < 3
    assert status == 408 and error["code"] == "request_timeout" and "body_timeout" in error["message"]


@pytest.mark.parametrize(("head", "status", "code"), [
    (b"Content-Length: 20000000\r\n\r\n", 400, "InvalidParameterValue"),  # over the largest request
    (b"Content-Length: 100\r\n\r\n{", 408, "RequestTimeout"),  # a body that never comes
])
def test_an_sqs_request_refused_unread_gets_sqs_own_error(
        broker: BrokerProcess, head: bytes, status: int, code: str) -> None:
    """boto3 reads __type and message; REST's envelope left it an empty message and code "413"."""
    with connect(broker) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.0\r\n"
                  b"X-Amz-Target: AmazonSQS.SendMessage\r\n" + head)
        raw = read_all(s)
    answer, _, body = raw.partition(b"\r\n\r\n")
    assert int(answer.split(b" ")[1]) == status, raw
    assert json.loads(body)["__type"].endswith("#" + code) and json.loads(body)["message"], raw
    assert b"x-amzn-query-error: " + code.encode() in answer, raw
    with connect(broker) as s:  # the Query protocol's form, whose Action is in the body never read
        s.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  + head)
        raw = read_all(s)
    assert b"<ErrorResponse" in raw and f"<Code>{code}</Code>".encode() in raw, raw


def test_an_idle_kept_alive_connection_is_closed(broker: BrokerProcess) -> None:
    with connect(broker) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        started = time.monotonic()
        raw = read_all(s)  # the answer, then the close once the connection has been idle 1 s
        assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b'{"status":"ok"}')
        assert 0.8 < time.monotonic() - started < 3


def test_oversized_headers_get_431(broker: BrokerProcess) -> None:
    with connect(broker) as s:
        s.sendall(b"GET /queues HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
        status, error = envelope(read_all(s))
    assert status == 431 and error["code"] == "header_too_large"


def test_oversized_headers_on_a_kept_alive_connection_get_431(broker: BrokerProcess) -> None:
    with connect(broker) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /queues HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
        raw = read_all(s)
    assert b"431" in raw.split(b"\r\n")[0] or b"HTTP/1.1 431" in raw


def test_malformed_http_gets_the_envelope(broker: BrokerProcess) -> None:
    with connect(broker) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, error = envelope(read_all(s))
    assert status == 400 and error["code"] == "bad_request"


def test_the_connection_cap_refuses_clearly_and_recovers(broker: BrokerProcess) -> None:
    idle = [connect(broker) for _ in range(25)]  # more than the cap of 20
    try:
        time.sleep(0.2)
        with connect(broker) as extra:  # answered at once, before it even sends a request
            status, error = envelope(read_all(extra))
        assert status == 503 and error["code"] == "too_many_connections"
    finally:
        for s in idle:
            s.close()
    assert served_again(broker)


def test_at_the_cap_an_idle_kept_alive_connection_makes_room(broker: BrokerProcess) -> None:
    """Clients that keep sockets alive between rare requests cannot fill the cap: the oldest
    idle one is closed for a newcomer, as nginx reuses its idle keep-alive connections."""
    kept = [connect(broker) for _ in range(20)]  # the cap
    try:
        for s in kept:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert all(s.recv(65536).startswith(b"HTTP/1.1 200") for s in kept)  # idle now, kept alive 1 s
        with connect(broker) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert read_all(extra).startswith(b"HTTP/1.1 200")
        kept[0].settimeout(0.3)  # well inside the 1 s keep-alive: a close now is the eviction's
        assert kept[0].recv(65536) == b""  # the oldest was closed for it
        kept[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")  # the newest was not
        assert kept[-1].recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for s in kept:
            s.close()


def served_again(broker: BrokerProcess, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(broker.url + "/healthz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def test_idle_sockets_cannot_lock_clients_out(broker: BrokerProcess, tmp_path: Path) -> None:
    """Sockets that never send a request hold a slot for at most the header timeout."""
    hogs = [connect(broker) for _ in range(20)]  # the cap, and they never send or close
    try:
        with connect(broker) as extra:
            assert envelope(read_all(extra))[0] == 503  # full now
        assert served_again(broker)  # the broker closed them after the header timeout
    finally:
        for s in hogs:
            s.close()


def test_a_client_that_reads_nothing_is_cut_off(broker: BrokerProcess) -> None:
    """Its unsent answers would stay in the broker's memory for as long as it stayed."""
    name = f"big-{time.monotonic_ns()}"
    with httpx.Client(base_url=broker.url) as c:
        assert c.post("/queues", json={"name": name}).status_code == 200
        for _ in range(8):  # an answer of 7.2 MB: more than the kernel's socket buffers hold
            assert c.post("/messages", json={"queue_name": name, "body": "x" * 900_000}).status_code == 200
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with s:
        s.connect(("127.0.0.1", broker.port))
        s.sendall(f"GET /queues/{name}/messages?size=10 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        time.sleep(3)  # --body-timeout 1 with nothing taken
        s.settimeout(5)
        got = 0
        with pytest.raises(ConnectionResetError):
            while chunk := s.recv(65536):
                got += len(chunk)
            raise ConnectionResetError("closed")  # an orderly close would do as well
        assert got < 7_000_000  # cut off, not the whole answer
