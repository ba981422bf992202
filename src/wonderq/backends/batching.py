"""Group commit: concurrent writes gathered into shared transactions.

A backend wraps each write in an op (:class:`Op` for a function run in a
writer thread, :class:`AsyncOp` for a coroutine on a connection), hands it to
:meth:`GroupCommit.submit` and awaits :meth:`Pending.result`. A flusher takes
*every* op queued so far and hands the batch to the backend's ``run``, which
runs them in one transaction and returns the wake-ups to deliver. While a
batch commits, the next one gathers, so a fsync is shared by every request
that arrived during the previous one. Up to ``parallel`` batches may be in
flight (1 for SQLite's single writer; more for PostgreSQL, whose row locks
keep concurrent batches apart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, Protocol, TypeVar

from wonderq.backends import rules
from wonderq.backends.rules import Woken
from wonderq.errors import WonderQError
from wonderq.models import Message, NewMessage, Queue, QueueRef

log = logging.getLogger("wonderq.batching")
Txn = TypeVar("Txn")
T = TypeVar("T")
TxnIn = TypeVar("TxnIn", contravariant=True)


class Pending(Generic[T]):
    """An op's outcome: whether it must be on disk before it is acknowledged,
    and the caller's future, resolved by :meth:`settle` after the commit."""

    __slots__ = ("_future", "_outcome", "durable")

    def __init__(self, durable: bool) -> None:
        self.durable = durable
        self._future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._outcome: tuple[T] | WonderQError | None = None

    def succeed(self, value: T) -> None:
        self._outcome = (value,)

    def fail(self, error: WonderQError) -> None:
        self._outcome = error

    def settle(self) -> None:
        if self._future.done():
            return
        if isinstance(self._outcome, tuple):
            self._future.set_result(self._outcome[0])
        else:
            self._future.set_exception(self._outcome or WonderQError())

    async def result(self) -> T:
        return await self._future


class Batchable(Protocol):
    """What the flusher needs of an op, whatever its result's type."""

    durable: bool

    def fail(self, error: WonderQError) -> None: ...

    def settle(self) -> None: ...


class Write(Batchable, Protocol[TxnIn]):
    """An op a writer thread runs."""

    def run(self, txn: TxnIn) -> None: ...


class AsyncWrite(Batchable, Protocol[TxnIn]):
    """An op a batch on a connection awaits."""

    async def run(self, txn: TxnIn) -> None: ...


class Op(Pending[T], Generic[Txn, T]):
    """A write run by a writer thread: ``fn(txn)``; a WonderQError fails it alone."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Txn], T], durable: bool = False) -> None:
        super().__init__(durable)
        self.fn = fn

    def run(self, txn: Txn) -> None:
        try:
            self.succeed(self.fn(txn))
        except WonderQError as exc:
            self.fail(exc)


class AsyncOp(Pending[T], Generic[Txn, T]):
    """A write run as a coroutine on the batch's connection: ``await fn(txn)``."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Txn], Awaitable[T]], durable: bool = False) -> None:
        super().__init__(durable)
        self.fn = fn

    async def run(self, txn: Txn) -> None:
        try:
            self.succeed(await self.fn(txn))
        except WonderQError as exc:
            self.fail(exc)


P = TypeVar("P", bound=Batchable)
K = TypeVar("K", bound=Hashable)


def groups(ops: list[P], key: Callable[[P], K]) -> list[tuple[K, list[P]]]:
    """A batch's ops that share a key, two or more to a group: those a batch may join."""
    by_key: dict[K, list[P]] = {}
    for op in ops:
        by_key.setdefault(key(op), []).append(op)
    return [(k, group) for k, group in by_key.items() if len(group) > 1]


class Sending(Protocol):
    """A send a batch may join with the other sends to its queue (each backend's ``Send``)."""

    ref: QueueRef
    messages: Sequence[NewMessage]

    def succeed(self, value: list[Message]) -> None: ...


S = TypeVar("S", bound=Sending)


def may_join(queue: Queue, send: Sending) -> bool:
    """Whether a send to ``queue`` may share an INSERT with others: not to a FIFO queue (its
    deduplication goes send by send), nor with a body over the limit (that one runs alone
    to say so)."""
    return not queue.fifo and rules.fit(queue, send.messages)


def joinable(queue: Queue, sends: list[S]) -> list[S]:
    """The sends to ``queue`` that may share one INSERT (:func:`may_join`), none at all
    unless two are left."""
    fit = [op for op in sends if may_join(queue, op)]
    return fit if len(fit) > 1 else []


def deal(sends: list[S], sent: list[Message]) -> set[int]:
    """Settle each joined send with its own messages (the INSERT's rows come back in the
    order sent); the ids of the ops settled."""
    start = 0
    for op in sends:
        op.succeed(sent[start:start + len(op.messages)])
        start += len(op.messages)
    return {id(op) for op in sends}


class GroupCommit(Generic[P]):
    def __init__(self, run: Callable[[list[P]], Awaitable[Woken]], committed: Callable[[Woken], None],
                 parallel: int = 1) -> None:
        self._run = run
        self._committed = committed
        self._parallel = parallel
        self._pending: list[P] = []
        self._flushers = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.commits = 0

    @property
    def busy(self) -> bool:
        return bool(self._flushers or self._pending)

    def submit(self, op: P) -> None:
        """Queue ``op`` for the next batch; the caller then awaits its result."""
        self._pending.append(op)
        if self._flushers < self._parallel:
            self._flushers += 1
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)  # the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                woken = await self._run_batch(batch)
                self.commits += 1
                for op in batch:
                    op.settle()
                if woken:
                    try:
                        self._committed(woken)
                    except Exception:  # a lost wake-up costs a safety poll; a dead flusher, all writes
                        log.exception("delivering wake-ups failed")
        finally:
            self._flushers -= 1

    async def _run_batch(self, batch: list[P]) -> Woken:
        """``run`` raises a WonderQError (Unavailable) when the database
        failed: every op gets it. Anything else is a fault of some op: run
        them one transaction each so that one fails alone."""
        try:
            return await self._run(batch)
        except WonderQError as exc:
            for op in batch:
                op.fail(exc)
            return []
        except Exception:
            if len(batch) == 1:
                log.exception("write failed")
                batch[0].fail(WonderQError())
                return []
        woken: Woken = []
        for op in batch:
            woken += await self._run_batch([op])
        return woken
