"""The dev tool (port 3210): the original's two read endpoints and a live dashboard.

Everything it knows comes from the broker through two :class:`AsyncClient` pools (the
browsers' calls, and the sampler's); it never opens a database. Reads and actions answer
with the broker's own JSON and pass the broker's errors through in the shared envelope. A
sampler polls the broker's stats every second and keeps, per queue, the last ten minutes of
depths and send/receive/delete rates for the dashboard's charts::

    GET    /queues                    every queue with its counts (the broker's stats)
    GET    /queues/{queue}            ?size=10&after=0: messages, peeked (never consumed)
    GET    /                          the dashboard; its files under /static/
    GET    /api/overview              ?since=&queue=&window=: sampled counts and a queue's history
    POST   /login                     {"key": "wq_…"}: checked with the broker, kept in a cookie
    POST   /logout
    POST   /api/queues                create (name and the broker's queue attributes)
    POST   /api/queues/{queue}/messages   send (body, delay_seconds)
    POST   /api/queues/{queue}/move   start moving a dead-letter queue's messages back
    POST   /api/queues/{queue}/purge
    DELETE /api/queues/{queue}
    DELETE /api/messages/{message}    unconditionally, whether or not it is held

When the broker needs API keys, each of these reaches it with the key the browser logged
in with (or the caller's bearer key; :mod:`.login`), and the broker's 401 or 403 comes back
as it is; the sampler uses the dev tool's own key (``WONDERQ_API_KEY``), and a browser sees
of its samples only the queues its own key lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from typing import TypeVar

from wonderq.apps.devtool.login import KEY, PROBE, Cookie, bearer
from wonderq.apps.devtool.sampling import NO_RATES, Sampler, find, queue_row
from wonderq.broker.names import path_id, path_queue
from wonderq.client import (
    AsyncClient,
    Call,
    create_queue_call,
    delete_call,
    delete_queue_call,
    list_queues_call,
    move_call,
    peek_call,
    purge_call,
    send_call,
    stats_call,
)
from wonderq.edge.app import App
from wonderq.edge.exposure import loopback, proxied
from wonderq.edge.guard import BrowserGuard
from wonderq.edge.params import integer, optional_integer, string
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response, json
from wonderq.edge.routing import Api, Route
from wonderq.errors import Forbidden, InvalidParameter, NotFound, Unauthorized, Unavailable, WonderQError
from wonderq.models import ATTRIBUTES
from wonderq.settings import MAX_ID, MAX_PEEK, Settings

T = TypeVar("T")
log = logging.getLogger("wonderq.devtool")

# The dashboard loads only its own files, and no other site may frame it.
SECURITY_HEADERS = (
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def form_value(params: Mapping[str, object], name: str) -> int | str | None:
    """A queue attribute or delay from the page's form, passed on for the broker to check:
    an integer, the dead-letter queue's name; a blank field means "not given"."""
    if name == "redrive_target":
        return string(params, name, required=False) or None
    return optional_integer(params, name, 0, MAX_ID)


