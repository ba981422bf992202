"""The SQLite backend: one file, one writer thread, group commit.

Every write (send, claim, delete, visibility change, purge) becomes an *op*
queued on the event loop. One flusher hands all ops queued so far to the writer
thread, which runs them in a single ``BEGIN IMMEDIATE … COMMIT``; then each
caller gets its result. While one batch is being committed (and fsynced, with
durability ``full``), the next one gathers, so many concurrent requests share
one fsync. Reads (peeks, stats) run on a second connection and thread and never
wait for the writer (WAL mode).

Several processes may share the file (``--cluster``): SQLite's write lock
serialises their transactions, each claim (a ``SELECT … LIMIT n``, then an
``UPDATE`` by id per message) is inside one, and
:class:`~wonderq.backends.sqlite.wakeups.Wakeups` carries wake-ups between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from wonderq.backends import rules
from wonderq.backends.base import Backend
from wonderq.backends.batching import GroupCommit, Op, Write, deal, may_join
from wonderq.backends.rules import Deleted
from wonderq.backends.sqlite import keys, queries, reads, schema
from wonderq.backends.sqlite.txn import QueueCache, Txn, resolve
from wonderq.backends.sqlite.wakeups import Wakeups
from wonderq.clock import Clock
from wonderq.errors import Unavailable
from wonderq.models import ApiKey, Claim, Message, NewMessage, Queue, QueueAttributes, QueueRef, QueueStats
from wonderq.settings import Settings

log = logging.getLogger("wonderq.sqlite")
T = TypeVar("T")

RESYNC_SEQUENCE = (
    "UPDATE sequence SET next_id = max(next_id, (SELECT coalesce(max(id), 0) + 1 FROM messages))"
)
CHECKPOINT_INTERVAL = 0.25  # seconds
WAL_LIMIT_PAGES = 16_384  # past this (64 MiB) the writer restarts the WAL (see _run_checkpoint)
RETRY_BUSY = 600  # BEGIN attempts (each waits busy_timeout) before giving up


class SqliteBackend(Backend):
    def __init__(self, path: str, settings: Settings, clock: Clock) -> None:
        super().__init__(clock)
        self.path = path
        self.settings = settings
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="wonderq-writer")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="wonderq-reader")
        self._checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="wonderq-checkpoint")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._sync = ""  # the writer's current PRAGMA synchronous
        self._wal_long = False  # the WAL is past WAL_LIMIT_PAGES: the writer restarts it
        self._queues = QueueCache()  # the writer thread's alone
        self._group: GroupCommit[Write[Txn]] = GroupCommit(self._run_in_writer, self._committed)
        self._sweeper: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._wakeups = Wakeups(path, self.waiters.notify)

    # -- life cycle ---------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._writer_thread, self._connect, True)
        self._reader = await loop.run_in_executor(self._reader_thread, self._connect, False)
        self._checkpointer = await loop.run_in_executor(self._checkpoint_thread, self._connect, False)
        self._wakeups.start()
        self._sweeper = loop.create_task(self.retention_loop(self.settings.retention_interval))
        self._checkpoints = loop.create_task(self._checkpoint())

    def _connect(self, writer: bool) -> sqlite3.Connection:
        if writer and self.path != ":memory:":  # created readable by its owner only (SQLite's
            with contextlib.suppress(OSError):  # -wal and -shm follow it); else SQLite says why
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 100")
        if writer:
            conn.execute("PRAGMA journal_mode = WAL")
            self._begin(conn)
            schema.upgrade(conn)
            conn.execute(RESYNC_SEQUENCE)  # rows may have been written by other tools
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # see _checkpoint
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_PAGES * 4096}")
        sync = "FULL" if self.settings.durability == "full" else "NORMAL"
        conn.execute(f"PRAGMA synchronous = {sync}")
        conn.execute("PRAGMA cache_size = -16000")
        return conn

    async def close(self) -> None:
        for task in (self._sweeper, self._checkpoints):
            if task is not None:
                task.cancel()
        while self._group.busy:
            await asyncio.sleep(0.001)
        self._wakeups.close()
        for thread, conn in (
            (self._writer_thread, self._writer),
            (self._reader_thread, self._reader),
            (self._checkpoint_thread, self._checkpointer),
        ):
            if conn is not None:
                thread.submit(conn.close).result()
            thread.shutdown()

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # -- the verbs (the contract is in Backend's docstrings) ---------------------

    async def create_queue(self, name: str, attributes: QueueAttributes) -> Queue:
        cap = self.settings.max_queues
        return await self._write(lambda txn: queries.create_queue(txn, name, attributes, cap), durable=True)

    async def get_queue(self, ref: QueueRef) -> Queue:
        return await self._read(lambda conn: resolve(conn, ref))

    async def list_queues(self) -> list[Queue]:
        return await self._read(queries.list_queues)

    async def delete_queue(self, ref: QueueRef) -> None:
        await self._write(lambda txn: queries.delete_queue(txn, ref), durable=True)

    async def set_attributes(self, ref: QueueRef, attributes: QueueAttributes) -> Queue:
        return await self._write(lambda txn: queries.set_attributes(txn, ref, attributes), durable=True)

    async def set_tags(self, ref: QueueRef, tags: Mapping[str, str]) -> Queue:
        return await self._write(lambda txn: queries.set_tags(txn, ref, tags), durable=True)

    async def purge(self, ref: QueueRef) -> int:
        return await self._write(lambda txn: queries.purge(txn, ref), durable=True)

    async def send_batch(self, ref: QueueRef, messages: Sequence[NewMessage]) -> list[Message]:
        op = Send(ref, messages)
        self._group.submit(op)
        return await op.result()

    async def claim(self, ref: QueueRef, size: int, visibility_timeout: int | None) -> Claim:
        return await self._write(lambda txn: queries.claim(txn, ref, size, visibility_timeout))

    async def move_messages(self, ref: QueueRef, destination: QueueRef | None, limit: int) -> int:
        return await self._write(lambda txn: queries.move_messages(txn, ref, destination, limit), durable=True)

    async def delete(self, message_id: int, token: str | None = None) -> None:
        await self._write(lambda txn: queries.delete(txn, message_id, token))

    async def delete_batch(self, entries: Sequence[tuple[int, str | None]], queue: QueueRef | None = None) -> Deleted:
        return await self._write(lambda txn: queries.delete_batch(txn, entries, queue))

    async def change_visibility(
        self, message_id: int, token: str, visibility_timeout: int, queue: QueueRef | None = None,
    ) -> Message:
        return await self._write(
            lambda txn: queries.change_visibility(txn, message_id, token, visibility_timeout, queue))

    async def queues_of(self, message_ids: Sequence[int]) -> dict[int, str]:
        return await self._read(lambda conn: reads.queues_of(conn, message_ids))

    async def peek(self, ref: QueueRef, size: int, after_id: int = 0) -> list[Message]:
        return await self._read(lambda conn: reads.peek(conn, ref, size, after_id))

    async def stats(self) -> list[QueueStats]:
        now = self.clock.now_ms()
        return await self._read(lambda conn: reads.stats(conn, now))

    async def create_key(self, key_id: str, name: str, scope: str, queues: Sequence[str], secret_hash: str) -> ApiKey:
        return await self._write(lambda txn: keys.create_key(txn, key_id, name, scope, queues, secret_hash),
                                 durable=True)

    async def list_keys(self, active_only: bool = False) -> list[ApiKey]:
        return await self._read(lambda conn: keys.list_keys(conn, active_only))

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self._write(lambda txn: keys.revoke_key(txn, key_id), durable=True)

    async def queue_stats(self, ref: QueueRef) -> QueueStats:
        now = self.clock.now_ms()
        return await self._read(lambda conn: reads.queue_stats(conn, ref, now))

    async def expire_some(self, limit: int) -> int:
        return await self._write(lambda txn: queries.expire(txn, limit))

    async def _checkpoint(self) -> None:
        """Copy committed WAL pages into the database on a thread of its own.

        The writer's automatic checkpoint is off, so no commit ever waits for
        the database file to be written and fsynced; commits and checkpoints
        overlap instead.

        The WAL starts over from its beginning only when a write begins with every
        frame copied, and under steady load a commit nearly always lands while a
        checkpoint runs, so the WAL keeps growing. Past WAL_LIMIT_PAGES the writer
        itself checkpoints once, right after its next commit (only the frames since
        this checkpoint are left to copy), so its next transaction restarts the
        WAL. (A TRUNCATE checkpoint here instead held the writer for 56 ms, the
        latency's p99.9.) ``journal_size_limit`` then trims the file to the limit.
        """
        loop = asyncio.get_running_loop()
        seen = 0
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            if self._group.commits == seen:
                continue
            seen = self._group.commits
            try:
                await loop.run_in_executor(self._checkpoint_thread, self._run_checkpoint)
            except sqlite3.Error:
                log.exception("checkpoint failed")

    def _run_checkpoint(self) -> None:
        assert self._checkpointer is not None
        _, wal_pages, _ = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0]
        self._wal_long = wal_pages > WAL_LIMIT_PAGES  # the writer restarts it (_run_batch)

    # -- the writer: group commit ---------------------------------------------

    async def _write(self, fn: Callable[[Txn], T], durable: bool = False) -> T:
        op = Op(fn, durable)
        self._group.submit(op)
        return await op.result()

    async def _run_in_writer(self, batch: list[Write[Txn]]) -> rules.Woken:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer_thread, self._run_batch, batch)
        except sqlite3.OperationalError as exc:  # disk full, I/O error, locked for a minute
            log.exception("write batch failed")
            raise Unavailable(f"database unavailable: {exc}") from exc

    def _committed(self, woken: rules.Woken) -> None:
        for queue_id, n in woken:
            self.waiters.notify(queue_id, n)
        self._wakeups.send(woken)

    def _run_batch(self, batch: list[Write[Txn]]) -> rules.Woken:
        """Writer thread: run every op of the batch in one transaction."""
        assert self._writer is not None
        conn = self._writer
        self._set_sync(any(op.durable for op in batch))
        self._begin(conn)
        self._queues.begin(conn)
        txn = Txn(conn, self.clock.now_ms(), queues=self._queues)
        try:
            joined = send_joined(txn, [op for op in batch if isinstance(op, Send)])
            for op in batch:
                if id(op) not in joined:
                    op.run(txn)
            txn.finish()
            conn.execute("COMMIT")
        except BaseException:
            self._queues.clear()  # it may hold what the transaction read of its own changes
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if self._wal_long:  # copy the last few frames, so that the next write restarts the WAL
            self._wal_long = False
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return txn.changes.woken

    def _set_sync(self, durable: bool) -> None:
        """fsync at commit only for batches holding a durable op (sends, queue
        changes). Receipts and deletes commit without one: the next fsync (any
        send's, or a checkpoint's) covers them, since the WAL is written in order.
        A power loss may thus re-deliver a message, never lose one; a killed
        process loses nothing at all (the OS holds the committed pages)."""
        sync = "FULL" if durable and self.settings.durability == "full" else "NORMAL"
        if sync != self._sync:
            assert self._writer is not None
            self._writer.execute(f"PRAGMA synchronous = {sync}")
            self._sync = sync

    @staticmethod
    def _begin(conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting out other processes' write locks."""
        for attempt in range(RETRY_BUSY):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(0.0005 * min(attempt + 1, 10))
        raise Unavailable("database is busy, try again")

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._reader is not None
        reader = self._reader
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader_thread, fn, reader)
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc}") from exc


class Send(Op[Txn, list[Message]]):
    """A send, which its batch may join with its other sends (to standard queues)."""

    __slots__ = ("messages", "ref")

    def __init__(self, ref: QueueRef, messages: Sequence[NewMessage]) -> None:
        super().__init__(lambda txn: queries.send_batch(txn, ref, messages), durable=True)
        self.ref, self.messages = ref, messages


def send_joined(txn: Txn, sends: list[Send]) -> set[int]:
    """The sends of a batch that may join (``batching.may_join``: to a standard queue, within
    its size limit), to whichever queues, as one executemany: each send's own call had been
    half a single send's writer time, and joining only sends to one queue left a load spread
    over 10,000 queues out. Staged in one pass, in the order sent (staging a queue at a
    time had cost each queue a draw of ids and UUIDs). The ids of the ops settled so; the
    rest run alone."""
    fit = [(queue, op) for op in sends if (queue := txn.find(op.ref)) is not None and may_join(queue, op)]
    if len(fit) < 2:
        return set()
    sent = queries.staged(txn, [(queue, m) for queue, op in fit for m in op.messages])
    queries.insert(txn, sent)
    return deal([op for _, op in fit], sent)
