"""The original WonderQ's REST API, made real: the seed's endpoints and JSON.

Each handler validates its input completely, calls the backend and answers
in the seed's JSON, shaped by :mod:`wonderq.broker.wire` (where a message's
``token`` is sent as ``reservation_token``, counts as ``queue_size``, …).
Errors are the envelope ``{"error": {"code": ..., "message": ...}}``.

Each route names the scope it needs (:meth:`RestApi.needs`): read for lists,
finds, peeks and metrics; write for sends, receives, deletes and visibility;
admin for creating, deleting, purging and moving queues. While authentication
is on (:class:`~wonderq.broker.keys.KeyRing`) a request without a valid bearer
key is 401 and one whose key lacks the scope is 403; a queue-limited key is
checked where the handler resolves its queue. Deleting a message or changing
its visibility names no queue: it needs ``write`` and the message's
reservation token, which only a receive from a queue the key reaches hands
out (so a queue-limited key must give the token, and the message's queue is
looked up: one it does not reach answers as a stale token would). Health
checks and the OpenAPI document need no key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from wonderq.backends.base import Backend
from wonderq.backends.rules import stale
from wonderq.broker import wire
from wonderq.broker.access import ADMIN, OPEN, READ, WRITE, Grant
from wonderq.broker.caps import InFlightCap
from wonderq.broker.keys import KeyRing
from wonderq.broker.metrics import CONTENT_TYPE, Metrics
from wonderq.broker.moves import MAX_RATE, MoveTasks
from wonderq.broker.names import check_new, path_id, path_queue, queue_name, queue_ref
from wonderq.broker.openapi import document
from wonderq.broker.wire import JsonObject, message_json, peeked_json, queue_json, stats_json
from wonderq.clock import Clock
from wonderq.edge.params import Params, integer, known, one_of, optional_integer, present, string
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response, json, raw
from wonderq.edge.routing import Handler, Route
from wonderq.errors import Forbidden, InvalidParameter, QueueNotFound, StaleToken, Unavailable
from wonderq.models import ATTRIBUTES, NewMessage, QueueAttributes, QueueRef
from wonderq.settings import MAX_BATCH, MAX_DELAY, MAX_ID, MAX_PEEK, MAX_VISIBILITY, MAX_WAIT, QUEUE_BOUNDS

DEFAULTS = QueueAttributes()
Authed = Callable[[Request, Grant], Awaitable[Response]]  # a handler, told the caller's grant
NEEDS_TOKEN = f"this key is limited to some queues: give the message's {wire.TOKEN}"


class RestApi:
    """The handlers, over one backend; the app's lifespan opens and closes it."""

    def __init__(
        self, backend: Backend, metrics: Metrics, clock: Clock, moves: MoveTasks, keys: KeyRing,
        in_flight: InFlightCap,
    ) -> None:
        self.db = backend
        self.metrics = metrics
        self.clock = clock
        self.moves = moves
        self.keys = keys
        self.in_flight = in_flight

    def routes(self) -> list[Route]:
        ref, token = ("queue_id", "queue_name"), wire.TOKEN
        read, write, admin = self.needs(READ), self.needs(WRITE), self.needs(ADMIN)
        return [
            Route("GET", "/queues", read(self.list_queues), params=()),
            Route("POST", "/queues", admin(self.create_queue), params=("name", *ATTRIBUTES)),
            Route("GET", "/queues/find", read(self.find_queue), params=("name", "id")),
            Route("DELETE", "/queues/{queue}", admin(self.delete_queue), params=()),
            Route("POST", "/queues/{queue}/purge", admin(self.purge), params=()),
            Route("POST", "/queues/{queue}/move", admin(self.move), params=("destination", "rate")),
            Route("GET", "/queues/{queue}/messages", read(self.peek), params=("size", "after")),
            Route("POST", "/messages", write(self.send), params=(*ref, "body", "delay_seconds", "messages")),
            Route("GET", "/messages/consume", write(self.consume), changes_state=True,  # it claims: no cross-site GET
                  params=(*ref, "size", "wait_time", "visibility_timeout")),
            Route("POST", "/messages/delete", write(self.delete_messages), params=("messages",)),
            Route("DELETE", "/messages/{message}", write(self.delete_message), params=(token,)),
            Route("POST", "/messages/{message}/visibility", write(self.change_visibility),
                  params=(token, "visibility_timeout")),
            Route("GET", "/healthz", self.healthz, params=()),
            Route("HEAD", "/healthz", self.healthz, params=()),  # a load balancer's check, without a body
            Route("GET", "/readyz", self.readyz, params=()),
            Route("HEAD", "/readyz", self.readyz, params=()),
            Route("GET", "/metrics", read(self.metrics_text)),
            Route("GET", "/openapi.json", self.openapi),
        ]

    def needs(self, scope: str) -> Callable[[Authed], Handler]:
        """Wrap handlers needing ``scope``: while auth is off they get OPEN and nothing is checked."""
        keys = self.keys

        def wrap(handler: Authed) -> Handler:
            async def authed(req: Request) -> Response:
                if not keys.required:
                    keys.check_local(req)
                    return await handler(req, OPEN)
                grant = keys.bearer(req.header(b"authorization"))
                grant.check(scope)
                return await handler(req, grant)

            return authed

        return wrap

    async def reach(self, grant: Grant, scope: str, ref: QueueRef) -> None:
        """Forbidden unless a queue-limited grant reaches the queue. By id it is looked up, and a
        queue out of reach or missing is refused alike, naming the id: which ids exist, and
        their queues' names, are not told to a key that does not reach them."""
        if isinstance(ref, str):
            grant.check(scope, ref)
            return
        grant.check(scope)
        try:
            name = (await self.db.get_queue(ref)).name
        except QueueNotFound:
            name = None
        if name is None or not grant.covers(name):
            raise Forbidden(f"this key does not reach queue {ref}")

    async def out_of_reach(self, grant: Grant, message_ids: list[int]) -> dict[int, StaleToken]:
        """For a queue-limited grant, the messages in a queue it does not reach: REST names a
        message by id alone, so its queue is looked up (a missing one is left to the write).
        Each is refused as a stale token is, as SQS refuses a handle used on another queue:
        where the message is is not told, and a consumer takes it for a message it lost."""
        found = await self.db.queues_of(message_ids)
        return {m: stale(m, elsewhere=True) for m, name in found.items() if not grant.covers(name)}

    # -- queues --

    async def create_queue(self, req: Request, grant: Grant) -> Response:
        p = req.params
        name = queue_name(p.get("name"))
        grant.check(ADMIN, name)
        check_new(name)
        numbers = {key: integer(p, key, getattr(DEFAULTS, key), low, high) for key, low, high in QUEUE_BOUNDS}
        target = None
        if present(p, "redrive_target"):
            target = queue_name(p["redrive_target"], "redrive_target")
            if target == name:
                raise InvalidParameter("a queue cannot be its own redrive_target")
            grant.check(ADMIN, target)
        elif numbers["max_receive_count"]:
            raise InvalidParameter("max_receive_count needs a redrive_target")
        attributes = QueueAttributes(
            visibility_timeout=numbers["visibility_timeout"], delay_seconds=numbers["delay_seconds"],
            retention_seconds=numbers["retention_seconds"], max_message_size=numbers["max_message_size"],
            redrive_target=target, max_receive_count=numbers["max_receive_count"],
        )
        return json(queue_json(await self.db.create_queue(name, attributes)))

    async def find_queue(self, req: Request, grant: Grant) -> Response:
        p = req.params
        given = one_of(p, "name", "id")
        if given == "id":
            ref: int | str = integer(p, "id", None, 1, MAX_ID)
        elif given == "name":
            ref = queue_name(p["name"])
        else:
            raise InvalidParameter("name or id is required")
        if grant.queues:
            await self.reach(grant, READ, ref)
        return json(queue_json(await self.db.get_queue(ref)))

    async def list_queues(self, req: Request, grant: Grant) -> Response:
        """Every queue the key reaches."""
        now = self.clock.now_ms()
        return json([stats_json(s, now) for s in await self.db.stats() if grant.covers(s.queue.name)])

    async def delete_queue(self, req: Request, grant: Grant) -> Response:
        ref = path_queue(req.args["queue"])
        if grant.queues:
            await self.reach(grant, ADMIN, ref)
        await self.db.delete_queue(ref)
        return json({"success": True})

    async def purge(self, req: Request, grant: Grant) -> Response:
        ref = path_queue(req.args["queue"])
        if grant.queues:
            await self.reach(grant, ADMIN, ref)
        purged = await self.db.purge(ref)
        return json({"success": True, "purged": purged})

    async def move(self, req: Request, grant: Grant) -> Response:
        """Start moving a dead-letter queue's messages back to where they came
        from (or to ``destination``): a move task, as SQS's StartMessageMoveTask."""
        ref = path_queue(req.args["queue"])
        if grant.queues:
            await self.reach(grant, ADMIN, ref)
        source = await self.db.get_queue(ref)
        p = req.params
        destination = queue_name(p["destination"], "destination") if present(p, "destination") else None
        rate = optional_integer(p, "rate", 1, MAX_RATE)
        task = await self.moves.start(source.name, destination, rate, grant)
        return json({"task": task.id, "status": task.status, "source": task.source,
                     "destination": task.destination, "to_move": task.to_move})

    async def peek(self, req: Request, grant: Grant) -> Response:
        p = req.params
        size = integer(p, "size", 10, 1, MAX_PEEK)
        after = integer(p, "after", 0, 0, MAX_ID)
        ref = path_queue(req.args["queue"])
        if grant.queues:
            await self.reach(grant, READ, ref)
        messages = await self.db.peek(ref, size, after)
        now = self.clock.now_ms()
        return json([peeked_json(m, now) for m in messages])

    # -- messages --

    async def send(self, req: Request, grant: Grant) -> Response:
        p = req.params
        ref = queue_ref(p)
        if grant.queues:
            await self.reach(grant, WRITE, ref)
        delay = optional_integer(p, "delay_seconds", 0, MAX_DELAY)
        if "messages" in p:
            if "body" in p:  # with a batch too: which was meant?
                one_of(p, "body", "messages")
            batch = p["messages"]
            if not isinstance(batch, list) or not 1 <= len(batch) <= MAX_BATCH:
                raise InvalidParameter(f"messages must be a list of 1 to {MAX_BATCH} messages")
            news = [new_message(item, delay) for item in batch]
            sent = await self.db.send_batch(ref, news)
            self.metrics.sent += len(sent)
            ids = [{"id": m.id, "message_id": m.message_id} for m in sent]
            return json({"ids": [m.id for m in sent], "messages": ids})
        message = await self.db.send(ref, NewMessage(body(p), delay))
        self.metrics.sent += 1
        return json({"id": message.id, "message_id": message.message_id})

    async def consume(self, req: Request, grant: Grant) -> Response:
        p = req.params
        ref = queue_ref(p)
        if grant.queues:
            await self.reach(grant, WRITE, ref)
        size = integer(p, "size", 1, 1, MAX_BATCH)
        wait = integer(p, "wait_time", MAX_WAIT, 0, MAX_WAIT)
        visibility = optional_integer(p, "visibility_timeout", 0, MAX_VISIBILITY)  # None: the queue's
        if (full := await self.in_flight.full(ref)) is not None:
            raise self.in_flight.refused(full)  # any queue, any wait: a REST client is told (403 over_limit)
        messages = await self.db.receive(ref, size, visibility, wait, req.disconnected())
        self.in_flight.took(ref, len(messages))
        self.metrics.delivered(messages)
        return json([message_json(m) for m in messages])

    async def delete_message(self, req: Request, grant: Grant) -> Response:
        message_id = path_id(req.args["message"], "message")
        token = reservation_token(req.params, required=False)
        if token is None and grant.queues:
            raise Forbidden(NEEDS_TOKEN)
        if grant.queues and (refused := await self.out_of_reach(grant, [message_id])):
            raise refused[message_id]
        await self.db.delete(message_id, token)
        self.metrics.deleted += 1
        return json({"success": True})

    async def delete_messages(self, req: Request, grant: Grant) -> Response:
        """Delete up to MAX_BATCH messages, each by id with its token (or none), in one
        write, and answer each in order: deleted, or the error that kept it (not found,
        stale token, as is a queue-limited key's message elsewhere) without failing the
        others."""
        entries = req.params.get("messages")
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_BATCH:
            raise InvalidParameter(f"messages must be a list of 1 to {MAX_BATCH} messages")
        refs = [delete_entry(entry) for entry in entries]
        if grant.queues and any(token is None for _, token in refs):
            raise Forbidden(NEEDS_TOKEN)
        refused = await self.out_of_reach(grant, [message_id for message_id, _ in refs]) if grant.queues else {}
        kept = [entry for entry in refs if entry[0] not in refused] if refused else refs
        outcomes = iter(await self.db.delete_batch(kept) if kept else [])  # a database gone away fails them all
        answers: list[JsonObject] = []
        for message_id, _ in refs:
            outcome = refused[message_id] if message_id in refused else next(outcomes)
            if outcome is None:
                answers.append({"id": message_id, "deleted": True})
            else:
                error = {"code": outcome.code, "message": str(outcome)}
                answers.append({"id": message_id, "deleted": False, "error": error})
        deleted = sum(1 for a in answers if a["deleted"])
        self.metrics.deleted += deleted
        return json({"deleted": deleted, "messages": answers})

    async def change_visibility(self, req: Request, grant: Grant) -> Response:
        message_id = path_id(req.args["message"], "message")
        token = reservation_token(req.params) or ""
        visibility = integer(req.params, "visibility_timeout", None, 0, MAX_VISIBILITY)
        if grant.queues and (refused := await self.out_of_reach(grant, [message_id])):
            raise refused[message_id]
        message = await self.db.change_visibility(message_id, token, visibility)
        return json(message_json(message))

    # -- health --

    async def healthz(self, req: Request) -> Response:
        return json({"status": "ok"})

    async def openapi(self, req: Request) -> Response:
        return json(document())

    async def metrics_text(self, req: Request, grant: Grant) -> Response:
        stats = [s for s in await self.db.stats() if grant.covers(s.queue.name)]
        return raw(self.metrics.render(stats), CONTENT_TYPE)

    async def readyz(self, req: Request) -> Response:
        try:
            await asyncio.wait_for(self.db.ping(), 5)
        except TimeoutError:
            raise Unavailable("the database did not answer within 5 s") from None
        return json({"status": "ready"})


