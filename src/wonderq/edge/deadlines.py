"""Deadlines for many connections at once, with no timer each.

An item is *armed* in a slot of :data:`TICK` seconds; a sweep once a tick takes
every item of the slots that have passed and asks it (``expired(item, now)``)
whether its deadline has come: the item keeps its own, current deadline and
re-arms itself when that is still ahead. So a request moves its connection
through three deadlines (headers, body, keep-alive) by writing one attribute
each; the wheel is touched only when a deadline moves *earlier* than the slot
the item sits in (a request that arrives in pieces) or when the item is not
armed at all. A connection idle for 75 s is looked at about once in that time
(9,900 idle ones walked four times a second cost a sender 11-19 % of its rate:
bench.py's ``connections``). An item is asked between its deadline and two
ticks after it, never before.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger("wonderq.edge")
T = TypeVar("T", bound=Hashable)
TICK = 0.25  # seconds a slot spans, and between sweeps


class Deadlines(Generic[T]):
    def __init__(self, expired: Callable[[T, float], None], tick: float = TICK) -> None:
        self.expired, self.tick = expired, tick
        self.slots: dict[int, dict[T, None]] = {}
        self.slot_of: dict[T, int] = {}
        self.sweeper: asyncio.Task[None] | None = None
        self.stopped = False

    def arm(self, item: T, due: float) -> None:
        """Make sure ``item`` is asked at ``due`` (``time.monotonic()``) or soon after,
        unless it is armed to be asked earlier already."""
        slot = math.ceil(due / self.tick)
        old = self.slot_of.get(item)
        if old is not None:
            if old <= slot:
                return
            self.slots[old].pop(item, None)
        self.slots.setdefault(slot, {})[item] = None
        self.slot_of[item] = slot
        if self.sweeper is None and not self.stopped:
            self.sweeper = asyncio.get_running_loop().create_task(self.sweep())

    def discard(self, item: T) -> None:
        """``item`` is not to be asked any more."""
        slot = self.slot_of.pop(item, None)
        if slot is not None:
            self.slots[slot].pop(item, None)

    def stop(self) -> None:
        """No more sweeps (the server is stopping)."""
        self.stopped = True
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None

    async def sweep(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.expire(time.monotonic())

    def expire(self, now: float) -> None:
        """Ask every item armed in a slot at or before ``now``."""
        current = math.floor(now / self.tick)
        for slot in sorted(s for s in self.slots if s <= current):
            for item in self.slots.pop(slot):
                del self.slot_of[item]
                try:
                    self.expired(item, now)
                except Exception:  # one item's fault must not end every other's timeout
                    log.exception("a deadline's handler failed")
