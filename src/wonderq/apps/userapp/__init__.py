"""The user app (port 3000): a sample producer and consumer that reaches the broker
only over HTTP, through :class:`~wonderq.client.AsyncClient`.

- ``POST /dispatch`` sends a body (or, from a JSON body, a list of bodies), else
  ``stub`` generated messages, to a queue, creating the queue when it is named and
  missing. Messages go in batches of 10, ``IN_FLIGHT`` requests at a time. A batch
  the broker refuses for one of its messages (too large) is retried message by
  message, so only the guilty ones end up in ``failed``.
- ``GET /listen`` starts a listener: a loop that long-polls the broker's consume
  with the request's ``size``, ``wait_time`` and ``visibility_timeout``, prints
  ``Processing message: <body>`` for each message and deletes it with its
  reservation token. The response streams a first line naming the listener, then
  one line per processed message, until the client hangs up; the listener keeps
  running after that, as in the original.
- ``GET /listeners`` lists them; ``DELETE /listeners/:id`` stops one: no more
  receives (a long poll in progress is abandoned, so the broker claims nothing for
  it), and messages received but not yet processed are released (visibility 0).
  The app's shutdown stops them all the same way.

It reaches the broker with its own key (``WONDERQ_API_KEY``); a broker that refuses it (401)
makes a request answer 503 ``unavailable`` saying so (the caller can do nothing about it), and
a listener whose key is refused, or lacks the scope, stops with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator

import orjson

from wonderq.apps.userapp.listeners import ENDED, Listener, ListenParams, follow, refused
from wonderq.broker.names import path_id, queue_ref
from wonderq.client import AsyncClient, Queue
from wonderq.edge.app import App
from wonderq.edge.exposure import Unprotected, loopback, proxied
from wonderq.edge.guard import BrowserGuard
from wonderq.edge.params import Params, integer, optional_integer
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response, Stream, error_envelope, json
from wonderq.edge.routing import Api, Route
from wonderq.errors import (
    BadRequest,
    Forbidden,
    InvalidParameter,
    NotFound,
    PayloadTooLarge,
    QueueExists,
    QueueNotFound,
    TooManyRequests,
    WonderQError,
)
from wonderq.models import QueueRef
from wonderq.settings import MAX_BATCH, MAX_VISIBILITY, MAX_WAIT, Settings

log = logging.getLogger("wonderq.userapp")

MAX_STUB = 1_000_000  # messages per dispatch
MAX_LISTENERS = 64  # running at once; each holds one connection of the listeners' own pool
BATCH = MAX_BATCH  # messages per POST /messages
# Batch requests in flight per dispatch. The app's CPU (httpx) is the limit, and httpcore's
# pool costs more per request the more connections it juggles: sending 100,000 stubs took
# ~13 s of CPU at 8 in flight, ~21 s at 16 and ~26 s at 32, for the same broker throughput.
IN_FLIGHT = 8



Handler = Callable[[Request], Awaitable[Response | Stream]]
USER_APP_EXPOSED = ("the user app has no login: it acts with its WONDERQ_API_KEY for whoever reaches it;"
                    " bind 127.0.0.1 (--host), or accept the risk with --insecure-no-auth")


def check_exposure(settings: Settings) -> None:
    """Unprotected for a non-loopback bind without --insecure-no-auth (:mod:`wonderq.edge.exposure`)."""
    if not loopback(settings.host) and not settings.insecure_no_auth:
        raise Unprotected(settings.host, "no login", USER_APP_EXPOSED)


class UserApp:
    """The user app's handlers; the client and the listeners live in its lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: AsyncClient | None = None
        self._listen_client: AsyncClient | None = None  # the listeners' own pool: they never starve /dispatch
        self.listeners: dict[int, Listener] = {}
        self._ids = itertools.count(1)
        local = self.local
        self.routes: list[Route] = [
            Route("POST", "/dispatch", local(self.dispatch), params=("queue_id", "queue_name", "body", "stub")),
            Route("GET", "/listen", local(self.listen), changes_state=True,  # it consumes and deletes
                  params=("queue_id", "queue_name", "size", "wait_time", "visibility_timeout")),
            Route("GET", "/listeners", local(self.list_listeners), params=()),
            Route("DELETE", "/listeners/{listener}", local(self.delete_listener), params=()),
        ]

    def local(self, handler: Handler) -> Handler:
        """``handler``, refusing a request a proxy forwarded: the user app has no login, and acts
        with its own key for whoever reaches it (:mod:`wonderq.edge.exposure`)."""
        if self.settings.insecure_no_auth:
            return handler

        async def checked(req: Request) -> Response | Stream:
            if proxied(req):
                raise Forbidden("the user app has no login and acts with its own API key, so it serves only its"
                                " own machine, and this request came through a proxy (it carries a proxy's"
                                " header); start it with --insecure-no-auth to serve it anyway")
            return await handler(req)

        return checked

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        check_exposure(self.settings)
        if self.settings.insecure_no_auth:
            log.warning("serving %s and proxied requests WITHOUT A LOGIN (--insecure-no-auth): anyone who reaches"
                        " it acts with the user app's API key", self.settings.host or "every address")
        key, ca_file = self.settings.api_key or None, self.settings.ca_file or None
        self._client = AsyncClient(self.settings.url, api_key=key, ca_file=ca_file)
        self._listen_client = AsyncClient(self.settings.url, max_connections=MAX_LISTENERS, api_key=key,
                                          ca_file=ca_file)
        try:
            yield
        finally:
            await asyncio.gather(*(listener.stop() for listener in self.listeners.values()))
            await self._client.aclose()
            await self._listen_client.aclose()
            self._client = self._listen_client = None

    @property
    def client(self) -> AsyncClient:
        assert self._client is not None, "the user app has not started"
        return self._client

    # -- producing --

    async def dispatch(self, req: Request) -> Response | Stream:
        p = req.params
        ref = queue_ref(p)
        bodies, count = dispatch_bodies(p)
        await self._dispatch_queue(ref)
        ids, failed = await self._send_all(ref, bodies, count)
        messages = orjson.Fragment(b"[" + b",".join(b'{"id":%d}' % i for i in ids) + b"]")
        return json({"created": len(ids), "messages": messages, "failed": failed})

    async def _dispatch_queue(self, ref: QueueRef) -> Queue:
        """The queue to dispatch to; one named but missing is created (an id must exist)."""
        try:
            return await self.client.get_queue(ref)
        except QueueNotFound:
            if isinstance(ref, int):
                raise
        try:
            return await self.client.create_queue(ref)
        except QueueExists:  # another request created it meanwhile
            return await self.client.get_queue(ref)

    async def _send_all(
        self, ref: QueueRef, bodies: Iterable[str], count: int
    ) -> tuple[list[int], list[dict[str, str]]]:
        """Send in batches, ``IN_FLIGHT`` at a time; results in the bodies' order."""
        batches = enumerate(chunks(bodies, BATCH))
        results: list[tuple[list[int], list[dict[str, str]]]] = [([], [])] * -(-count // BATCH)

        async def worker() -> None:
            for index, batch in batches:  # one generator shared by the workers
                results[index] = await self._send_batch(ref, batch)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(IN_FLIGHT, len(results))):
                group.create_task(worker())
        return [i for ids, _ in results for i in ids], [f for _, failed in results for f in failed]

    async def _send_batch(
        self, ref: QueueRef, batch: list[str]
    ) -> tuple[list[int], list[dict[str, str]]]:
        try:
            return [sent.id for sent in await self.client.send_batch(ref, batch)], []
        except (PayloadTooLarge, BadRequest) as exc:  # about a message: find which, one by one
            if len(batch) == 1:
                return [], [failure(batch[0], exc)]
        except WonderQError as exc:  # about the queue or the broker: the whole batch failed
            return [], [failure(body, exc) for body in batch]
        ids: list[int] = []
        failed: list[dict[str, str]] = []
        for body in batch:
            sent, lost = await self._send_batch(ref, [body])
            ids += sent
            failed += lost
        return ids, failed

    # -- consuming --

    async def listen(self, req: Request) -> Response | Stream:
        p = req.params
        ref = queue_ref(p)
        params = ListenParams(
            size=integer(p, "size", 1, 1, MAX_BATCH),
            wait_time=integer(p, "wait_time", MAX_WAIT, 0, MAX_WAIT),
            visibility_timeout=optional_integer(p, "visibility_timeout", 0, MAX_VISIBILITY),
        )
        ended = [i for i, one in self.listeners.items() if one.state in ENDED]
        if len(self.listeners) - len(ended) >= MAX_LISTENERS:
            raise TooManyRequests(f"{MAX_LISTENERS} listeners are running, the most this app runs at once;"
                                  " stop one with DELETE /listeners/<id>")
        for i in ended[:max(0, len(ended) - MAX_LISTENERS)]:  # the newest ended ones stay listed, not all
            del self.listeners[i]
        queue = await self.client.get_queue(ref)  # an unknown queue is a 404 now, not a dead listener
        assert self._listen_client is not None
        listener = Listener(next(self._ids), self._listen_client, queue, ref, params)
        self.listeners[listener.id] = listener
        lines = listener.subscribe()
        gone = asyncio.ensure_future(req.disconnected())
        gone.add_done_callback(lambda _: listener.unsubscribe(lines))
        return Stream(follow(listener, lines, gone))

    async def list_listeners(self, req: Request) -> Response | Stream:
        return json([listener.to_json() for listener in self.listeners.values()])

    async def delete_listener(self, req: Request) -> Response | Stream:
        listener_id = path_id(req.args["listener"], "listener")
        listener = self.listeners.get(listener_id)
        if listener is None:
            raise NotFound(f"no listener {listener_id}")
        await listener.stop()
        self.listeners.pop(listener_id, None)
        return json({"success": True, "listener": listener.to_json()})


def dispatch_bodies(p: Params) -> tuple[Iterable[str], int]:
    """The bodies to send and how many: ``body`` (a string, or a JSON list of them) wins;
    without it (or with it blank), ``stub`` generated ones."""
    body = p.get("body")
    if body is None or body == "":
        n = integer(p, "stub", 1, 1, MAX_STUB)
        return (f"stub message {i} of {n}" for i in range(1, n + 1)), n
    if isinstance(body, str):
        return [body], 1
    if (
        isinstance(body, list) and 1 <= len(body) <= MAX_STUB
        and all(isinstance(b, str) and b for b in body)
    ):
        return body, len(body)
    raise InvalidParameter(f"body must be a string, or a list of 1 to {MAX_STUB} non-empty strings")


def chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def failure(body: str, exc: WonderQError) -> dict[str, str]:
    return {"body": body, "reason": exc.message, "code": exc.code}


def create_app(settings: Settings) -> App:
    """The user app as an ASGI app, talking to the broker at ``settings.url``."""
    app = UserApp(settings)
    api = Api(app.routes, lambda exc: error_envelope(refused(exc)))
    return App([api], app.lifespan, guard=BrowserGuard.for_settings(settings),
               max_pending_bytes=settings.max_pending_bytes)