def new_message(item: object, delay: int | None) -> NewMessage:
    if type(item) is dict and len(item) == 1 and "body" in item:  # a body alone, the common case
        return NewMessage(body(item), delay)
    if not isinstance(item, dict):
        raise InvalidParameter("each of messages must be an object with a body")
    known(item, ("body", "delay_seconds"), "each of messages")
    own = optional_integer(item, "delay_seconds", 0, MAX_DELAY)
    return NewMessage(body(item), delay if own is None else own)


def reservation_token(params: Params, required: bool = True) -> str | None:
    """A message's token as given; None when left out (or null). An empty one is refused,
    not taken for none: without a token a delete checks nothing. The broker's own never
    hold NUL, which PostgreSQL cannot even compare (it answered such a token with a 500)."""
    value = string(params, wire.TOKEN, required)
    if value is None:
        return None
    if not value:
        leave_out = "" if required else ", or leave it out to delete the message whoever holds it"
        raise InvalidParameter(f"{wire.TOKEN} is empty: give the one the consume returned{leave_out}")
    if "\x00" in value:
        raise InvalidParameter(f"{wire.TOKEN} must not contain the NUL character")
    return value


def delete_entry(item: object) -> tuple[int, str | None]:
    if not isinstance(item, dict):
        raise InvalidParameter(f"each of messages must be an object with an id and a {wire.TOKEN}")
    known(item, ("id", wire.TOKEN), "each of messages")  # a misspelt token would delete whoever holds it
    return integer(item, "id", None, 1, MAX_ID), reservation_token(item, required=False)


def body(params: Params) -> str:
    value = string(params, "body")
    if not value:
        raise InvalidParameter("body must be a non-empty string")
    if "\x00" in value:
        raise InvalidParameter("body must not contain the NUL character (PostgreSQL cannot store it)")
    return value
