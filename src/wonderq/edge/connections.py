"""Connections that cannot lock clients out: uvicorn's httptools protocol with
the limits it lacks.

- A request's headers must arrive within ``header_timeout`` seconds of the
  connection opening (or of the first byte of the next request on a kept-alive
  one), and its body within ``body_timeout`` of the headers; otherwise the
  connection is closed with a 408. An idle kept-alive connection is closed after
  ``keep_alive_timeout`` (uvicorn's own timer).
- Request line and headers together may be at most ``max_header_bytes`` (431).
- At most ``max_connections`` are open at once; one more is answered 503 and
  closed at once, so descriptors never run out (the limit is set below the
  process's descriptor limit, which :func:`wonderq.edge.server.raise_file_limit`
  raises to the hard limit).
- Malformed HTTP gets the JSON error envelope, like every other error.

Each refusal is counted, and a summary is logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from http import HTTPStatus
from typing import ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from wonderq.errors import BadRequest, HeaderTooLarge, RequestTimeout, TooManyConnections, WonderQError

log = logging.getLogger("wonderq.edge")
REPORT_EVERY = 60.0  # seconds between summaries of refused connections
LINGER = 1.0  # seconds a refused connection stays half-open, so its answer is read
SWEEP_EVERY = 0.25  # seconds between looks at every connection's deadline


@dataclass(frozen=True, slots=True)
class Limits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 10_000


IDLE, HEADERS, BODY = 0, 1, 2  # what a connection is waiting for; IDLE: nothing of ours


class LimitedProtocol(HttpToolsProtocol):
    """Set :attr:`limits` before the server starts (:func:`wonderq.edge.server.serve` does).

    No timer per request: each connection notes when its current phase began, and
    one sweep four times a second closes those past their deadline. The sweep looks
    only at the connections waiting for headers or a body (:attr:`timed`), never at
    the idle kept-alive ones: swept too, 9,900 of them cost a sender 11-19 % of its
    rate (bench.py's ``connections``); so a request costs a few attribute writes and
    two dict operations, and an idle connection nothing.
    """

    limits: ClassVar[Limits] = Limits()
    refused: ClassVar[dict[str, int]] = {}
    reported_at: ClassVar[float] = 0.0
    _sweeper: ClassVar[asyncio.Task[None] | None] = None
    timed: ClassVar[dict[LimitedProtocol, None]] = {}  # in HEADERS or BODY: what the sweep looks at

    _phase = IDLE
    _since = 0.0
    _header_bytes = 0
    _closed_by_us = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_sweeper()
        if len(self.connections) > self.limits.max_connections:
            self._refuse(TooManyConnections(
                f"the server holds its maximum of {self.limits.max_connections} connections; try again"
            ))
            return
        self._phase, self._since = HEADERS, self.loop.time()
        self.timed[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.timed.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closed_by_us:
            return
        self._unset_keepalive_if_required()
        if self._phase != BODY:  # headers of this request, or the start of the next one
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            if not self._closed_by_us:
                self._refuse(BadRequest(f"malformed HTTP request: {exc}"))
            return
        if self._phase == HEADERS and self._header_bytes > self.limits.max_header_bytes:
            self._refuse(HeaderTooLarge(f"request line and headers are over {self.limits.max_header_bytes} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase != HEADERS:  # the next request on a kept-alive connection
            self._phase, self._since = HEADERS, self.loop.time()
            self.timed[self] = None

    def on_headers_complete(self) -> None:
        limit = self.limits.max_header_bytes
        if self._header_bytes > limit and len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > limit:
            self._refuse(HeaderTooLarge(f"request line and headers are over {limit} bytes"))
            raise HeaderTooLarge("headers too large")  # stops the parser
        self._phase, self._since = BODY, self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = IDLE  # the app has the request; uvicorn's keep-alive timer covers idleness
        self.timed.pop(self, None)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._header_bytes = 0

    # -- the sweep ----------------------------------------------------------------

    def _start_sweeper(self) -> None:
        cls = type(self)
        if cls._sweeper is None or cls._sweeper.done():
            cls._sweeper = self.loop.create_task(cls._sweep(cls.timed))

    @classmethod
    async def _sweep(cls, connections: Collection[LimitedProtocol]) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = asyncio.get_running_loop().time()
            for conn in list(connections):
                if conn._phase == HEADERS and now - conn._since > cls.limits.header_timeout:
                    conn._refuse(RequestTimeout(
                        f"the request's headers did not arrive within {cls.limits.header_timeout:g} s"
                        " (header_timeout)"))
                elif conn._phase == BODY and now - conn._since > cls.limits.body_timeout:
                    conn._refuse(RequestTimeout(
                        f"the request's body did not arrive within {cls.limits.body_timeout:g} s (body_timeout)"))

    def _refuse(self, error: WonderQError) -> None:
        """Answer with the error envelope and close the connection."""
        self._phase = IDLE
        self.timed.pop(self, None)
        self._closed_by_us = True
        type(self).refused[error.code] = type(self).refused.get(error.code, 0) + 1
        self._report()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # a request in progress: its app sees a disconnect
            self.transport.close()
            return
        body = orjson.dumps(error.to_dict())
        head = (f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        self.transport.write(head + body)
        # Half-close now, close a moment later: closing with the client's request still
        # unread would reset the connection before the client reads why.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)

    @classmethod
    def _report(cls) -> None:
        now = time.monotonic()
        if now - cls.reported_at < REPORT_EVERY:
            return
        cls.reported_at = now
        counts = ", ".join(f"{n} {code}" for code, n in sorted(cls.refused.items()))
        log.warning("connections refused or closed so far: %s", counts)
