"""Message move tasks, for every API: a dead-letter queue's messages moved
back to the queues they came from (each message's ``origin``), or to one
destination, in chunks through :meth:`Backend.move_messages`, at most
``rate`` messages a second when given. Tasks run on the broker that started
them, in its lifespan (the app closes them), and are listed by it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from wonderq.backends import rules
from wonderq.backends.base import Backend
from wonderq.broker.access import ADMIN, OPEN, Grant
from wonderq.clock import Clock
from wonderq.errors import Forbidden, InvalidParameter, NotFound, QueueNotFound, WonderQError

log = logging.getLogger("wonderq.moves")
CHUNK = 100  # messages a move transaction takes at most
MAX_RATE = 500  # messages a second, the most a task may ask for


@dataclass(slots=True)
class MoveTask:
    id: str
    source: str
    destination: str | None  # None: each message back to its origin
    rate: int | None  # messages a second; None: as fast as the backend goes
    started_at: int
    to_move: int
    moved: int = 0
    status: str = "RUNNING"  # RUNNING, COMPLETED, CANCELLED or FAILED
    failure: str | None = None
    runner: asyncio.Task[None] | None = field(default=None, repr=False)


class MoveTasks:
    def __init__(self, backend: Backend, clock: Clock) -> None:
        self.db = backend
        self.clock = clock
        self.tasks: list[MoveTask] = []  # oldest first

    async def close(self) -> None:
        running = [t.runner for t in self.tasks if t.runner and not t.runner.done()]
        for runner in running:
            runner.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def start(self, source: str, destination: str | None = None, rate: int | None = None,
                    grant: Grant = OPEN) -> MoveTask:
        """Raise Forbidden unless ``grant`` reaches both queues as an admin (a key limited to
        some queues must name the destination: the messages' origins may be out of its
        reach), QueueNotFound for a missing queue, InvalidParameter if ``source`` is no
        queue's dead-letter queue, ``destination`` is of another kind, or a task from
        ``source`` is running already."""
        grant.check(ADMIN, source)
        if destination is not None:
            grant.check(ADMIN, destination)
        elif grant.queues:
            raise Forbidden("this key is limited to some queues: name the destination (the messages'"
                            " origins may be queues it does not reach)")
        queues = {q.name: q for q in await self.db.list_queues()}
        for name in (source, destination):
            if name is not None and name not in queues:
                raise QueueNotFound(f"queue {name!r} does not exist")
        if not any(q.attributes.redrive_target == source for q in queues.values()):
            raise InvalidParameter(f"{source} is no queue's dead-letter queue: no queue's redrive_target (SQS:"
                                   " RedrivePolicy) names it")
        if destination is not None:
            rules.check_kind("destination", queues[destination], source)
        if destination == source:
            raise InvalidParameter("a move's destination must be another queue than its source")
        if any(t.status == "RUNNING" and t.source == source for t in self.tasks):
            raise InvalidParameter(f"a move task from {source} is running already; one at a time")
        stats = await self.db.queue_stats(source)
        task = MoveTask(str(uuid.uuid4()), source, destination, rate, self.clock.now_ms(), stats.visible)
        task.runner = asyncio.create_task(self._run(task))
        self.tasks.append(task)
        return task

    async def _run(self, task: MoveTask) -> None:
        chunk = min(CHUNK, task.rate or CHUNK)
        try:
            while task.status == "RUNNING":
                moved = await self.db.move_messages(task.source, task.destination, chunk)
                task.moved += moved
                if moved == 0:
                    task.status = "COMPLETED"
                else:
                    await asyncio.sleep(moved / task.rate if task.rate else 0)
        except WonderQError as exc:
            task.status, task.failure = "FAILED", exc.message
            log.warning("message move task from %s failed: %s", task.source, exc.message)

    def cancel(self, task_id: str) -> MoveTask:
        """Stop a running task; raise NotFound if there is none with this id."""
        task = next((t for t in self.tasks if t.id == task_id and t.status == "RUNNING"), None)
        if task is None:
            raise NotFound(f"no running move task {task_id}")
        task.status = "CANCELLED"
        if task.runner is not None:
            task.runner.cancel()
        return task

    def of(self, source: str) -> list[MoveTask]:
        """The tasks from ``source``, newest first."""
        return [t for t in reversed(self.tasks) if t.source == source]
