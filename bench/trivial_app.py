"""The Python HTTP ceiling: a trivial raw-ASGI app on uvicorn that answers
the load generator's requests the way the broker would, without storing anything.

It reads each request's body and answers with a small, fixed-shape JSON: a send
gets an id, a consume gets ``size`` made-up messages (fresh ids, so the
generator sees no duplicates), a delete or batch delete gets success. The
measured rates are what uvicorn and the same generator reach on one core when
the handler costs nothing: the most any Python broker on this stack could do.

    taskset -c 0 .venv/bin/uvicorn trivial_app:app --app-dir bench --port 3299 --no-access-log

The same answers served by WonderQ's own edge (``wonderq.edge``: its App, routing and
connections, at their defaults), the ceiling of what the broker's edge costs:

    taskset -c 0 .venv/bin/python bench/trivial_app.py 3298
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from wonderq.edge.app import App
from wonderq.edge.logs import configure_logging
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response
from wonderq.edge.routing import Api, Route
from wonderq.edge.server import serve
from wonderq.settings import Settings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ids = itertools.count(1)
BODY = "x" * 1024
HEADERS = [(b"content-type", b"application/json")]


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        event = await receive()
        chunks.append(event.get("body", b""))
        if not event.get("more_body"):
            return b"".join(chunks)


def answer(method: str, path: str, query: bytes, body: bytes) -> Any:
    if method == "POST" and path == "/messages":
        request = orjson.loads(body)
        if "messages" in request:
            sent = [{"id": next(ids), "message_id": "m"} for _ in request["messages"]]
            return {"ids": [m["id"] for m in sent], "messages": sent}
        return {"id": next(ids), "message_id": "m"}
    if method == "GET" and path == "/messages/consume":
        size = int(parse_qs(query.decode()).get("size", ["1"])[0])
        return [{"id": next(ids), "reservation_token": "t", "body": BODY} for _ in range(size)]
    if method == "POST" and path == "/messages/delete":
        entries = orjson.loads(body)["messages"]
        return {"deleted": len(entries), "messages": [{"id": e["id"], "deleted": True} for e in entries]}
    if method == "GET" and path == "/queues":
        return []
    return {"success": True}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    data = orjson.dumps(answer(scope["method"], scope["path"], scope["query_string"], body))
    headers = [*HEADERS, (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def edge_app() -> App:
    """:func:`answer` behind WonderQ's edge: an App with one route per path the load uses."""

    async def handle(req: Request) -> Response:
        return Response(orjson.dumps(answer(req.method, req.path, req.query, req.body)))

    paths = [("POST", "/messages"), ("GET", "/messages/consume"), ("POST", "/messages/delete"),
             ("DELETE", "/messages/{id}"), ("GET", "/queues"), ("POST", "/queues"), ("GET", "/healthz")]
    return App([Api([Route(method, path, handle) for method, path in paths])])


def serve_edge(port: int) -> None:
    configure_logging("trivial", "warning")
    serve(edge_app, Settings(port=port, log_level="warning"), port)


if __name__ == "__main__":
    serve_edge(int(sys.argv[1]))
