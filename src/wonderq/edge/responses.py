"""What a handler returns: a :class:`Response` (status, content type, extra
headers, body) or a :class:`Stream`; the bytes of each on HTTP/1.1; and the REST
envelope for errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import orjson

from wonderq.edge.requests import Send
from wonderq.errors import WonderQError

Headers = Sequence[tuple[bytes, bytes]]
JSON = b"application/json"
RETRY_AFTER = (b"retry-after", b"1")
STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}


@dataclass(slots=True)  # not frozen: made for every request, and a frozen init costs twice as much
class Response:
    body: bytes
    status: int = 200
    content_type: bytes = JSON
    headers: Headers = ()

    def extra_headers(self) -> Headers:
        """The headers beyond content type and length (a 503 says when to retry)."""
        return (*self.headers, RETRY_AFTER) if self.status == 503 else self.headers

    def encode(self, head_only: bool, keep_alive: bool) -> bytes:
        """The whole answer on HTTP/1.1 (``head_only``: without the body, as HEAD gets it)."""
        body = self.body
        lines = [STATUS_LINES[self.status], b"content-type: ", self.content_type,
                 b"\r\ncontent-length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in self.extra_headers():
            lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
        if not head_only:
            lines.append(body)
        return b"".join(lines)

    async def send(self, send: Send) -> None:
        headers = [(b"content-type", self.content_type), (b"content-length", str(len(self.body)).encode()),
                   *self.extra_headers()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


@dataclass(frozen=True, slots=True)
class Stream:
    """A response sent chunk by chunk as the iterator yields (chunked encoding)."""

    chunks: AsyncIterator[bytes]
    content_type: bytes = b"text/plain; charset=utf-8"
    status: int = 200

    def head(self, keep_alive: bool) -> bytes:
        """The status line and headers on HTTP/1.1; chunks follow."""
        return b"".join((STATUS_LINES[self.status], b"content-type: ", self.content_type,
                         b"\r\ntransfer-encoding: chunked\r\n",
                         b"\r\n" if keep_alive else b"connection: close\r\n\r\n"))

    async def send(self, send: Send) -> None:
        start = [(b"content-type", self.content_type)]
        await send({"type": "http.response.start", "status": self.status, "headers": start})
        async for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def json(payload: object, status: int = 200, headers: Headers = ()) -> Response:
    return Response(orjson.dumps(payload), status, JSON, headers)


def raw(body: bytes, content_type: str) -> Response:
    return Response(body, 200, content_type.encode())


def error_envelope(exc: WonderQError) -> Response:
    """The REST error: ``{"error": {"code": ..., "message": ...}}`` with the error's status."""
    return json(exc.to_dict(), exc.status, exc.headers)
