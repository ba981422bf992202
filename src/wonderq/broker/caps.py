"""The in-flight cap (``--max-in-flight``; SQS's is 120,000): how many of a queue's
messages may be received and not yet deleted before receives stop handing out more.

Approximate, as AWS's is. Each broker process keeps every queue's count as
:meth:`Backend.queue_stats` last gave it (none before the first reading), plus the
messages it has handed out since (:meth:`InFlightCap.took`): an upper bound of its
own share, as deletes only lower it. It reads the count only once that estimate is
past an eighth of the cap, and again at most once a second per queue (by the injected
clock): so a queue far from the cap is never read, however busy, and its receives pay
a dict look-up (0.4 µs, against 160 µs for a receive on SQLite; bench/README.md has
the quick loop's figures). Even one reading per queue was too many: a load spread over
10,000 queues paid SQLite's reader 0.2 ms for each queue's first receive, a fifth of
the consume's rate. A queue can thus go past the cap by what other brokers (or this
one, before its first reading or after forgetting a queue far from the cap) claim
between readings: an eighth of the cap each, at most, plus the receive that crossed it,
and counted apart for a queue named both by name and by id (readings are kept by the
ref a receive gives). A receive may be refused up to a second after deletes brought the
count back under it. The reading itself runs on the reader (SQLite) or the pool
(PostgreSQL), never the writer: 0.2 ms with nothing in flight, 3 ms with 10,000, 39 ms
with 120,000 (SQLite).
Counting in the claim's own transaction would be exact, but would cost every claim
that walk over the index entries of the messages in flight, on the single writer.

What a receive at the cap gets is each API's business: the REST API answers
``403 over_limit`` (its client is told); the SQS API follows AWS's documents
(:meth:`~wonderq.broker.sqs.messages.MessageActions.at_cap`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from functools import partial

from wonderq.backends.base import Backend
from wonderq.clock import Clock
from wonderq.errors import OverLimit, QueueNotFound
from wonderq.models import QueueRef, QueueStats

REFRESH_MS = 1000  # a queue's count is read at most this often, per process
WATCH = 8  # ... and only once its estimate is past cap / WATCH
PRUNE_AT = 4096  # readings kept before those far from the cap are dropped (the bound then doubles)


@dataclass(slots=True)
class Reading:
    at: int  # clock ms
    stats: QueueStats | None  # None: not read yet
    taken: int = 0  # messages this process has handed out since

    @property
    def estimate(self) -> int:
        return (0 if self.stats is None else self.stats.in_flight) + self.taken

    def stale(self, cap: int, now: int) -> bool:
        """Past an eighth of the cap, and never read or read a second ago or more."""
        return self.estimate * WATCH >= cap and (self.stats is None or now - self.at >= REFRESH_MS)


class InFlightCap:
    def __init__(self, backend: Backend, cap: int, clock: Clock) -> None:
        self.db = backend
        self.cap = cap
        self.clock = clock
        self._readings: dict[QueueRef, Reading] = {}  # by the ref receives give: id or name
        self._pending: dict[QueueRef, asyncio.Future[Reading]] = {}
        self._prune_at = PRUNE_AT

    async def full(self, ref: QueueRef) -> QueueStats | None:
        """The queue's stats as last read, with its in-flight estimate, if that has
        reached the cap, else None. Raise QueueNotFound (when read) for no such queue."""
        reading = self._readings.get(ref)
        if reading is None:
            return None
        if reading.stale(self.cap, self.clock.now_ms()):
            reading = await self._read(ref)
        if reading.estimate < self.cap or reading.stats is None:  # at the cap, it has been read
            return None
        return replace(reading.stats, in_flight=reading.estimate)

    def took(self, ref: QueueRef, n: int) -> None:
        """A receive of the queue handed out ``n`` messages."""
        if not n:
            return
        reading = self._readings.get(ref)
        if reading is None:
            if len(self._readings) >= self._prune_at:
                self._prune()
            self._readings[ref] = reading = Reading(self.clock.now_ms(), None)
        reading.taken += n

    def _prune(self) -> None:
        """Forget the queues far from the cap (deleted ones among them): each forgot less
        than an eighth of the cap, and counts from nothing again. Those past an eighth stay,
        so a queue at the cap is never let through for having been forgotten."""
        self._readings = {r: k for r, k in self._readings.items() if k.estimate * WATCH >= self.cap}
        self._prune_at = max(PRUNE_AT, 2 * len(self._readings))

    def refused(self, stats: QueueStats) -> OverLimit:
        return OverLimit(
            f"queue {stats.queue.name!r} has {stats.in_flight} messages in flight (received, not deleted), at or"
            f" past the most allowed (--max-in-flight or WONDERQ_MAX_IN_FLIGHT, now {self.cap}); delete them or let"
            " their visibility timeouts end"
        )

    async def _read(self, ref: QueueRef) -> Reading:
        """One read per queue at a time: receives that find it stale together share it."""
        pending = self._pending.get(ref)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(ref))
            self._pending[ref] = pending
            pending.add_done_callback(partial(self._settled, ref))
        return await asyncio.shield(pending)  # a receive cancelled (its client gone) leaves it to the others

    async def _fetch(self, ref: QueueRef) -> Reading:
        reading = self._readings[ref] = Reading(self.clock.now_ms(), await self.db.queue_stats(ref))
        return reading

    def _settled(self, ref: QueueRef, future: asyncio.Future[Reading]) -> None:
        self._pending.pop(ref, None)
        if not future.cancelled() and isinstance(future.exception(), QueueNotFound):  # retrieved: never logged
            self._readings.pop(ref, None)  # deleted: forget it (a failed read keeps it, to be read again)
