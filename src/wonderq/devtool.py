"""The dev tool (port 3210): the original's two read endpoints and a live dashboard.

Everything it knows comes from the broker through one :class:`AsyncClient`; it
never opens a database. Reads and actions answer with the broker's own JSON and
pass the broker's errors through in the shared envelope. A sampler polls the
broker's stats every second and keeps, per queue, the last ten minutes of
depths and send/receive/delete rates for the dashboard's charts::

    GET    /queues                    every queue with its counts (the broker's stats)
    GET    /queues/{queue}            ?size=10&after=0: messages, peeked (never consumed)
    GET    /                          the dashboard; its files under /static/
    GET    /api/overview              ?since=&queue=&window=: sampled counts and a queue's history
    POST   /api/queues                create (name and the broker's queue attributes)
    POST   /api/queues/{queue}/messages   send (body, delay_seconds)
    POST   /api/queues/{queue}/purge
    DELETE /api/queues/{queue}
    DELETE /api/messages/{message}    unconditionally, whether or not it is held
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from array import array
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from typing import Any

from wonderq import http
from wonderq.client import (
    AsyncClient,
    Call,
    QueueStats,
    create_queue_call,
    delete_call,
    delete_queue_call,
    peek_call,
    purge_call,
    send_call,
    stats_call,
)
from wonderq.errors import NotFound, WonderQError
from wonderq.http import Raw, Request, Route, integer, optional_integer, path_id, path_queue
from wonderq.settings import Settings

log = logging.getLogger("wonderq.devtool")

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# One sample of one queue: its depths, then its rates (messages per second).
SERIES = ("queue_size", "visible", "in_flight", "delayed", "send_rate", "receive_rate", "delete_rate")
DEPTHS = 4
COUNTERS = ("sent", "received", "deleted")  # cumulative, per queue, from the broker's stats
NO_RATES = (0.0, 0.0, 0.0)
QUEUE_ATTRIBUTES = (
    "visibility_timeout", "delay_seconds", "retention_seconds", "max_message_size",
    "redrive_target", "max_receive_count",
)
MAX_ID = 2**63 - 1


class History:
    """Ring buffers of the last ``capacity`` samples of every queue.

    All queues are sampled at once, so one ring of sample times serves them all.
    A queue's own ring (``capacity`` rows of :data:`SERIES`) is allocated at its
    first nonzero sample; until then its samples are zeros without costing
    memory, so a thousand idle queues cost a few dict entries each.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0  # samples taken; the next one goes to slot count % capacity
        self.times = array("d", bytes(8 * capacity))  # wall clock, seconds
        self.first: dict[int, int] = {}  # queue id -> number of the first sample that saw it
        self.rings: dict[int, array[float]] = {}
        self.counters: dict[int, tuple[int, ...]] = {}
        self.rates: dict[int, tuple[float, ...]] = {}  # each queue's latest
        self.last: float | None = None  # monotonic time of the latest sample

    def record(self, wall: float, monotonic: float, stats: Sequence[QueueStats]) -> None:
        slot = self.count % self.capacity
        self.times[slot] = wall
        elapsed = 0.0 if self.last is None else monotonic - self.last
        for s in stats:
            qid = s.queue.id
            self.first.setdefault(qid, self.count)
            rates = self._rates(qid, s, elapsed)
            self._store(qid, slot, (s.messages, s.visible, s.in_flight, s.delayed, *rates))
        live = {s.queue.id for s in stats}
        for gone in [qid for qid in self.first if qid not in live]:
            for table in (self.first, self.rings, self.counters, self.rates):
                table.pop(gone, None)
        self.count += 1
        self.last = monotonic

    def _rates(self, qid: int, s: QueueStats, elapsed: float) -> tuple[float, ...]:
        """Per-second differences of the broker's counters (0 while it has none)."""
        now = tuple(int(getattr(s, name, 0) or 0) for name in COUNTERS)
        before = self.counters.get(qid)
        self.counters[qid] = now
        if before is None or elapsed <= 0:
            rates: tuple[float, ...] = NO_RATES
        else:  # a counter that went down (a restored database) counts as no change
            rates = tuple(max(0, a - b) / elapsed for a, b in zip(now, before, strict=True))
        self.rates[qid] = rates
        return rates

    def _store(self, qid: int, slot: int, values: tuple[float, ...]) -> None:
        ring = self.rings.get(qid)
        if ring is None:
            if not any(values):
                return
            ring = self.rings[qid] = array("d", bytes(8 * len(SERIES) * self.capacity))
        base = slot * len(SERIES)
        ring[base:base + len(SERIES)] = array("d", values)

    def window(self, qid: int, seconds: float) -> dict[str, list[Any]] | None:
        """A queue's samples of the last ``seconds``, oldest first: ``t`` (ms since
        the epoch) and one list per name in :data:`SERIES`; None for an unknown queue."""
        if qid not in self.first or not self.count:
            return None
        newest = self.times[(self.count - 1) % self.capacity]
        oldest = max(self.first[qid], self.count - self.capacity)
        slots = [
            n % self.capacity for n in range(oldest, self.count)
            if self.times[n % self.capacity] >= newest - seconds
        ]
        out: dict[str, list[Any]] = {"t": [round(self.times[s] * 1000) for s in slots]}
        ring = self.rings.get(qid)
        for i, name in enumerate(SERIES):
            if ring is None:
                out[name] = [0] * len(slots)
            elif i < DEPTHS:
                out[name] = [int(ring[s * len(SERIES) + i]) for s in slots]
            else:
                out[name] = [round(ring[s * len(SERIES) + i], 3) for s in slots]
        return out


