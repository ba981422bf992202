"""A request as handlers see it: method, path, the route's arguments, headers,
the whole body, and parameters parsed on first use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import parse_qsl

import orjson

from wonderq.errors import BadRequest, PayloadTooLarge, Unavailable
from wonderq.settings import MAX_REQUEST_BYTES

# The ASGI callables, typed as far as this edge relies on them.
Message = MutableMapping[str, object]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Scope(TypedDict, total=False):
    """The keys of an ASGI scope this edge reads (``http`` and ``lifespan``)."""

    type: str
    method: str
    path: str
    raw_path: bytes  # as sent: %2F still encoded
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
Params = dict[str, object]


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    receive: Receive
    args: dict[str, str]  # the route's {placeholders}, set once routed
    _params: Params | None = None
    _first: dict[bytes, bytes] | None = None  # each header's first value, made on the first lookup

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header (``name`` in lower case). A request is asked for
        several (Host, Content-Length, Authorization, Origin, ...): one dict serves them all."""
        if self._first is None:
            self._first = first_values(self.headers)
        return self._first.get(name)

    @property
    def params(self) -> Params:
        """Query string, overlaid by a JSON object or form body."""
        if self._params is None:
            params: Params = form(self.query, "query string") if self.query else {}
            if self.body:
                params.update(self._parse_body())
            self._params = params
        return self._params

    def _parse_body(self) -> Params:
        if self.body[:1] != b"{" and self.is_form():  # a JSON object needs no header lookup
            return form(self.body, "form body")
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise BadRequest("request body must be a JSON object")
        return value

    def is_form(self) -> bool:
        content_type = self.header(b"content-type")
        return content_type is not None and b"form-urlencoded" in content_type

    async def disconnected(self) -> None:
        """Return once the client has hung up: an awaitable for the long poll."""
        while (await self.receive())["type"] != "http.disconnect":
            pass


def first_values(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Each header's first value: of repeated names, the first wins."""
    return dict(reversed(headers))


def form(data: bytes, where: str) -> Params:
    """``a=1&b=2``, percent-decoded as UTF-8; invalid UTF-8 is refused, not replaced."""
    try:
        return dict(parse_qsl(data.decode("utf-8"), errors="strict"))
    except UnicodeDecodeError:
        raise BadRequest(f"the {where} is not valid UTF-8") from None


class Budget:
    """The bytes of request bodies a process holds at once, across all requests:
    an upload past the bound waits for no memory, it is refused (503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> None:
        if self.held + n > self.limit:
            raise Unavailable(f"the server holds {self.held} bytes of unfinished requests already; retry")
        self.held += n


async def read_body(receive: Receive, declared: bytes | None, budget: Budget, held: list[int]) -> bytes:
    """The whole body: ``Content-Length`` checked before a byte is read, and every
    byte counted against ``budget`` (``held`` says how many this request took)."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"request body is over {MAX_REQUEST_BYTES} bytes")
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        assert isinstance(chunk, bytes)
        more = bool(message.get("more_body"))
        if not chunk:
            continue
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise PayloadTooLarge(f"request body is over {MAX_REQUEST_BYTES} bytes")
        budget.take(len(chunk))
        held[0] += len(chunk)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
