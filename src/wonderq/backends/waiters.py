"""Long-poll wake-ups: consumers park here until a queue may have messages.

Each queue has a version, bumped by every :meth:`Waiters.notify`, and a FIFO of
parked consumers. A consumer reads the version, claims, and parks only if the
version is unchanged, so a send that commits between its empty claim and its
parking is never missed. ``notify(queue, n)`` wakes at most ``n`` consumers (one
per message made visible) instead of the whole herd.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Waiters:
    def __init__(self) -> None:
        self._parked: dict[int, deque[asyncio.Future[bool]]] = {}
        self._versions: dict[int, int] = {}

    def version(self, queue_id: int) -> int:
        return self._versions.get(queue_id, 0)

    def notify(self, queue_id: int, n: int) -> None:
        """Up to ``n`` messages became visible in the queue: wake ``n`` consumers."""
        self._versions[queue_id] = self._versions.get(queue_id, 0) + 1
        parked = self._parked.get(queue_id)
        if not parked:
            return
        while parked and n > 0:
            future = parked.popleft()
            if not future.done():
                future.set_result(True)
                n -= 1
        if not parked:
            del self._parked[queue_id]

    def wake_all(self) -> None:
        """Wake every parked consumer (after notifications may have been lost)."""
        for queue_id in list(self._parked):
            self.notify(queue_id, len(self._parked.get(queue_id, ())))

    async def wait(
        self, queue_id: int, version: int, timeout: float, gone: asyncio.Future[None] | None
    ) -> bool:
        """Park until notified (True), or timeout or ``gone`` resolves (False)."""
        if self._versions.get(queue_id, 0) != version:
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        parked = self._parked.setdefault(queue_id, deque())
        parked.append(future)

        def wake(_: object = None) -> None:
            if not future.done():
                future.set_result(False)

        timer = loop.call_later(timeout, wake)
        if gone is not None:
            gone.add_done_callback(wake)
        try:
            return await future
        finally:
            timer.cancel()
            if gone is not None:
                gone.remove_done_callback(wake)
            if parked and future in parked:
                parked.remove(future)
                if not parked and self._parked.get(queue_id) is parked:
                    del self._parked[queue_id]
