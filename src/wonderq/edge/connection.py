"""One HTTP/1.1 connection, served here on httptools: an app's requests without ASGI's
dicts, tasks and per-message awaits, and the limits that hold against abuse.

Why not uvicorn: on one core its ASGI cycle cost a trivial handler ~3 times a bare
httptools protocol (bench/README.md, "The HTTP edge"), more than any broker verb
costs. Each request here is parsed by httptools' callbacks into a
:class:`~wonderq.edge.requests.Request` with its whole body, answered by
:meth:`App.respond <wonderq.edge.app.App.respond>` and written in one call.
Pipelined requests are answered in order; a client that hangs up wakes
``Request.disconnected()`` (the long poll's cue). One that only half-closes (sends
its EOF) wakes it too, but still gets the answers to the requests it completed.

It holds the limits of :mod:`wonderq.edge.limits` (timeouts, sizes, the
connection cap, the memory budget), and:

- A refusal (malformed HTTP, a limit) is answered after the requests before it on
  the connection: once the request's headers are in, in the format of the API they
  route to (an SQS client gets SQS's error), else in the REST error envelope.
- A request's headers pass :func:`wonderq.edge.framing.refusal` (one ``Host``,
  ``chunked`` the only transfer coding, no upgrade with a body); an absolute-form
  target's authority stands in for ``Host``. There are no protocol upgrades:
  ``Upgrade`` is ignored, and the connection goes on in HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

import httptools

from wonderq.edge import framing
from wonderq.edge.deadlines import Deadlines
from wonderq.edge.limits import Limits, Refusals
from wonderq.edge.logs import log_request
from wonderq.edge.requests import Message, Request, first_values
from wonderq.edge.responses import Response, Stream, error_envelope
from wonderq.errors import (
    BadRequest,
    HeaderTooLarge,
    RequestTimeout,
    TooManyConnections,
    Unavailable,
    WonderQError,
)
from wonderq.settings import MAX_REQUEST_BYTES

if TYPE_CHECKING:
    from wonderq.edge.app import App

log = logging.getLogger("wonderq.edge")
LINGER = 1.0  # seconds a refused connection stays half-open, so its answer is read
MAX_PIPELINED = 16  # requests read ahead of their answers before reading pauses
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
SMALL_CHUNK = 1024  # body chunks under this are gathered, so the body budget counts what they hold


class Shared(Protocol):
    """What a server's connections share (:class:`~wonderq.edge.connections.Connections`)."""

    app: App
    limits: Limits
    access_log: bool
    open: set[Connection]
    idle: dict[Connection, None]  # kept alive between requests, oldest first
    tasks: set[asyncio.Task[None]]  # each connection's answering, while it runs
    deadlines: Deadlines[Connection]
    refusals: Refusals


IDLE, HEADERS, BODY, KEPT = 0, 1, 2, 3  # waiting for: nothing of ours, headers, a body, a next request


