"""The app: mounted APIs, a lifespan, and one request path for all
(:meth:`App.respond`), which the edge's own HTTP connections call
(:mod:`~wonderq.edge.connection`); the app is an ASGI app too, for the tests
that drive it in this process.

Why not Starlette: on one core its per-request overhead alone caps a trivial
handler near the broker's send target (see ARCHITECTURE.md), so the services
keep this toolkit to the few things they need.

Every request passes the :class:`~wonderq.edge.guard.BrowserGuard` (its Host,
and for a state change its Origin, and a body no web page could send cross-site
unless it carries auth). An :class:`App` then tries its APIs in order; the first route that matches the
method, the path and its condition handles the request, and that API renders
any error the handler raises. A request no route takes is answered by the
first API's renderer (404, or 405 with ``Allow``). A route that lists its
parameters gets no others: a misspelt one is a 400 that names it, with a "did
you mean" (:func:`~wonderq.edge.params.known`). Anything but a
:class:`~wonderq.errors.WonderQError` escaping a handler is logged and
answered as a bare 500, never with its traceback.

A lifespan whose startup fails raises out of :meth:`App.served` (the server
reports it in one line); while served, the app counts its requests
and logs a summary of them once a minute (:class:`~wonderq.edge.logs.Activity`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from urllib.parse import unquote

from wonderq.edge.guard import BrowserGuard
from wonderq.edge.logs import Activity
from wonderq.edge.params import known
from wonderq.edge.requests import Budget, Receive, Request, Scope, Send, read_body
from wonderq.edge.responses import Response, Stream
from wonderq.edge.routing import Api, Route
from wonderq.errors import BadRequest, MethodNotAllowed, NotFound, WonderQError
from wonderq.settings import MAX_PENDING_BYTES

log = logging.getLogger("wonderq.edge")
Lifespan = Callable[[], AbstractAsyncContextManager[None]]
Observe = Callable[[str, float], None]  # after each response: its endpoint and seconds taken
Answer = tuple[Response | Stream, str, bool]  # the response, its endpoint, whether its route changes state


def segments(raw_path: bytes) -> list[str]:
    """A path's segments, each percent-decoded on its own: ``%2F`` stays inside its
    segment (``/queues/a%2Fpurge`` names a queue ``a/purge``, which is no name)."""
    text = raw_path.decode("latin-1").strip("/")
    if "%" not in text:
        return text.split("/")
    try:
        return [unquote(part, errors="strict") for part in text.split("/")]
    except UnicodeDecodeError:
        raise BadRequest("the path is not valid UTF-8") from None


class App:
    def __init__(self, apis: Sequence[Api], lifespan: Lifespan | None = None,
                 observe: Observe | None = None, guard: BrowserGuard | None = None,
                 max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        assert apis, "an app needs at least one API"
        self.apis = tuple(apis)
        self.guard = guard or BrowserGuard()
        self.budget = Budget(max_pending_bytes)
        self._lifespan = lifespan
        self._observe = observe
        self.activity = Activity()  # logged once a minute while served
        self.on_started: Callable[[], None] | None = None  # called once the lifespan has started

    def running(self) -> AbstractAsyncContextManager[None]:
        """The app's lifespan as a context manager (what ASGI's lifespan runs; tests use it)."""
        return self._lifespan() if self._lifespan is not None else contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def served(self) -> AsyncIterator[None]:
        """The lifespan while a server serves the app: :meth:`running`, the once-a-minute
        activity summary and :attr:`on_started`; a failed startup raises (the server says it
        in one line: edge/server.py)."""
        context = self.running()
        try:
            await context.__aenter__()
        except Exception:
            log.debug("startup failed", exc_info=True)
            raise
        reporter = asyncio.create_task(self.activity.report(log))
        if self.on_started is not None:
            self.on_started()
        try:
            yield
        finally:
            reporter.cancel()
            try:
                await context.__aexit__(None, None, None)
            finally:
                log.info("stopped")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI, for tests in this process and any ASGI server (``wonderq`` serves the
        app itself: :mod:`wonderq.edge.connection`)."""
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        served = self.served()
        try:
            await served.__aenter__()
        except Exception:
            await send({"type": "lifespan.startup.failed", "message": ""})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await served.__aexit__(None, None, None)
        finally:
            await send({"type": "lifespan.shutdown.complete"})

    def route(self, request: Request, raw_path: bytes) -> tuple[Api, Route]:
        parts = segments(raw_path)
        for api in self.apis:
            route = api.find(request, parts)
            if route is not None:
                return api, route
        allowed = set().union(*(api.allowed(parts) for api in self.apis))
        if allowed and request.method not in allowed:
            raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}", sorted(allowed))
        raise NotFound(f"no such endpoint: {request.method} {request.path}")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One ASGI request: its body read from ``receive`` once its Host passed."""
        started = time.perf_counter()
        request = Request(scope["method"], scope["path"], scope["query_string"], scope["headers"], b"", receive, {})
        held = [0]  # bytes of body this request holds of the budget

        def body() -> Awaitable[bytes]:
            return read_body(receive, request.header(b"content-length"), self.budget, held)

        try:
            response, endpoint, changes = await self.respond(request, scope.get("raw_path") or request.path.encode(),
                                                             body)
            await response.send(send)
            self.finished(endpoint, response.status, changes, started)
        finally:
            self.budget.held -= held[0]

    async def respond(self, request: Request, raw_path: bytes,
                      body: Callable[[], Awaitable[bytes]] | None = None) -> Answer:
        """The response to ``request``, its endpoint, and whether its route changes state.
        ``body`` reads the body after the Host check (None: ``request.body`` is read already).
        Never raises: an error is rendered by the API that routed it (else the first)."""
        api, endpoint, changes = self.apis[0], "other", False
        response: Response | Stream
        try:
            self.guard.check_host(request)
            if body is not None:
                request.body = await body()
            api, route = self.route(request, raw_path)
            endpoint, changes = route.endpoint, bool(route.changes_state)
            if changes:
                self.guard.check_change(request)
            if route.params is not None:
                known(request.params, route.params, f"{request.method} {route.path}")
            response = await route.handler(request)
        except WonderQError as exc:
            response = api.render_error(exc)
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            response = api.render_error(WonderQError())
        return response, endpoint, changes

    def refusal(self, request: Request, raw_path: bytes, error: WonderQError) -> Response:
        """``error``, refusing a request before its body was read, in the format of the API its
        method, path and headers route it to (else the first API's); no handler runs."""
        try:
            api = self.route(request, raw_path)[0]
        except WonderQError:
            api = self.apis[0]
        return api.render_error(error)

    def finished(self, endpoint: str, status: int, changes: bool, started: float) -> None:
        """Count a response that was sent (the activity summary, and the app's observer)."""
        self.activity.count(endpoint, status, changes)
        if self._observe is not None:
            self._observe(endpoint, time.perf_counter() - started)
