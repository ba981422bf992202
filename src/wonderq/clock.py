"""Time, injectable: what a message's life depends on asks a :class:`Clock`.

The broker runs on :class:`Clock` (the system's wall clock); tests pass a
clock they move by hand, so nothing that depends on time has to sleep.
PostgreSQL takes message times from the database's own clock, so brokers on
several machines agree on them; the injected clock serves the rest there.
"""

from __future__ import annotations

import time


class Clock:
    """Wall-clock time in integer milliseconds since the Unix epoch."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock(Clock):
    """A clock that moves only when told: ``advance(seconds)``."""

    def __init__(self, start_ms: int | None = None) -> None:
        self.ms = Clock().now_ms() if start_ms is None else start_ms

    def now_ms(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)
