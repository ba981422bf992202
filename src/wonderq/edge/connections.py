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


@dataclass(frozen=True, slots=True)
class Limits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 10_000


class LimitedProtocol(HttpToolsProtocol):
    """Set :attr:`limits` before the server starts (:func:`wonderq.edge.server.serve` does)."""

    limits: ClassVar[Limits] = Limits()
    refused: ClassVar[dict[str, int]] = {}
    reported_at: ClassVar[float] = 0.0

    _deadline: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _closed_by_us = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(TooManyConnections(
                f"the server holds its maximum of {self.limits.max_connections} connections; try again"
            ))
            return
        self._arm(self.limits.header_timeout, "header_timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closed_by_us:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            if not self._closed_by_us:
                self._refuse(BadRequest(f"malformed HTTP request: {exc}"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm(self.limits.header_timeout, "header_timeout")

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._arm(self.limits.body_timeout, "body_timeout")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # -- the limits -------------------------------------------------------------

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.limits.max_header_bytes:
            self._refuse(HeaderTooLarge(
                f"request line and headers are over {self.limits.max_header_bytes} bytes"
            ))
            raise HeaderTooLarge("headers too large")  # stops the parser

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, what, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, what: str, seconds: float) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete and what == "header_timeout":
            return  # a response is under way (a long poll): the request itself was complete
        phase = "headers" if what == "header_timeout" else "body"
        self._refuse(RequestTimeout(f"the request's {phase} did not arrive within {seconds:g} s ({what})"))

    def _refuse(self, error: WonderQError) -> None:
        """Answer with the error envelope and close the connection."""
        self._disarm()
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
