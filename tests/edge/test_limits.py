"""Limits that hold at the edge: a Content-Length over the largest request is
refused before a byte is read; the bodies a process holds at once are bounded;
%2F stays inside its path segment; invalid UTF-8 in a form is refused."""

from __future__ import annotations

import asyncio

import pytest

from wonderq.edge.app import App, segments
from wonderq.edge.requests import Message, Request
from wonderq.edge.responses import Response, json
from wonderq.edge.routing import Api, Route
from wonderq.errors import BadRequest
from wonderq.settings import MAX_REQUEST_BYTES


async def echo(req: Request) -> Response:
    params = req.params if req.is_form() else {}
    return json({"params": params, "size": len(req.body), "args": req.args})


APP = Api([Route("POST", "/echo", echo), Route("POST", "/q/{name}", echo), Route("POST", "/q/{name}/purge", echo)])


async def call(app: App, body_chunks: list[bytes] | None, headers: list[tuple[bytes, bytes]],
               path: bytes = b"/echo", gate: asyncio.Event | None = None) -> tuple[int, bytes]:
    """One request straight into the app; ``gate`` holds the last chunk back.
    ``body_chunks`` None: the body must never be read."""
    sent: list[Message] = []
    chunks = [b""] if body_chunks == [] else list(body_chunks or [])

    async def receive() -> Message:
        assert body_chunks is not None, "the body was read"
        if not chunks:
            await asyncio.sleep(3600)
        if len(chunks) == 1 and gate is not None:
            await gate.wait()
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path.decode(), "raw_path": path, "query_string": b"",
             "headers": [(b"host", b"localhost"), *headers]}
    await app(scope, receive, send)  # type: ignore[arg-type]
    body = sent[1]["body"]
    assert isinstance(body, bytes)
    return int(str(sent[0]["status"])), body


async def test_content_length_over_the_largest_request_is_refused_unread() -> None:
    app = App([APP])
    status, body = await call(app, None, [(b"content-length", str(MAX_REQUEST_BYTES + 1).encode())])
    assert status == 413 and b"payload_too_large" in body


async def test_bodies_held_at_once_are_bounded_and_released() -> None:
    app = App([APP], max_pending_bytes=1000)
    gate = asyncio.Event()
    slow = asyncio.create_task(call(app, [b"a" * 600, b"b" * 10], [], gate=gate))
    await asyncio.sleep(0.01)
    assert app.budget.held == 600
    status, body = await call(app, [b"c" * 600], [])
    assert status == 503 and b"unfinished requests" in body
    gate.set()
    assert (await slow)[0] == 200
    assert app.budget.held == 0
    assert (await call(app, [b"c" * 600], []))[0] == 200
    assert app.budget.held == 0


async def test_percent_2f_stays_inside_its_segment() -> None:
    app = App([APP])
    status, body = await call(app, [], [], path=b"/q/a%2Fpurge")
    assert status == 200 and b'"name":"a/purge"' in body  # the one-segment route, not .../purge
    assert segments(b"/q/a%2Fb/purge") == ["q", "a/b", "purge"]
    with pytest.raises(BadRequest):
        segments(b"/q/%ff")


async def test_invalid_utf8_in_a_form_is_refused() -> None:
    app = App([APP])
    form = [(b"content-type", b"application/x-www-form-urlencoded"), (b"authorization", b"Bearer x")]  # guard.py
    assert (await call(app, [b"body=caf%C3%A9"], form))[0] == 200
    status, body = await call(app, [b"body=caf%E9"], form)
    assert status == 400 and b"not valid UTF-8" in body
    status, _ = await call(app, [b"body=caf\xe9"], form)
    assert status == 400
