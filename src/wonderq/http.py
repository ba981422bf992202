"""A small raw-ASGI edge: requests, routes, JSON responses, parameter checks.

Why not Starlette: on one core its per-request overhead alone caps a trivial
handler near the broker's send target (see ARCHITECTURE.md), so the broker
speaks ASGI directly and keeps this module to the few things it needs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from wonderq.errors import (
    BadRequest,
    InvalidParameter,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    WonderQError,
)

log = logging.getLogger("wonderq.http")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[["Request"], Awaitable[tuple[int, Any]]]

MAX_REQUEST_BYTES = 16 * 1024 * 1024
INTEGER = re.compile(r"\s*-?[0-9]{1,19}\s*")
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}\.fifo|[A-Za-z0-9_-]{1,80}")


@dataclass(slots=True)
class Request:
    method: str
    path: str
    args: dict[str, str]  # from the route's {placeholders}
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    receive: Receive
    _params: dict[str, Any] | None = None
    _watcher: asyncio.Task[None] | None = field(default=None)

    @property
    def params(self) -> dict[str, Any]:
        """Query string, overlaid by a JSON object or form body."""
        if self._params is None:
            params: dict[str, Any] = dict(parse_qsl(self.query.decode("latin-1"))) if self.query else {}
            if self.body:
                params.update(self._parse_body())
            self._params = params
        return self._params

    def _parse_body(self) -> dict[str, Any]:
        if self.body[:1] != b"{" and self._is_form():  # a JSON object needs no header lookup
            return dict(parse_qsl(self.body.decode("utf-8", "replace")))
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise BadRequest("request body must be a JSON object")
        return value

    def _is_form(self) -> bool:
        return any(k == b"content-type" and b"form-urlencoded" in v for k, v in self.headers)

    def watch(self) -> asyncio.Future[None]:
        """A future that resolves when the client disconnects."""
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def wait_for_disconnect() -> None:
            while (await self.receive())["type"] != "http.disconnect":
                pass
            if not gone.done():
                gone.set_result(None)

        self._watcher = asyncio.create_task(wait_for_disconnect())
        return gone

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # literal segments and {name} placeholders
    handler: Handler
    parts: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.path.strip("/").split("/")))

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(self.parts) != len(parts):
            return None
        args = {}
        for want, got in zip(self.parts, parts, strict=True):
            if want.startswith("{"):
                args[want[1:-1]] = got
            elif want != got:
                return None
        return args


class App:
    """An ASGI app over an explicit route list; subclasses add a lifespan."""

    routes: list[Route] = []

    async def startup(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def observe(self, endpoint: str, seconds: float) -> None:
        """Called after each response with ``"METHOD /path/{pattern}"`` and
        the time it took; a hook for metrics."""

    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        parts = path.strip("/").split("/")
        allowed = False
        for route in self.routes:
            args = route.match(parts)
            if args is not None:
                if route.method == method:
                    return route, args
                allowed = True
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}")
        raise NotFound(f"no such endpoint: {method} {path}")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request, endpoint = None, "other"
        try:
            route, args = self.route(scope["method"], scope["path"])
            endpoint = f"{route.method} {route.path}"
            body = await read_body(receive)
            request = Request(
                scope["method"], scope["path"], args, scope["query_string"], scope["headers"], body, receive
            )
            status, payload = await route.handler(request)
        except WonderQError as exc:
            status, payload = exc.status, exc.to_dict()
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            status, payload = 500, WonderQError().to_dict()
        try:
            await respond(send, status, payload)
        finally:
            if request is not None:
                request.close()
            self.observe(endpoint, time.perf_counter() - started)


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body  # type: ignore[no-any-return]
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise PayloadTooLarge(f"request body is over {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class Raw:
    """A response that is not JSON: a page, a script, a stylesheet."""

    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Stream:
    """A response sent chunk by chunk as the iterator yields (chunked encoding)."""

    chunks: AsyncIterator[bytes]
    content_type: str = "text/plain; charset=utf-8"


async def respond(send: Send, status: int, payload: Any) -> None:
    """Send a handler's result: JSON by default, or a Raw or Stream body."""
    if isinstance(payload, Stream):
        start = [(b"content-type", payload.content_type.encode())]
        await send({"type": "http.response.start", "status": status, "headers": start})
        async for chunk in payload.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if isinstance(payload, Raw):
        body, content_type = payload.body, payload.content_type.encode()
    else:
        body, content_type = orjson.dumps(payload), b"application/json"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- parameter checks: every one raises InvalidParameter with a clear message --


def integer(params: Mapping[str, Any], name: str, default: int | None, low: int, high: int) -> int:
    """A required integer (``default`` None) or one with a default."""
    value = optional_integer(params, name, low, high)
    if value is not None:
        return value
    if default is None:
        raise InvalidParameter(f"{name} is required")
    return default


def optional_integer(params: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    """An integer within bounds, or None when absent, null or blank."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidParameter(f"{name} must be an integer")
    if isinstance(value, str):
        if not INTEGER.fullmatch(value):
            raise InvalidParameter(f"{name} must be an integer, not {value!r}")
        value = int(value)
    if not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low} and {high}, not {value}")
    return value


def string(params: Mapping[str, Any], name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidParameter(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"{name} must be a string")
    return value


def queue_name(value: Any, field_name: str = "name") -> str:
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        raise InvalidParameter(
            f"{field_name} must be 1-80 characters of letters, digits, '-' and '_'"
            " (a '.fifo' suffix allowed)"
        )
    return value


def queue_ref(params: Mapping[str, Any]) -> int | str:
    """``queue_id`` (an integer) or ``queue_name``; one is required."""
    if params.get("queue_id") not in (None, ""):
        return integer(params, "queue_id", None, 1, 2**63 - 1)
    if params.get("queue_name") not in (None, ""):
        return queue_name(params["queue_name"], "queue_name")
    raise InvalidParameter("queue_id or queue_name is required")


def path_queue(segment: str) -> int | str:
    """A path's ``:queue``: all digits is an id, anything else a name."""
    return path_id(segment, "queue") if segment.isdigit() else queue_name(segment, "queue")


def path_id(segment: str, name: str) -> int:
    return integer({name: segment}, name, None, 1, 2**63 - 1)
