"""The SQLite backend: one file, one writer thread, group commit.

Every write (send, claim, delete, visibility change, purge) becomes an *op*
queued on the event loop. One flusher hands all ops queued so far to the writer
thread, which runs them in a single ``BEGIN IMMEDIATE … COMMIT``; then each
caller gets its result. While one batch is being committed (and fsynced, with
durability ``full``), the next one gathers, so many concurrent requests share
one fsync. Reads (peeks, stats) run on a second connection and thread and never
wait for the writer (WAL mode).

Several processes may share the file (``--cluster``): SQLite's write lock
serialises their transactions, each claim is a single ``UPDATE … RETURNING``
inside one, and :class:`~wonderq.siblings.Siblings` carries wake-ups between them.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from wonderq import sqlite_ops as ops
from wonderq.backend import OpsBackend, Tally, now_ms
from wonderq.batching import GroupCommit, Op, Results, Woken
from wonderq.errors import Unavailable, WonderQError
from wonderq.settings import Settings
from wonderq.siblings import Siblings

log = logging.getLogger("wonderq.sqlite")
T = TypeVar("T")

SCHEMA_VERSION = len(ops.MIGRATIONS)
RESYNC_SEQUENCE = (
    "UPDATE sequence SET next_id = max(next_id, (SELECT coalesce(max(id), 0) + 1 FROM messages))"
)
CHECKPOINT_INTERVAL = 0.25  # seconds
WAL_LIMIT_PAGES = 16_384  # past this (64 MiB) a checkpoint also truncates the WAL
RETRY_BUSY = 600  # BEGIN attempts (each waits busy_timeout) before giving up


@dataclass(slots=True)
class Txn:
    """What an op sees: the writer connection, the batch's clock, a list of
    ``(queue_id, n)`` wake-ups to deliver after the commit, and message ids.

    Message ids come from the one-row ``sequence`` table, read at most once
    and written back once per transaction: monotonic and never reused, like
    AUTOINCREMENT, without its bookkeeping on every insert.
    """

    conn: sqlite3.Connection
    now: int
    woken: list[tuple[int, int]] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    next_id: int = 0  # 0: not read yet in this transaction

    def take_ids(self, n: int) -> range:
        if not self.next_id:
            self.next_id = self.conn.execute("SELECT next_id FROM sequence").fetchone()[0]
        start, self.next_id = self.next_id, self.next_id + n
        return range(start, self.next_id)

    def finish(self) -> None:
        if self.next_id:
            self.conn.execute("UPDATE sequence SET next_id = ?", (self.next_id,))
        self.conn.executemany(ops.ADD_COUNTS, self.tally.rows())


class SqliteBackend(OpsBackend):
    ops = ops

    def __init__(self, path: str, settings: Settings) -> None:
        super().__init__()
        self.path = path
        self.settings = settings
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="wonderq-writer")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="wonderq-reader")
        self._checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="wonderq-checkpoint")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._sync = ""  # the writer's current PRAGMA synchronous
        self._group = GroupCommit(self._run_in_writer, self._committed)
        self._sweeper: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._siblings = Siblings(path, self.waiters.notify)

    # -- life cycle ---------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._writer_thread, self._connect, True)
        self._reader = await loop.run_in_executor(self._reader_thread, self._connect, False)
        self._checkpointer = await loop.run_in_executor(self._checkpoint_thread, self._connect, False)
        self._siblings.start()
        self._sweeper = loop.create_task(self.retention_loop(self.settings.retention_interval))
        self._checkpoints = loop.create_task(self._checkpoint())

    def _connect(self, writer: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 100")
        if writer:
            conn.execute("PRAGMA journal_mode = WAL")
            self._begin(conn)
            ops.migrate(conn)
            conn.execute(RESYNC_SEQUENCE)  # rows may have been written by other tools
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # see _checkpoint
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
        self._siblings.close()
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

    async def _checkpoint(self) -> None:
        """Copy committed WAL pages into the database on a thread of its own.

        The writer's automatic checkpoint is off, so no commit ever waits for
        the database file to be written and fsynced; commits and checkpoints
        overlap instead. A WAL grown past WAL_LIMIT_PAGES is truncated.
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
        _, wal_pages, _ = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if wal_pages > WAL_LIMIT_PAGES:
            self._checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- the writer: group commit ---------------------------------------------

    async def _write(self, fn: Callable[..., T], *args: Any, durable: bool = False) -> T:
        return cast(T, await self._group.submit(fn, *args, durable=durable))

    async def _run_in_writer(self, batch: list[Op]) -> tuple[Results, Woken]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer_thread, self._run_batch, batch)
        except sqlite3.OperationalError as exc:  # disk full, I/O error, locked for a minute
            log.exception("write batch failed")
            raise Unavailable(f"database unavailable: {exc}") from exc

    def _committed(self, woken: Woken) -> None:
        for queue_id, n in woken:
            self.waiters.notify(queue_id, n)
        self._siblings.send(woken)

    def _run_batch(self, batch: list[Op]) -> tuple[Results, Woken]:
        """Writer thread: run every op of the batch in one transaction."""
        assert self._writer is not None
        conn = self._writer
        self._set_sync(any(op.durable for op in batch))
        self._begin(conn)
        txn = Txn(conn, now_ms())
        results: Results = []
        try:
            for op in batch:
                try:
                    results.append((True, op.fn(txn, *op.args)))
                except WonderQError as exc:
                    results.append((False, exc))
            txn.finish()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results, txn.woken

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
