"""The broker's HTTP API (port 3213): the original WonderQ's endpoints, made real.

Each handler validates its input completely, calls one backend verb and shapes
the JSON. The backend is opened in the lifespan and lives on the app.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from wonderq import http
from wonderq.backend import (
    Backend,
    Message,
    NewMessage,
    Queue,
    QueueAttributes,
    QueueStats,
    now_ms,
    open_backend,
)
from wonderq.errors import InvalidParameter, Unavailable
from wonderq.http import (
    Raw,
    Request,
    Route,
    integer,
    optional_integer,
    path_id,
    path_queue,
    queue_name,
    queue_ref,
    string,
)
from wonderq.metrics import CONTENT_TYPE, Metrics
from wonderq.settings import Settings

MAX_BATCH = 10
MAX_WAIT = 20
MAX_VISIBILITY = 43_200
MAX_DELAY = 900
# (attribute, low, high) for POST /queues, as in SQS.
QUEUE_BOUNDS = (
    ("visibility_timeout", 0, MAX_VISIBILITY),
    ("delay_seconds", 0, MAX_DELAY),
    ("retention_seconds", 60, 1_209_600),
    ("max_message_size", 1024, 1_048_576),
    ("max_receive_count", 0, 1000),
)
DEFAULTS = QueueAttributes()


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def queue_json(queue: Queue) -> dict[str, Any]:
    a = queue.attributes
    return {
        "id": queue.id, "name": queue.name, "created_at": iso(queue.created_at),
        "visibility_timeout": a.visibility_timeout, "delay_seconds": a.delay_seconds,
        "retention_seconds": a.retention_seconds, "max_message_size": a.max_message_size,
        "redrive_target": a.redrive_target, "max_receive_count": a.max_receive_count,
    }


def stats_json(s: QueueStats, now: int) -> dict[str, Any]:
    oldest = None if s.oldest_created_at is None else max(0, now - s.oldest_created_at) / 1000
    return queue_json(s.queue) | {
        "queue_size": s.messages, "retrievable_size": s.visible,
        "in_flight_size": s.in_flight, "delayed_size": s.delayed, "oldest_message_age": oldest,
        "sent": s.sent, "received": s.received, "deleted": s.deleted, "expired": s.expired,
    }


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id, "message_id": m.message_id, "queue_id": m.queue_id, "body": m.body,
        "created_at": iso(m.created_at), "retrievable_at": iso(m.visible_at),
        "reservation_token": m.token, "receive_count": m.receive_count,
        "first_received_at": iso(m.first_received_at),
    }


def peeked_json(m: Message, now: int) -> dict[str, Any]:
    """A message seen without receiving it: its state instead of its token,
    which only the consumer holding it may use."""
    state = "visible" if m.visible_at <= now else ("in_flight" if m.token else "delayed")
    return message_json(m) | {"reservation_token": None, "state": state}


class Broker(http.App):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend: Backend | None = None
        self.routes = [
            Route("GET", "/queues", self.list_queues),
            Route("POST", "/queues", self.create_queue),
            Route("GET", "/queues/find", self.find_queue),
            Route("DELETE", "/queues/{queue}", self.delete_queue),
            Route("POST", "/queues/{queue}/purge", self.purge),
            Route("GET", "/queues/{queue}/messages", self.peek),
            Route("POST", "/messages", self.send),
            Route("GET", "/messages/consume", self.consume),
            Route("DELETE", "/messages/{message}", self.delete_message),
            Route("POST", "/messages/{message}/visibility", self.change_visibility),
            Route("GET", "/healthz", self.healthz),
            Route("GET", "/readyz", self.readyz),
            Route("GET", "/metrics", self.metrics_text),
        ]
        self.metrics = Metrics(f"{r.method} {r.path}" for r in self.routes)

    def observe(self, endpoint: str, seconds: float) -> None:
        self.metrics.observe(endpoint, seconds)

    async def startup(self) -> None:
        self.backend = open_backend(self.settings.db, self.settings)
        await self.backend.open()

    async def shutdown(self) -> None:
        if self.backend is not None:
            await self.backend.close()

    @property
    def db(self) -> Backend:
        assert self.backend is not None, "the broker has not started"
        return self.backend

    # -- queues --

    async def create_queue(self, req: Request) -> tuple[int, Any]:
        p = req.params
        name = queue_name(p.get("name"))
        if name.isdigit():
            raise InvalidParameter("a queue name cannot be all digits: in paths it would read as an id")
        values: dict[str, Any] = {
            key: integer(p, key, getattr(DEFAULTS, key), low, high)
            for key, low, high in QUEUE_BOUNDS
        }
        target = p.get("redrive_target")
        if target not in (None, ""):
            values["redrive_target"] = queue_name(target, "redrive_target")
            if target == name:
                raise InvalidParameter("a queue cannot be its own redrive_target")
        elif values["max_receive_count"]:
            raise InvalidParameter("max_receive_count needs a redrive_target")
        queue = await self.db.create_queue(name, QueueAttributes(**values))
        return 200, queue_json(queue)

    async def find_queue(self, req: Request) -> tuple[int, Any]:
        p = req.params
        if p.get("id") not in (None, ""):
            ref: int | str = integer(p, "id", None, 1, 2**63 - 1)
        elif p.get("name") not in (None, ""):
            ref = queue_name(p["name"])
        else:
            raise InvalidParameter("name or id is required")
        return 200, queue_json(await self.db.get_queue(ref))

    async def list_queues(self, req: Request) -> tuple[int, Any]:
        now = now_ms()
        return 200, [stats_json(s, now) for s in await self.db.stats()]

    async def delete_queue(self, req: Request) -> tuple[int, Any]:
        await self.db.delete_queue(path_queue(req.args["queue"]))
        return 200, {"success": True}

    async def purge(self, req: Request) -> tuple[int, Any]:
        purged = await self.db.purge(path_queue(req.args["queue"]))
        return 200, {"success": True, "purged": purged}

    async def peek(self, req: Request) -> tuple[int, Any]:
        p = req.params
        size = integer(p, "size", 10, 1, 1000)
        after = integer(p, "after", 0, 0, 2**63 - 1)
        messages = await self.db.peek(path_queue(req.args["queue"]), size, after)
        now = now_ms()
        return 200, [peeked_json(m, now) for m in messages]

    # -- messages --

    async def send(self, req: Request) -> tuple[int, Any]:
        p = req.params
        ref = queue_ref(p)
        delay = optional_integer(p, "delay_seconds", 0, MAX_DELAY)
        if "messages" in p:
            batch = p["messages"]
            if not isinstance(batch, list) or not 1 <= len(batch) <= MAX_BATCH:
                raise InvalidParameter(f"messages must be a list of 1 to {MAX_BATCH} messages")
            news = [new_message(item, delay) for item in batch]
            sent = await self.db.send_batch(ref, news)
            self.metrics.sent += len(sent)
            ids = [{"id": m.id, "message_id": m.message_id} for m in sent]
            return 200, {"ids": [m.id for m in sent], "messages": ids}
        message = await self.db.send(ref, NewMessage(body(p), delay))
        self.metrics.sent += 1
        return 200, {"id": message.id, "message_id": message.message_id}

    async def consume(self, req: Request) -> tuple[int, Any]:
        p = req.params
        ref = queue_ref(p)
        size = integer(p, "size", 1, 1, MAX_BATCH)
        wait = integer(p, "wait_time", MAX_WAIT, 0, MAX_WAIT)
        visibility = optional_integer(p, "visibility_timeout", 0, MAX_VISIBILITY)  # None: the queue's
        messages = await self.db.receive(ref, size, visibility, wait, req.watch)
        self.metrics.delivered(messages)
        return 200, [message_json(m) for m in messages]

    async def delete_message(self, req: Request) -> tuple[int, Any]:
        message_id = path_id(req.args["message"], "message")
        token = string(req.params, "reservation_token", required=False) or None
        await self.db.delete(message_id, token)
        self.metrics.deleted += 1
        return 200, {"success": True}

    async def change_visibility(self, req: Request) -> tuple[int, Any]:
        message_id = path_id(req.args["message"], "message")
        token = string(req.params, "reservation_token") or ""
        visibility = integer(req.params, "visibility_timeout", None, 0, MAX_VISIBILITY)
        message = await self.db.change_visibility(message_id, token, visibility)
        return 200, message_json(message)

    # -- health --

    async def healthz(self, req: Request) -> tuple[int, Any]:
        return 200, {"status": "ok"}

    async def metrics_text(self, req: Request) -> tuple[int, Any]:
        return 200, Raw(self.metrics.render(await self.db.stats()), CONTENT_TYPE)

    async def readyz(self, req: Request) -> tuple[int, Any]:
        try:
            await asyncio.wait_for(self.db.ping(), 5)
        except TimeoutError:
            raise Unavailable("the database did not answer within 5 s") from None
        return 200, {"status": "ready"}


def new_message(item: Any, delay: int | None) -> NewMessage:
    if not isinstance(item, dict):
        raise InvalidParameter("each of messages must be an object with a body")
    own = optional_integer(item, "delay_seconds", 0, MAX_DELAY)
    return NewMessage(body(item), delay if own is None else own)


def body(params: Any) -> str:
    value = string(params, "body")
    if not value:
        raise InvalidParameter("body must be a non-empty string")
    if "\x00" in value:
        raise InvalidParameter("body must not contain the NUL character (PostgreSQL cannot store it)")
    return value
