"""The HTTP/1.1 connection in this process, fed bytes through a stand-in transport:
pipelined requests answered in order, the body budget returned whatever happens,
nothing read after a request that closes the connection, paths percent-decoded,
and a handler's failure closing the connection instead of leaving it stuck."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wonderq.edge.app import App
from wonderq.edge.connections import Connection, Connections
from wonderq.edge.limits import Limits
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response, Stream, json
from wonderq.edge.routing import Api, Route


class Transport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.protocol: Connection | None = None

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing and self.protocol is not None:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return len(self.out)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


async def echo(req: Request) -> Response:
    await asyncio.sleep(0.01)
    return json({"path": req.path, "body": req.body.decode()})


async def broken() -> AsyncIterator[bytes]:
    yield b"a"
    raise RuntimeError("the stream failed")


async def streams(req: Request) -> Stream:
    return Stream(broken())


APP = App([Api([Route("POST", "/echo", echo), Route("GET", "/q/{name}", echo), Route("GET", "/stream", streams)])])


def connect(limits: Limits = Limits()) -> tuple[Connection, Transport]:  # noqa: B008 (frozen)
    conn = Connections(APP, limits)()
    transport = Transport()
    transport.protocol = conn
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def post(body: bytes, extra: bytes = b"") -> bytes:
    return b"POST /echo HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), body)


async def test_pipelined_requests_are_answered_in_order_and_return_their_budget() -> None:
    conn, transport = connect()
    conn.data_received(post(b"one") + post(b"two") + post(b"three"))
    await asyncio.sleep(0.1)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in transport.out.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b'{"path":"/echo","body":"one"}', b'{"path":"/echo","body":"two"}',
                      b'{"path":"/echo","body":"three"}']
    assert APP.budget.held == 0
    transport.close()


async def test_a_connection_lost_with_requests_waiting_returns_their_budget() -> None:
    conn, transport = connect()
    conn.data_received(post(b"one") + post(b"two") + post(b"thr"))
    transport.close()
    await asyncio.sleep(0.1)
    assert APP.budget.held == 0


async def test_nothing_is_read_after_a_request_that_closes_the_connection() -> None:
    conn, transport = connect()
    conn.data_received(post(b"last", b"Connection: close\r\n") + b"GET /q/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await asyncio.sleep(0.1)
    assert transport.out.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in transport.out
    assert transport.out.count(b"HTTP/1.1") == 1 and transport.closing


async def test_the_path_is_percent_decoded_and_routed_by_its_raw_segments() -> None:
    conn, transport = connect()
    conn.data_received(b"GET /q/a%20b HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await asyncio.sleep(0.1)
    assert transport.out.endswith(b'{"path":"/q/a b","body":""}')
    transport.close()


async def test_a_failing_response_closes_the_connection() -> None:
    conn, transport = connect()
    conn.data_received(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await asyncio.sleep(0.1)
    assert transport.closing and not conn.busy


async def test_headers_of_a_pipelined_request_count_against_the_limit() -> None:
    conn, transport = connect()
    big = b"x-big: " + b"a" * (Limits().max_header_bytes + 10) + b"\r\n"
    conn.data_received(b"GET /q/a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /q/b HTTP/1.1\r\nHost: localhost\r\n" + big
                       + b"\r\n")
    await asyncio.sleep(0.1)
    answers = transport.out.split(b"HTTP/1.1 ")[1:]  # /q/a's, then the refusal
    assert [a[:3] for a in answers] == [b"200", b"431"] and b"connection: close" in answers[1]
    assert b'"path":"/q/a"' in answers[0] and conn.refused


async def test_a_bad_request_behind_good_ones_is_refused_after_they_are_answered() -> None:
    conn, transport = connect()  # a lost acknowledgement would make the client send again
    conn.data_received(post(b"one") + post(b"two"))
    conn.data_received(b"BAD\r\n\r\n")
    await asyncio.sleep(0.1)
    answers = transport.out.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"200", b"200", b"400"], transport.out
    assert b"connection: close" not in answers[1] and b"connection: close" in answers[2]
    assert APP.budget.held == 0


async def test_a_refused_request_behind_others_gives_its_body_back_at_once() -> None:
    conn, transport = connect()
    conn.data_received(post(b"one") + b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + b"5\r\nhello\r\nZZ\r\n")  # a bad chunk size, after five bytes of body
    assert conn.busy and conn.refused and APP.budget.held == len(b"one")  # the first's, still in hand
    await asyncio.sleep(0.1)
    assert [a[:3] for a in transport.out.split(b"HTTP/1.1 ")[1:]] == [b"200", b"400"]
    assert APP.budget.held == 0


async def test_an_upgrade_is_ignored_and_the_next_request_still_read() -> None:
    conn, transport = connect()
    upgrade = b"Connection: Upgrade\r\nUpgrade: h2c\r\n"
    conn.data_received(b"GET /q/a HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % upgrade + post(b"after"))
    await asyncio.sleep(0.1)
    assert transport.out.count(b"HTTP/1.1 200") == 2 and transport.out.endswith(b'"body":"after"}')
    transport.close()


async def test_an_upgrade_with_a_body_is_refused_so_the_body_is_never_a_request() -> None:
    conn, transport = connect()
    smuggled = post(b"smuggled")
    conn.data_received(post(smuggled, b"Connection: Upgrade\r\nUpgrade: websocket\r\n"))
    await asyncio.sleep(0.1)
    assert transport.out.startswith(b"HTTP/1.1 400") and b"upgrade" in transport.out
    assert b"smuggled" not in transport.out and transport.out.count(b"HTTP/1.1 ") == 1


async def test_a_client_that_hangs_up_while_the_answer_waits_ends_the_wait() -> None:
    conn, transport = connect()
    conn.pause_writing()
    conn.data_received(post(b"one"))
    await asyncio.sleep(0.05)
    transport.close()
    await asyncio.sleep(0.1)
    assert not conn.busy  # the wait ended (it had spun on the lost connection's future)


async def test_a_client_that_reads_nothing_is_cut_off_after_the_body_timeout() -> None:
    conn, transport = connect(Limits(body_timeout=0.05))
    conn.pause_writing()  # the transport's buffer is full, and stays so
    conn.data_received(post(b"one"))
    await asyncio.sleep(0.3)
    assert transport.closing and not conn.busy


async def answer(data: bytes) -> bytes:
    conn, transport = connect()
    conn.data_received(data)
    await asyncio.sleep(0.05)
    transport.close()
    return bytes(transport.out)


@pytest.mark.parametrize(("head", "why"), [
    (b"GET /q/a HTTP/1.1\r\n", b"no Host header"),
    (b"GET /q/a HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n", b"more than one Host header"),
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n", b"only Transfer-Encoding"),
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
     b"only Transfer-Encoding"),
])
async def test_a_request_framed_against_rfc_9112_is_refused(head: bytes, why: bytes) -> None:
    """One Host on HTTP/1.1, and no transfer coding but chunked (a gzip would be ignored)."""
    out = await answer(head + b"\r\n3\r\nabc\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and why in out and b"HTTP/1.1 200" not in out, out


async def test_http_1_0_may_leave_out_host_and_chunked_alone_is_served() -> None:
    assert (await answer(b"GET /q/a HTTP/1.0\r\n\r\n")).startswith(b"HTTP/1.1 200")
    chunked = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert (await answer(chunked)).endswith(b'"body":"abc"}')


@pytest.mark.parametrize(("target", "status"), [
    (b"http://evil.example/q/a", b"403"), (b"http://evil.example:3213/q/a", b"403"),
    (b"http://localhost:3213/q/a", b"200"), (b"http://[::1]:3213/q/a", b"200"),
])
async def test_an_absolute_target_names_the_host_checked(target: bytes, status: bytes) -> None:
    """RFC 9112 3.2.2: the authority of an absolute-form target is the request's host,
    whatever Host says, so it is what the DNS-rebinding check sees."""
    out = await answer(b"GET %b HTTP/1.1\r\nHost: localhost\r\n\r\n" % target)
    assert out.startswith(b"HTTP/1.1 " + status), out


async def test_a_refusal_its_api_cannot_render_still_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering a refusal in its API's format runs routing inside httptools' callback: a bug
    there must not escape the parser, only cost the client the REST envelope."""
    def broken(*args: object) -> None:
        raise RuntimeError("a bug in routing")

    monkeypatch.setattr(APP, "refusal", broken)
    out = await answer(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413") and b'"payload_too_large"' in out, out


async def test_small_chunks_are_gathered_and_the_body_arrives_whole() -> None:
    """Tiny chunks are gathered into one buffer: a bytes object each held ~27 times what the body
    budget counted (two-byte chunks: 4 GB of memory for 192 MB counted). Mixed with large ones,
    the body still arrives in order."""
    chunks = [b"ab"] * 3000 + [b"x" * 2000] + [b"c"] * 5 + [b"y" * 1024]
    body = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    reply = await answer(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert reply.endswith(b'"body":"' + b"".join(chunks) + b'"}')


async def test_pipelined_requests_each_under_the_header_limit_are_not_refused() -> None:
    """Three requests of 60 KB headers each in one read (the limit is 64 KB): the bytes of the
    ones that ended in the read were counted against the one still arriving, which got a 431."""
    conn, transport = connect()
    big = b"X-Big: " + b"a" * 60_000 + b"\r\n"
    data = post(b"one", big) + post(b"two", big) + post(b"three", big)
    conn.data_received(data[:-100])  # the third's end comes in the next read
    conn.data_received(data[-100:])
    await asyncio.sleep(0.1)
    assert transport.out.count(b"HTTP/1.1 200 OK") == 3, transport.out[:300]
    conn.data_received(post(b"four", b"X-Big: " + b"a" * 70_000 + b"\r\n"))  # over it: still refused
    await asyncio.sleep(0.1)
    assert b"431" in transport.out.split(b"HTTP/1.1 200 OK")[-1]
    transport.close()


async def test_a_header_begun_after_a_pipelined_request_is_still_bounded_as_it_comes() -> None:
    """The bytes a read holds past the requests it ended are the next one's: a header that never
    ends is refused once they pass the limit, not held until the header timeout."""
    conn, transport = connect()
    conn.data_received(post(b"one") + b"POST /echo HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 70_000)
    await asyncio.sleep(0.05)
    assert b"431" in transport.out.split(b"HTTP/1.1 200 OK")[-1]
    transport.close()
    conn, transport = connect()  # three of 60 KB in one read, the fourth begun: none refused
    big = b"X-Big: " + b"a" * 60_000 + b"\r\n"
    data = post(b"1", big) + post(b"2", big) + post(b"3", big) + post(b"4", big)
    conn.data_received(data[:-100])
    conn.data_received(data[-100:])
    await asyncio.sleep(0.1)
    assert transport.out.count(b"HTTP/1.1 200 OK") == 4, transport.out[-300:]
    transport.close()