class DevTool:
    """The dev tool's handlers; the client and the sampler live in its lifespan."""

    def __init__(self, settings: Settings, *, interval: float = 1.0, window: float = 600.0) -> None:
        self.settings = settings
        self.interval = interval  # seconds between samples
        self.window = window  # seconds of history kept
        self.cookie = Cookie(secure=bool(settings.tls_cert and settings.tls_key))
        self.open = False  # the broker took a call without a key when last asked (unknown: no)
        self._asked_at = -1e9  # time.monotonic() when takes_anyone last asked it
        self.exposed = not loopback(settings.host)
        self._client: AsyncClient | None = None  # the browsers' calls, each with its own key
        self._own: AsyncClient | None = None  # the sampler's, with the dev tool's key
        self._sampler: Sampler | None = None
        self._task: asyncio.Task[None] | None = None
        # Each route names the parameters it takes, and any other is refused, as the broker
        # does; the page and its files read none, and take what a link or browser adds.
        self.routes: list[Route] = [
            Route("GET", "/queues", self.list_queues, params=()),
            Route("GET", "/queues/{queue}", self.show_queue, params=("size", "after")),
            Route("GET", "/", self.index),
            Route("GET", "/static/{file}", self.asset),
            Route("GET", "/api/overview", self.overview, params=("since", "queue", "window")),
            Route("POST", "/login", self.login, params=("key",)),
            Route("POST", "/logout", self.logout, params=()),
            Route("POST", "/api/queues", self.create_queue, params=("name", *ATTRIBUTES)),
            Route("POST", "/api/queues/{queue}/messages", self.send, params=("body", "delay_seconds")),
            Route("POST", "/api/queues/{queue}/purge", self.purge, params=()),
            Route("POST", "/api/queues/{queue}/move", self.move, params=()),
            Route("DELETE", "/api/queues/{queue}", self.delete_queue, params=()),
            Route("DELETE", "/api/messages/{message}", self.delete_message, params=()),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        if self.settings.insecure_no_auth:
            log.warning("serving %s and proxied requests to callers with no key (--insecure-no-auth): while the"
                        " broker takes calls without one, anyone who reaches the dev tool may change it",
                        self.settings.host or "every address")
        ca_file = self.settings.ca_file or None
        self._client = AsyncClient(self.settings.url, api_key="", ca_file=ca_file)
        self._own = AsyncClient(self.settings.url, api_key=self.settings.api_key, ca_file=ca_file)
        self._sampler = Sampler(self._own, self.interval, self.window)
        self._task = asyncio.create_task(self._sampler.run())
        try:
            yield
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            await self._client.aclose()
            await self._own.aclose()

    @property
    def client(self) -> AsyncClient:
        assert self._client is not None, "the dev tool has not started"
        return self._client

    @property
    def sampler(self) -> Sampler:
        assert self._sampler is not None, "the dev tool has not started"
        return self._sampler

    async def broker(self, req: Request, call: Call[T]) -> object:
        """The broker's JSON answer to one of the client's calls, unparsed: what the dev
        tool shows is what the broker said (a peeked message's ``state`` included)."""
        return await self.as_browser(req, call.unparsed())

    def given_key(self, req: Request) -> str | None:
        """The key this caller gives: its login's, or its own bearer key."""
        return self.cookie.key(req) or bearer(req)

    async def key(self, req: Request) -> str | None:
        """The key this caller reaches the broker with. Served beyond loopback, or reached
        through a proxy (:mod:`wonderq.edge.exposure`), a caller must give one, and one the
        broker checks: a broker that takes calls without a key would take any string.
        Unless --insecure-no-auth."""
        key = self.given_key(req)
        if self.settings.insecure_no_auth or not (self.exposed or proxied(req)):
            return key
        if key is None:
            raise Unauthorized("this dev tool is reached from beyond its own machine: log in with an API key"
                               " (POST /login, or Authorization: Bearer wq_…)")
        if await self.takes_anyone():
            raise Unauthorized("this dev tool is reached from beyond its own machine, and the broker takes calls"
                               " without a key: create one (`wonderq keys create`) and log in with it")
        return key

    async def as_browser(self, req: Request, call: Call[T]) -> T:
        """A call with the browser's key (none if it has not logged in); a key the broker
        refuses is also cleared from the browser."""
        key = await self.key(req)
        try:
            return await self.client.call(call, api_key=key)
        except Unauthorized as exc:
            if self.cookie.sent(req):  # a revoked key's, or a session this process does not know
                error: WonderQError = exc  # its headers as any error's
                error.headers = (*exc.headers, self.cookie.clear(req))
            raise

    async def reach(self, req: Request) -> frozenset[str] | None:
        """The queues this browser may see of the samples: all (None) while the broker takes
        calls without a key, else those its key lists; Unauthorized if it has no key the broker
        takes. With the broker unreachable, what was true when it last answered (a browser
        without a key sees none before the broker was once seen to take calls without one)."""
        key = await self.key(req)
        try:
            if key is not None:
                return frozenset(q.name for q in await self.as_browser(req, list_queues_call()))
            with contextlib.suppress(NotFound):
                await self.as_browser(req, PROBE)
            self.open = True
        except Unauthorized:
            self.open = self.open and key is not None
            raise
        except Unavailable:
            if key is not None:
                raise
            return None if self.open else frozenset()  # not known to be open: none of the samples
        return None

    # -- the original's endpoints --

    async def list_queues(self, req: Request) -> Response:
        return json(await self.broker(req, stats_call()))

    async def show_queue(self, req: Request) -> Response:
        size = integer(req.params, "size", 10, 1, MAX_PEEK)
        after = integer(req.params, "after", 0, 0, MAX_ID)
        return json(await self.broker(req, peek_call(path_queue(req.args["queue"]), size, after)))

    # -- the dashboard --

    async def index(self, req: Request) -> Response:
        return load_asset("index.html")

    async def asset(self, req: Request) -> Response:
        return load_asset(req.args["file"])

    async def overview(self, req: Request) -> Response:
        """The sampled counts of every queue this browser may see (null when ``since`` is the
        current ``version``: nothing changed) and the selected ``queue``'s history."""
        p, s = req.params, self.sampler
        since = optional_integer(p, "since", 0, MAX_ID)
        seconds = integer(p, "window", 300, 1, 3600)
        logged_in = self.given_key(req) is not None
        own = s.refused and logged_in  # the samples are another key's, or none
        rows = await self.own_rows(req) if own else await self.sampled_rows(req)
        out: dict[str, object] = {
            "broker": self.settings.url, "error": None if own else s.error, "interval": s.interval,
            "version": s.version, "queues": None if since == s.version and not own else rows, "history": None,
            "logged_in": logged_in,
        }
        if p.get("queue") not in (None, ""):
            qid = find(rows, path_queue(str(p["queue"])))
            out["history"] = None if qid is None else s.history.window(qid, seconds)
        return json(out)

    async def sampled_rows(self, req: Request) -> list[dict[str, object]]:
        names = await self.reach(req)
        return self.sampler.rows if names is None else [row for row in self.sampler.rows if row["name"] in names]

    async def own_rows(self, req: Request) -> list[dict[str, object]]:
        """While the dev tool's own key is refused, a logged-in browser's rows come from its own
        key, each poll: every queue it reaches, fresh, whatever key the sampler borrowed (whose
        history gives the rates and charts of the queues both reach)."""
        stats = await self.as_browser(req, stats_call())
        if (key := self.given_key(req)) is not None and self.sampler.lend(key):
            await self.sampler.refresh()  # nobody's key sampled: this one does from now on
        rates = self.sampler.history.rates
        return [queue_row(st, rates.get(st.queue.id, NO_RATES)) for st in stats]

    async def login(self, req: Request) -> Response:
        """Check a key with the broker; keep it in this browser's cookie."""
        key = string(req.params, "key") or ""
        if not KEY.fullmatch(key):
            raise InvalidParameter("key must be an API key, as `wonderq keys create` prints it (wq_…)")
        with contextlib.suppress(NotFound, Forbidden):  # a key limited to some queues: 403, not 404
            await self.client.call(PROBE, api_key=key)
        if await self.takes_anyone(fresh=True):  # then any string would pass for a key
            raise InvalidParameter("the broker has no API key, so there is nothing to log in with: create one"
                                   " (`wonderq keys create`)")
        if self.sampler.lend(key):  # the dev tool's own key is refused: this login's samples now
            await self.sampler.refresh()
        return json({"success": True}, headers=(self.cookie.set(key),))

    async def takes_anyone(self, fresh: bool = False) -> bool:
        """Whether the broker answers a call with no key (:attr:`open`, asked at most once a second)."""
        now = time.monotonic()
        if fresh or now - self._asked_at >= 1.0:
            try:
                with contextlib.suppress(NotFound):
                    await self.client.call(PROBE, api_key="")
                self.open = True
            except Unauthorized:
                self.open = False
            self._asked_at = now
        return self.open

    async def logout(self, req: Request) -> Response:
        if (key := self.cookie.key(req)) is not None:
            self.sampler.give_back(key)
        return json({"success": True}, headers=(self.cookie.clear(req),))

    async def create_queue(self, req: Request) -> Response:
        p = req.params
        attributes = {key: form_value(p, key) for key in ATTRIBUTES}
        return await self.act(req, create_queue_call(string(p, "name", required=False) or "", attributes))

    async def send(self, req: Request) -> Response:
        p = req.params
        queue = path_queue(req.args["queue"])
        body = string(p, "body", required=False) or ""
        return await self.act(req, send_call(queue, body, optional_integer(p, "delay_seconds", 0, MAX_ID)))

    async def purge(self, req: Request) -> Response:
        return await self.act(req, purge_call(path_queue(req.args["queue"])))

    async def move(self, req: Request) -> Response:
        return await self.act(req, move_call(path_queue(req.args["queue"]), None))

    async def delete_queue(self, req: Request) -> Response:
        return await self.act(req, delete_queue_call(path_queue(req.args["queue"])))

    async def delete_message(self, req: Request) -> Response:
        return await self.act(req, delete_call(path_id(req.args["message"], "message"), None))

    async def act(self, req: Request, call: Call[T]) -> Response:
        """Run an action on the broker, then refresh the counts so the page sees it."""
        result = await self.broker(req, call)
        await self.sampler.refresh()
        return json(result)


def load_asset(name: str) -> Response:
    """One of the dashboard's files, from the package (``wonderq/apps/devtool/static/``)."""
    if name not in ASSETS:
        raise NotFound(f"no such file: {name}")
    data = (resources.files("wonderq.apps.devtool") / "static" / name).read_bytes()
    return Response(data, 200, ASSETS[name].encode(), SECURITY_HEADERS)


def create_app(settings: Settings, *, interval: float = 1.0, window: float = 600.0) -> App:
    """The dev tool as an ASGI app, talking to the broker at ``settings.url``."""
    tool = DevTool(settings, interval=interval, window=window)
    return App([Api(tool.routes)], tool.lifespan, guard=BrowserGuard.for_settings(settings),
               max_pending_bytes=settings.max_pending_bytes)
