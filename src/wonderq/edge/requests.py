"""A request as handlers see it: method, path, the route's arguments, headers,
the whole body, and parameters parsed on first use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import parse_qsl

import orjson

from wonderq.errors import BadRequest, PayloadTooLarge
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

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header (``name`` in lower case)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def params(self) -> Params:
        """Query string, overlaid by a JSON object or form body."""
        if self._params is None:
            params: Params = dict(parse_qsl(self.query.decode("latin-1"))) if self.query else {}
            if self.body:
                params.update(self._parse_body())
            self._params = params
        return self._params

    def _parse_body(self) -> Params:
        if self.body[:1] != b"{" and self.is_form():  # a JSON object needs no header lookup
            return dict(parse_qsl(self.body.decode("utf-8", "replace")))
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


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    assert isinstance(body, bytes)
    if not message.get("more_body"):
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        assert isinstance(chunk, bytes)
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise PayloadTooLarge(f"request body is over {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