def queue_row(s: QueueStats, rates: tuple[float, ...]) -> dict[str, Any]:
    """A queue as the dashboard's list shows it."""
    age = s.oldest_message_age
    return {
        "id": s.queue.id, "name": s.queue.name, "queue_size": s.messages,
        "retrievable_size": s.visible, "in_flight_size": s.in_flight, "delayed_size": s.delayed,
        "oldest_message_age": None if age is None else int(age),
        "send_rate": round(rates[0], 2), "receive_rate": round(rates[1], 2),
        "delete_rate": round(rates[2], 2),
    }


class Sampler:
    """Polls the broker's stats every ``interval`` seconds into a :class:`History`
    and keeps the latest counts as rows; ``version`` changes when the rows do."""

    def __init__(self, client: AsyncClient, interval: float, window: float) -> None:
        self.client = client
        self.interval = interval
        self.history = History(max(2, round(window / interval)))
        self.rows: list[dict[str, Any]] = []
        self.version = 0
        self.error: str | None = None  # why the latest poll failed; None when it worked
        self.fetches = 0
        self.published = 0  # the fetch the rows come from: an older answer never replaces them

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            try:
                await self.sample()
            except Exception as exc:  # a bug in one sample must not end the sampling
                log.exception("sampling the broker failed")
                self.error = f"sampling failed: {exc!r}"
            deadline = max(deadline + self.interval, loop.time())  # a slow poll skips ticks
            await asyncio.sleep(deadline - loop.time())

    async def sample(self) -> None:
        """One sample into the history, and fresh rows."""
        ticket, stats = await self.fetch()
        if stats is not None:
            self.history.record(time.time(), time.monotonic(), stats)
            self.publish(ticket, stats)

    async def refresh(self) -> None:
        """Fresh rows now (after an action), without a sample in the history."""
        ticket, stats = await self.fetch()
        if stats is not None:
            self.publish(ticket, stats)

    async def fetch(self) -> tuple[int, list[QueueStats] | None]:
        self.fetches += 1
        ticket = self.fetches
        try:
            stats = await self.client.stats()
        except WonderQError as exc:
            if self.error is None:
                log.warning("cannot sample the broker: %s", exc.message)
            self.error = exc.message
            return ticket, None
        self.error = None
        return ticket, stats

    def publish(self, ticket: int, stats: list[QueueStats]) -> None:
        if ticket < self.published:
            return
        self.published = ticket
        rows = [queue_row(s, self.history.rates.get(s.queue.id, NO_RATES)) for s in stats]
        if rows != self.rows:
            self.rows = rows
            self.version += 1

    def find(self, ref: int | str) -> int | None:
        """A queue's id, from its id or name, among the latest rows."""
        if isinstance(ref, int):
            return ref
        return next((row["id"] for row in self.rows if row["name"] == ref), None)


def as_is(data: Any) -> Any:
    return data


def present(value: Any) -> Any:
    """A blank form field means "not given"."""
    return None if value == "" else value