class Connection(asyncio.Protocol):
    """One client's connection: parse, queue, answer in order."""

    transport: asyncio.Transport

    def __init__(self, shared: Shared) -> None:
        self.shared, self.app = shared, shared.app
        self.parser = httptools.HttpRequestParser(self)
        self.phase = IDLE
        self.due = 0.0  # time.monotonic() when the phase's timeout ends (HEADERS, BODY, KEPT)
        self.header_bytes = self.body_bytes = 0
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.first: dict[bytes, bytes] = {}  # each header's first value, made once the headers are in
        self.body: list[bytes | bytearray] = []  # small chunks gathered into a bytearray (on_body)
        self.waiting: deque[tuple[Request, bytes, bool, int]] = deque()  # parsed, not yet answered; its body bytes
        self.busy = self.closing = self.refused = self.paused = False
        self.last = False  # the request answered last closes the connection: read nothing more
        self.exact = False  # this read ended a request: one whose headers end in it too is counted exactly
        self.ended = 0  # requests this read ended (their bytes are not the next one's)
        self.begun = False  # this request began in a read that ended another: counted exactly too
        self.error: Response | None = None  # the refusal sent after the requests before it are answered
        self.gone: asyncio.Future[None] | None = None  # made when a handler waits for a hang-up
        self.writable: asyncio.Future[None] | None = None  # made while the transport's buffer is full

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.shared.open.add(self)
        limit = self.shared.limits.max_connections
        if len(self.shared.open) > limit and self.shared.idle:  # the oldest idle one makes room, as nginx's
            oldest = next(iter(self.shared.idle))
            del self.shared.idle[oldest]
            oldest.transport.close()
        elif len(self.shared.open) > limit:
            self.refuse(TooManyConnections(f"the server holds its maximum of {limit} connections; try again"))
            return
        self.time(HEADERS)
        self.shared.deadlines.arm(self, self.due)

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.open.discard(self)
        self.shared.idle.pop(self, None)
        self.shared.deadlines.discard(self)
        self.phase, self.closing = IDLE, True
        self.drop_body()
        self.app.budget.held -= sum(entry[3] for entry in self.waiting)  # never to be answered
        self.waiting.clear()
        self.stop_waiting()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.refused or self.last:
            return
        if self.phase != BODY:  # headers of this request, or the start of the next one
            self.header_bytes += len(data)
        try:
            self.feed(data)
        except httptools.HttpParserError as exc:
            if not self.refused and not self.last:
                self.refuse(BadRequest(f"malformed HTTP request: {exc}"))
            return
        if self.ended:  # this read ended requests: the one begun after them holds the rest of it
            ended, self.ended, self.exact = self.ended, 0, False
            self.begun = self.phase == HEADERS  # and it is counted exactly once its headers are in
            self.header_bytes = self.rest_of(data, ended) if self.begun else 0
        if self.phase == HEADERS and self.header_bytes > self.shared.limits.max_header_bytes:
            limit = self.shared.limits.max_header_bytes
            self.refuse(HeaderTooLarge(f"request line and headers are over {limit} bytes"))
        elif self.phase == HEADERS or self.phase == BODY:  # a request still arriving
            self.shared.deadlines.arm(self, self.due)

    def rest_of(self, data: bytes, ended: int) -> int:
        """About the bytes of ``data`` past the ``ended`` requests it ended (the newest waiting)."""
        done = itertools.islice(reversed(self.waiting), ended)
        return max(0, len(data) - sum(framing.sent_size(request, path) for request, path, _, _ in done))

    def feed(self, data: bytes) -> None:
        """Parse ``data``. llhttp ends a request that asks to upgrade the protocol at its
        headers and reads nothing after it (one with a body is refused: on_headers_complete).
        There are no upgrades here, so a fresh parser goes on with the rest as HTTP/1.1."""
        while True:
            try:
                self.parser.feed_data(data)
                return
            except httptools.HttpParserUpgrade as exc:
                self.parser = httptools.HttpRequestParser(self)
                data = data[exc.args[0]:]
                if not data or self.refused or self.last:
                    return

    def eof_received(self) -> bool:
        """The client sends no more: answer the requests it completed (a send it made
        must be acknowledged, or a retry duplicates it), then close."""
        if self.gone is None:  # a hang-up looks the same: a long poll stops rather than claim for nobody
            self.gone = asyncio.get_running_loop().create_future()
        if not self.gone.done():
            self.gone.set_result(None)
        if not self.busy or self.transport.get_extra_info("sslcontext") is not None:
            return False  # nothing to answer (a request only begun never ends); TLS shuts down anyway
        self.shared.deadlines.discard(self)  # one begun must not time out and cut the answers short
        self.phase, self.last = IDLE, True  # read nothing more: the last answer closes
        self.drop_body()
        return True

    def stop_waiting(self) -> None:
        """A handler waiting for the client to hang up (a long poll) stops waiting now."""
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)

    def drop_body(self) -> None:
        """The request still arriving will never be answered: its body's bytes go back to
        the budget."""
        self.app.budget.held -= self.body_bytes
        self.body_bytes, self.body = 0, []

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    # -- httptools' callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], []
        if self.phase != HEADERS:  # the next request on a kept-alive connection
            self.time(HEADERS)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        limit = self.shared.limits.max_header_bytes
        if (self.header_bytes > limit or self.exact or self.begun) and \
                len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > limit:
            self.refuse(HeaderTooLarge(f"request line and headers are over {limit} bytes"))
            raise HeaderTooLarge("headers too large")  # stops the parser
        self.exact = self.begun = False
        self.time(BODY)
        first = self.first = first_values(self.headers)  # the Request's own lookups use it too
        if (error := framing.refusal(self.headers, first, self.parser)) is not None:
            self.refuse(error)
            raise error  # stops the parser
        expect = first.get(b"expect")
        if expect is not None and expect.lower() == b"100-continue" and not self.busy:
            self.transport.write(CONTINUE)  # behind another request the client's own wait sends the body

    def on_body(self, chunk: bytes) -> None:
        budget = self.app.budget
        if self.body_bytes + len(chunk) > MAX_REQUEST_BYTES:
            self.refuse(framing.too_large())
        elif budget.held + len(chunk) > budget.limit:
            self.refuse(Unavailable(f"the server holds {budget.held} bytes of unfinished requests already; retry"))
        else:
            budget.held += len(chunk)
            self.body_bytes += len(chunk)
            if len(chunk) >= SMALL_CHUNK or not self.body:  # a body in one read: kept as it came
                self.body.append(chunk)
            elif type(last := self.body[-1]) is bytearray:
                last += chunk  # a bytes object each would cost ~40 bytes more than a tiny chunk
            else:
                self.body[-1] = bytearray(last) + chunk
            return
        raise BadRequest("stop")  # stops the parser

    def on_message_complete(self) -> None:
        self.phase = IDLE  # the app has the request
        try:
            request, raw_path = self.request()
        except httptools.HttpParserInvalidURLError:
            self.refuse(BadRequest("malformed HTTP request: the URL cannot be parsed"))
            raise
        keep_alive = self.parser.should_keep_alive()
        self.last = not keep_alive
        self.waiting.append((request, raw_path, keep_alive, self.body_bytes))
        if len(self.waiting) > MAX_PIPELINED and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        if not self.busy:
            self.busy = True
            task = asyncio.get_running_loop().create_task(self.answer())
            self.shared.tasks.add(task)
            task.add_done_callback(self.shared.tasks.discard)
        self.body_bytes = self.header_bytes = 0
        self.exact, self.ended = True, self.ended + 1

    def request(self) -> tuple[Request, bytes]:
        """The request read, and its raw path (HttpParserInvalidURLError if its URL is none)."""
        url = httptools.parse_url(self.url)
        if url.host is not None:  # absolute-form: its authority is the Host
            self.first[b"host"] = framing.authority(url.host, url.port)
        raw_path = url.path or b"/"
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        body = self.body[0] if len(self.body) == 1 and type(self.body[0]) is bytes else b"".join(self.body)
        return Request(self.parser.get_method().decode("ascii"), path, url.query or b"", self.headers, body,
                       self.receive, {}, None, self.first), raw_path

    # -- answering ------------------------------------------------------------------

    async def answer(self) -> None:
        """Answer the waiting requests in order, while the connection stays open."""
        try:
            while self.waiting and not self.transport.is_closing():
                if not await self.answer_one(*self.waiting.popleft()):
                    self.transport.close()
                    break
        except Exception:
            log.exception("answering a request failed")  # the response is cut short: the client is told so
            self.transport.close()
        finally:
            self.busy = False
        if self.error is not None and not self.transport.is_closing():
            self.close_with(self.error)
            return
        if self.last and not self.transport.is_closing():  # the EOF came as the last answer went out
            self.transport.close()
        if not self.transport.is_closing():
            if self.paused:
                self.transport.resume_reading()
                self.paused = False
            if self.phase == IDLE:
                self.time(KEPT)
                self.shared.deadlines.arm(self, self.due)

    async def answer_one(self, request: Request, raw_path: bytes, keep_alive: bool, held: int) -> bool:
        """Answer one request; whether the connection stays open for the next."""
        started = time.perf_counter()
        try:
            response, endpoint, changes = await self.app.respond(request, raw_path)
        finally:
            self.app.budget.held -= held
        # after an EOF the last answer closes; after a refusal, the refusal does
        keep_alive = keep_alive and not self.closing and not (self.last and not self.waiting and not self.error)
        if self.transport.is_closing():
            return False
        if isinstance(response, Stream):
            await self.stream(response, keep_alive)
        else:
            self.transport.write(response.encode(request.method == "HEAD", keep_alive))
        self.app.finished(endpoint, response.status, changes, started)
        if self.shared.access_log:
            log_request(self.transport.get_extra_info("peername"), request, self.parser.get_http_version(),
                        response.status)
        if self.writable is not None:  # a client that does not read: nothing more until it does
            await self.drained()
        return keep_alive

    async def stream(self, response: Stream, keep_alive: bool) -> None:
        self.transport.write(response.head(keep_alive))
        async for chunk in response.chunks:
            if self.transport.is_closing():
                return
            if chunk:
                self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            if self.writable is not None:
                await self.drained()
        if not self.transport.is_closing():
            self.transport.write(b"0\r\n\r\n")

    async def drained(self) -> None:
        """Wait while the transport's buffer is full. A client that takes none of it for
        ``body_timeout`` seconds is cut off: each answer it never reads would stay in memory."""
        size = self.transport.get_write_buffer_size()
        while self.writable is not None and not self.writable.done():  # done: the connection is lost
            try:
                await asyncio.wait_for(asyncio.shield(self.writable), self.shared.limits.body_timeout)
            except TimeoutError:
                left = self.transport.get_write_buffer_size()
                if left >= size:
                    self.shared.refusals.count(RequestTimeout("the client took none of an answer within body_timeout"))
                    self.transport.abort()
                    return
                size = left

    async def receive(self) -> Message:
        """ASGI's ``receive`` as far as a handler needs it: once the client has hung up."""
        if self.gone is None:
            self.gone = asyncio.get_running_loop().create_future()
            if self.transport.is_closing() or self.closing:  # gone, or the server stopping
                self.gone.set_result(None)
        await asyncio.shield(self.gone)
        return {"type": "http.disconnect"}

    # -- limits ---------------------------------------------------------------------

    def time(self, phase: int) -> None:
        """Enter ``phase``, whose timeout starts now (:class:`Deadlines` asks when it ends)."""
        limits = self.shared.limits
        if phase == KEPT:
            self.shared.idle[self] = None
        elif self.phase == KEPT:
            self.shared.idle.pop(self, None)
        self.phase = phase
        seconds = limits.header_timeout if phase == HEADERS else limits.body_timeout if phase == BODY else \
            limits.keep_alive_timeout
        self.due = time.monotonic() + seconds

    def expired(self, now: float) -> None:
        if self.phase == IDLE:
            return  # a handler has the request: no deadline until it is answered
        if self.due > now:
            self.shared.deadlines.arm(self, self.due)
        elif self.phase == HEADERS:
            timeout = self.shared.limits.header_timeout
            self.refuse(RequestTimeout(f"the request's headers did not arrive within {timeout:g} s (header_timeout)"))
        elif self.phase == BODY:
            timeout = self.shared.limits.body_timeout
            self.refuse(RequestTimeout(f"the request's body did not arrive within {timeout:g} s (body_timeout)"))
        elif self.phase == KEPT:
            self.transport.close()

    def refuse(self, error: WonderQError) -> None:
        """Answer with the error and close the connection; the requests before it first (a
        lost acknowledgement makes a client retry, and duplicate a send). Once its headers
        are in, the API they route to renders it (an SQS client reads SQS's own error)."""
        self.shared.deadlines.discard(self)
        self.drop_body()  # never to be answered
        answer = error_envelope(error)
        if self.phase == BODY:
            try:
                answer = self.app.refusal(*self.request(), error)
            except httptools.HttpParserInvalidURLError:
                pass  # no URL, no route: the envelope says it
            except Exception:  # a bug in routing: the envelope still tells the client why
                log.exception("rendering a refusal failed")
        self.phase, self.refused = IDLE, True
        self.shared.refusals.count(error)
        if self.busy:
            self.error, self.last = answer, True  # answer() sends it after them
            if not self.paused:  # nor is anything more it sends read
                self.transport.pause_reading()
                self.paused = True
        else:
            self.close_with(answer)

    def close_with(self, answer: Response) -> None:
        self.transport.write(answer.encode(False, False))
        # Half-close now, close a moment later: closing with the client's request still
        # unread would reset the connection before the client reads why.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER, self.transport.close)

