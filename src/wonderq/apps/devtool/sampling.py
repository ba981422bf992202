"""The dev tool's memory: a :class:`Sampler` polls the broker's stats into a
:class:`History` of every queue's depths and rates, for the dashboard."""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from collections.abc import Sequence
from typing import Any

from wonderq.client import AsyncClient, QueueStats, stats_call
from wonderq.errors import Forbidden, Unauthorized, WonderQError

log = logging.getLogger("wonderq.devtool")
# One sample of one queue: its depths, then its rates (messages per second).
SERIES = ("messages", "visible", "in_flight", "delayed", "send_rate", "receive_rate", "delete_rate")
DEPTHS = 4
COUNTERS = ("sent", "received", "deleted")  # cumulative, per queue, from the broker's stats
NO_RATES = (0.0, 0.0, 0.0)


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
        "id": s.queue.id, "name": s.queue.name, "messages": s.messages,
        "visible": s.visible, "in_flight": s.in_flight, "delayed": s.delayed,
        "oldest_message_age": None if age is None else int(age),
        "send_rate": round(rates[0], 2), "receive_rate": round(rates[1], 2),
        "delete_rate": round(rates[2], 2), "redrive_target": s.queue.redrive_target,
        "max_receive_count": s.queue.max_receive_count, "fifo": s.queue.fifo, "tags": dict(s.queue.tags),
    }


def find(rows: Sequence[dict[str, Any]], ref: int | str) -> int | None:
    """A queue's id, from its id or name, among these rows."""
    key = "id" if isinstance(ref, int) else "name"
    return next((row["id"] for row in rows if row[key] == ref), None)


class Sampler:
    """Polls the broker's stats every ``interval`` seconds into a :class:`History`
    and keeps the latest counts as rows; ``version`` changes when the rows do.

    It polls with the dev tool's own key (WONDERQ_API_KEY). While the broker refuses that
    (or there is none), it borrows a logged-in browser's key for the history (:meth:`lend`),
    until that browser logs out or the key is revoked, then the next one's."""

    def __init__(self, client: AsyncClient, interval: float, window: float) -> None:
        self.client = client
        self.interval = interval
        self.history = History(max(2, round(window / interval)))
        self.rows: list[dict[str, Any]] = []
        self.version = 0
        self.error: str | None = None  # why the latest poll failed; None when it worked
        self.refused = False  # the broker refused the dev tool's own key (or its lack of one)
        self.borrowed: str | None = None  # a logged-in browser's key, polled with while refused
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
        borrowed = self.borrowed if self.refused else None
        try:
            stats = await (self.client.call(stats_call(), api_key=borrowed) if borrowed else self.client.stats())
        except WonderQError as exc:
            refused = isinstance(exc, Unauthorized | Forbidden)
            if refused and borrowed is None and self.borrowed is not None and not self.refused:
                self.refused = True  # the dev tool's own key, refused: the latest login's now
                return await self.fetch()
            self.error = self.failed(exc, refused, borrowed)
            return ticket, None
        self.refused = self.refused and borrowed is not None
        self.error = None
        return ticket, stats

    def failed(self, exc: WonderQError, refused: bool, borrowed: str | None) -> str:
        """Why a poll failed, logged when the polls start failing."""
        error = exc.message
        if refused and borrowed is not None:
            if self.borrowed == borrowed:
                self.borrowed = None  # revoked since: the next login lends another
            error = f"the broker refused the key of the latest login: {exc.message}; log in again"
        elif refused:
            self.refused = True
            error = f"the broker refused the dev tool's own key (WONDERQ_API_KEY): {exc.message}; log in"
        if self.error is None:
            log.warning("cannot sample the broker: %s", error)
        return error

    def give_back(self, key: str) -> None:
        """A browser logged out: its key samples no more (the dev tool's own is tried again, and
        the next logged-in browser's is borrowed if that is still refused)."""
        if self.borrowed == key:
            self.borrowed = None

    def lend(self, key: str) -> bool:
        """A logged-in browser's key, polled with while the dev tool's own is refused, unless
        another's is already (each browser's rows come from its own key: :meth:`DevTool.own_rows`);
        whether it is used now (then the caller may :meth:`refresh` at once)."""
        if self.borrowed is not None:
            return False
        self.borrowed = key
        return self.refused

    def publish(self, ticket: int, stats: list[QueueStats]) -> None:
        if ticket < self.published:
            return
        self.published = ticket
        rows = [queue_row(s, self.history.rates.get(s.queue.id, NO_RATES)) for s in stats]
        if rows != self.rows:
            self.rows = rows
            self.version += 1

