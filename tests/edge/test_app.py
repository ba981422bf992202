"""The edge on its own: a second API mounted beside a REST-style one, routes told
apart by a header or a form field, per-API errors, status and headers set by
handlers, and the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import orjson

from wonderq.edge.app import App
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response, json
from wonderq.edge.routing import Api, Route, form_field, header
from wonderq.errors import InvalidParameter, WonderQError


async def hello(req: Request) -> Response:
    return json({"hello": req.args.get("name", "world")})


async def target(req: Request) -> Response:
    action = (req.header(b"x-test-target") or b"").decode().removeprefix("Tiny.")
    if action == "Fail":
        raise InvalidParameter("Fail always fails")
    return json({"action": action}, 201, [(b"x-request-id", b"r-1")])


async def query_action(req: Request) -> Response:
    return Response(f"<{req.params['Action']}/>".encode(), 200, b"text/xml")


async def crash(req: Request) -> Response:
    raise RuntimeError("a bug")


def tiny_error(exc: WonderQError) -> Response:
    """The second API's own error shape."""
    body = orjson.dumps({"__type": exc.code, "message": exc.message})
    return Response(body, exc.status, b"application/x-amz-json-1.0", [(b"x-error", exc.code.encode())])


def make_app(events: list[str]) -> App:
    rest = Api([Route("GET", "/hello", hello), Route("GET", "/hello/{name}", hello),
                Route("POST", "/crash", crash)])
    tiny = Api([
        Route("POST", "/", target, when=header("X-Test-Target", "Tiny.")),
        Route("POST", "/", query_action, when=form_field("Action")),
        Route("POST", "/tiny/crash", crash),
    ], render_error=tiny_error)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        events.append("open")
        yield
        events.append("close")

    return App([rest, tiny], lifespan, observe=lambda endpoint, seconds: events.append(endpoint))


async def test_a_second_api_dispatches_on_a_header_and_a_form_field() -> None:
    events: list[str] = []
    app = make_app(events)
    async with app.running(), client(app) as c:
        assert events == ["open"]
        assert (await c.get("/hello/ann")).json() == {"hello": "ann"}
        r = await c.post("/", headers={"X-Test-Target": "Tiny.SendMessage"})
        assert r.status_code == 201 and r.json() == {"action": "SendMessage"}
        assert r.headers["x-request-id"] == "r-1"
        r = await c.post("/", data={"Action": "ListQueues", "Version": "2012-11-05"},
                         headers={"Authorization": "AWS4-HMAC-SHA256 Credential=test"})  # as a Query client signs
        assert r.status_code == 200 and r.text == "<ListQueues/>" and r.headers["content-type"] == "text/xml"
    assert events[-1] == "close"
    assert "POST /" in events and "GET /hello/{name}" in events


async def test_each_api_renders_its_own_errors() -> None:
    app = make_app([])
    async with app.running(), client(app) as c:
        r = await c.post("/", headers={"X-Test-Target": "Tiny.Fail"})
        assert r.status_code == 400 and r.json() == {"__type": "invalid_parameter", "message": "Fail always fails"}
        assert r.headers["x-error"] == "invalid_parameter"
        r = await c.post("/tiny/crash")
        assert r.status_code == 500 and r.json()["__type"] == "internal_error" and "a bug" not in r.text
        r = await c.post("/crash")  # the first API's envelope
        assert r.status_code == 500 and r.json() == {"error": {"code": "internal_error", "message": "internal error"}}
        r = await c.post("/", content=b"{}")  # neither condition holds: nothing takes it
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await c.get("/nowhere")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_405_names_the_allowed_methods() -> None:
    app = make_app([])
    async with app.running(), client(app) as c:
        r = await c.delete("/hello")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


async def test_head_takes_a_get_route_that_changes_nothing() -> None:
    async def claim(req: Request) -> Response:
        raise AssertionError("a HEAD must not run a route that changes state")

    app = App([Api([Route("GET", "/hello/{name}", hello), Route("GET", "/claim", claim, changes_state=True)])])
    async with app.running(), client(app) as c:
        assert (await c.head("/hello/ann")).status_code == 200
        r = await c.head("/claim")
        assert r.status_code == 405 and r.headers["allow"] == "GET"


def client(app: App) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


def test_a_repeated_header_reads_as_its_first_value() -> None:
    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    headers = [(b"host", b"a"), (b"x-one", b"1"), (b"host", b"b")]
    request = Request("GET", "/", b"", headers, b"", receive, {})
    assert (request.header(b"host"), request.header(b"x-one"), request.header(b"origin")) == (b"a", b"1", None)