class DevTool(http.App):
    """The dev tool's ASGI app: the client and the sampler live in the lifespan."""

    def __init__(self, settings: Settings, *, interval: float = 1.0, window: float = 600.0) -> None:
        self.settings = settings
        self.interval = interval  # seconds between samples
        self.window = window  # seconds of history kept
        self._client: AsyncClient | None = None
        self._sampler: Sampler | None = None
        self._task: asyncio.Task[None] | None = None
        self.routes = [
            Route("GET", "/queues", self.list_queues),
            Route("GET", "/queues/{queue}", self.show_queue),
            Route("GET", "/", self.index),
            Route("GET", "/static/{file}", self.asset),
            Route("GET", "/api/overview", self.overview),
            Route("POST", "/api/queues", self.create_queue),
            Route("POST", "/api/queues/{queue}/messages", self.send),
            Route("POST", "/api/queues/{queue}/purge", self.purge),
            Route("DELETE", "/api/queues/{queue}", self.delete_queue),
            Route("DELETE", "/api/messages/{message}", self.delete_message),
        ]

    async def startup(self) -> None:
        self._client = AsyncClient(self.settings.url)
        self._sampler = Sampler(self._client, self.interval, self.window)
        self._task = asyncio.create_task(self._sampler.run())

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> AsyncClient:
        assert self._client is not None, "the dev tool has not started"
        return self._client

    @property
    def sampler(self) -> Sampler:
        assert self._sampler is not None, "the dev tool has not started"
        return self._sampler

    async def broker(self, call: Call[Any]) -> Any:
        """The broker's JSON answer to one of the client's calls, unparsed: what the dev
        tool shows is what the broker said (a peeked message's ``state`` included)."""
        return await self.client._run(replace(call, parse=as_is))

    # -- the original's endpoints --

    async def list_queues(self, req: Request) -> tuple[int, Any]:
        return 200, await self.broker(stats_call())

    async def show_queue(self, req: Request) -> tuple[int, Any]:
        size = integer(req.params, "size", 10, 1, 1000)
        after = integer(req.params, "after", 0, 0, MAX_ID)
        return 200, await self.broker(peek_call(path_queue(req.args["queue"]), size, after))

    # -- the dashboard --

    async def index(self, req: Request) -> tuple[int, Any]:
        return 200, load_asset("index.html")

    async def asset(self, req: Request) -> tuple[int, Any]:
        return 200, load_asset(req.args["file"])

    async def overview(self, req: Request) -> tuple[int, Any]:
        """The sampled counts of every queue (null when ``since`` is the current
        ``version``: nothing changed) and the selected ``queue``'s history."""
        p, s = req.params, self.sampler
        since = optional_integer(p, "since", 0, MAX_ID)
        seconds = integer(p, "window", 300, 1, 3600)
        out: dict[str, Any] = {
            "broker": self.settings.url, "error": s.error, "interval": s.interval,
            "version": s.version, "queues": None if since == s.version else s.rows, "history": None,
        }
        if p.get("queue") not in (None, ""):
            qid = s.find(path_queue(str(p["queue"])))
            out["history"] = None if qid is None else s.history.window(qid, seconds)
        return 200, out

    async def create_queue(self, req: Request) -> tuple[int, Any]:
        p = req.params
        attributes = {key: present(p.get(key)) for key in QUEUE_ATTRIBUTES}
        return await self.act(create_queue_call(p.get("name", ""), attributes))

    async def send(self, req: Request) -> tuple[int, Any]:
        p = req.params
        queue = path_queue(req.args["queue"])
        return await self.act(send_call(queue, p.get("body", ""), present(p.get("delay_seconds"))))

    async def purge(self, req: Request) -> tuple[int, Any]:
        return await self.act(purge_call(path_queue(req.args["queue"])))

    async def delete_queue(self, req: Request) -> tuple[int, Any]:
        return await self.act(delete_queue_call(path_queue(req.args["queue"])))

    async def delete_message(self, req: Request) -> tuple[int, Any]:
        return await self.act(delete_call(path_id(req.args["message"], "message"), None))

    async def act(self, call: Call[Any]) -> tuple[int, Any]:
        """Run an action on the broker, then refresh the counts so the page sees it."""
        result = await self.broker(call)
        await self.sampler.refresh()
        return 200, result


def load_asset(name: str) -> Raw:
    """One of the dashboard's files, from the package (``wonderq/dashboard/``)."""
    if name not in ASSETS:
        raise NotFound(f"no such file: {name}")
    data = (resources.files("wonderq") / "dashboard" / name).read_bytes()
    return Raw(data, ASSETS[name])
