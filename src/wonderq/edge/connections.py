"""What a server's connections share: the app, the limits, the deadlines, the open set,
and the stop that closes them all. Each is a :class:`~wonderq.edge.connection.Connection`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from wonderq.edge.connection import Connection
from wonderq.edge.deadlines import Deadlines
from wonderq.edge.limits import Limits, Refusals

if TYPE_CHECKING:
    from wonderq.edge.app import App

__all__ = ["Connection", "Connections"]


class Connections:
    """What a server's connections share: the app, the limits, the deadlines, the open set."""

    def __init__(self, app: App, limits: Limits, access_log: bool = False) -> None:
        self.app, self.limits, self.access_log = app, limits, access_log
        self.open: set[Connection] = set()
        self.idle: dict[Connection, None] = {}  # kept alive between requests, oldest first
        self.tasks: set[asyncio.Task[None]] = set()  # each connection's answering, while it runs
        self.deadlines: Deadlines[Connection] = Deadlines(Connection.expired)
        self.refusals = Refusals()

    def __call__(self) -> Connection:
        """A protocol for one new connection (``loop.create_server``'s factory)."""
        return Connection(self)

    async def close(self, grace: float) -> None:
        """Stop: idle connections close now, busy ones once answered or after ``grace`` seconds.
        A long poll is answered at once, as if its client had gone: empty, claiming nothing."""
        self.deadlines.stop()
        for conn in list(self.open):
            conn.closing = True
            if not conn.busy:
                conn.transport.close()
            else:
                conn.stop_waiting()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=grace)
        for conn in list(self.open):
            conn.transport.close()  # a long poll still waiting sees its client go
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=0.5)
        left = set(self.tasks)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
