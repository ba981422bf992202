"""Group commit: concurrent writes gathered into shared transactions.

Callers :meth:`GroupCommit.submit` an op and await its result. A flusher takes
*every* op queued so far and hands the batch to the backend's ``run``, which
executes them in one transaction and returns one ``(ok, value)`` per op plus the
wake-ups to deliver. While a batch commits, the next one gathers, so a fsync
is shared by every request that arrived during the previous one. Up to
``parallel`` batches may be in flight (1 for SQLite's single writer; more for
PostgreSQL, whose row locks keep concurrent batches apart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from wonderq.errors import WonderQError

log = logging.getLogger("wonderq.batching")
Woken = list[tuple[int, int]]  # (queue_id, messages made visible)
Results = list[tuple[bool, Any]]  # per op: (True, value) or (False, WonderQError)


@dataclass(slots=True)
class Op:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    durable: bool  # must be on disk before it is acknowledged


class GroupCommit:
    def __init__(
        self,
        run: Callable[[list[Op]], Awaitable[tuple[Results, Woken]]],
        committed: Callable[[Woken], None],
        parallel: int = 1,
    ) -> None:
        self._run = run
        self._committed = committed
        self._parallel = parallel
        self._pending: list[Op] = []
        self._flushers = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.commits = 0

    @property
    def busy(self) -> bool:
        return bool(self._flushers or self._pending)

    async def submit(self, fn: Callable[..., Any], *args: Any, durable: bool = False) -> Any:
        """Queue ``fn(txn, *args)`` for the next batch; its result, or its error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(Op(fn, args, future, durable))
        if self._flushers < self._parallel:
            self._flushers += 1
            task = loop.create_task(self._flush())
            self._tasks.add(task)  # the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                results, woken = await self._run_batch(batch)
                self.commits += 1
                for op, (ok, value) in zip(batch, results, strict=True):
                    if not op.future.done():
                        if ok:
                            op.future.set_result(value)
                        else:
                            op.future.set_exception(value)
                if woken:
                    try:
                        self._committed(woken)
                    except Exception:  # a lost wake-up costs a safety poll; a dead flusher, all writes
                        log.exception("delivering wake-ups failed")
        finally:
            self._flushers -= 1

    async def _run_batch(self, batch: list[Op]) -> tuple[Results, Woken]:
        """``run`` raises a WonderQError (Unavailable) when the database
        failed: every op gets it. Anything else is a fault of some op: run
        them one transaction each so that one fails alone."""
        try:
            return await self._run(batch)
        except WonderQError as exc:
            return [(False, exc)] * len(batch), []
        except Exception:
            if len(batch) == 1:
                log.exception("write failed")
                return [(False, WonderQError())], []
        results: Results = []
        woken: Woken = []
        for op in batch:
            result, op_woken = await self._run_batch([op])
            results += result
            woken += op_woken
        return results, woken
