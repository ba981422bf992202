"""The PostgreSQL backend: any number of stateless brokers on one database.

Writes go through :class:`~wonderq.backends.batching.GroupCommit` with several batches
in flight, each one transaction on a pooled asyncpg connection; claims are
``WITH picked AS MATERIALIZED (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)
UPDATE … FROM picked RETURNING``, so concurrent batches and brokers never
hand out the same message. A batch that
made messages visible ends with ``pg_notify`` in the same transaction; every
broker LISTENs on one connection of its own and wakes its parked consumers.

Losing the database is not fatal: requests meanwhile fail with Unavailable
(503, Retry-After), the pool reconnects on its own, and the listener
reconnects and then wakes every parked consumer to re-check what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import asyncpg

from wonderq.backends import BadDatabaseUrl, rules
from wonderq.backends.base import Backend
from wonderq.backends.batching import AsyncOp, AsyncWrite, GroupCommit, deal, groups, joinable
from wonderq.backends.postgres import keys, queries, queues, reads, schema
from wonderq.backends.postgres.queues import Txn
from wonderq.backends.rules import Deleted
from wonderq.clock import Clock
from wonderq.errors import Unavailable, WonderQError
from wonderq.models import ApiKey, Claim, Message, NewMessage, Queue, QueueAttributes, QueueRef, QueueStats
from wonderq.settings import Settings

log = logging.getLogger("wonderq.postgres")
T = TypeVar("T")

CHANNEL = "wonderq"
PARALLEL_BATCHES = 2  # transactions in flight: one gathers while one commits. Four (the first
# guess) made smaller batches, so more statements and commits for the same messages: with the
# database on the broker's core, 2 sent 20-29 % more single sends, 16 % more batches and 5-12 %
# more consumed than 4 (bench/README, "Fifth run")
VACUUM_CHECK = 5.0  # seconds between looks at the dead row count
VACUUM_AFTER = 50_000  # dead message rows that make a vacuum worth it
VACUUM_LOCK = schema.SCHEMA_LOCK + 1
DEAD_ROWS = (
    "SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = 'wonderq' AND relname = 'messages'"
)
TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
OUTAGE_LOG_EVERY = 10.0  # seconds between log lines saying why PostgreSQL is unavailable
CONNECTION_ERRORS = (
    OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # 57P0x: shutting down, starting up
    asyncpg.InternalClientError,  # the protocol lost its footing as the connection broke
)


class PostgresBackend(Backend):
    def __init__(self, url: str, settings: Settings, clock: Clock) -> None:
        super().__init__(clock)
        self.url = url
        self.settings = settings
        self.instance = secrets.token_hex(6)  # tells our own notifications apart
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._group: GroupCommit[AsyncWrite[Txn]] = GroupCommit(
            self._run_batch, self._committed, PARALLEL_BATCHES
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._queues = queues.QueueCache()
        self._outage_logged = -OUTAGE_LOG_EVERY  # time.monotonic() of the last line saying why

    # -- life cycle ---------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.settings.pool_size, timeout=5, command_timeout=60,
                server_settings={"application_name": f"wonderq-{self.instance}"}, reset=keep_session,
            )
        except ValueError as exc:  # what asyncpg raises for a URL it cannot parse (a port that is no number)
            raise BadDatabaseUrl(str(exc)) from exc
        async with self._pool.acquire() as conn:
            await schema.upgrade(conn)
        await self._listen()
        self._tasks = [
            asyncio.create_task(self.retention_loop(self.settings.retention_interval)),
            asyncio.create_task(self._vacuum_loop()),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        while self._group.busy:
            await asyncio.sleep(0.001)
        if self._listener is not None:
            self._listener.remove_termination_listener(self._on_listener_lost)
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._listener.close(timeout=2)
        if self._pool is not None:
            await self._pool.close()

    async def _vacuum_loop(self) -> None:
        """VACUUM the messages table as soon as deleted rows pile up.

        A claim walks its queue's index from the oldest ``visible_at``; rows
        deleted since the last vacuum leave dead entries at exactly that end,
        so a drained backlog would slow every later claim until autovacuum's
        next round (a minute or more). One broker at a time does it (an
        advisory lock); it blocks no reads or writes."""
        while True:
            await asyncio.sleep(VACUUM_CHECK)
            try:
                async with self._pool.acquire() as conn:  # type: ignore[union-attr]
                    dead = await conn.fetchval(DEAD_ROWS)
                    if (dead or 0) >= VACUUM_AFTER and await conn.fetchval(TRY_LOCK, VACUUM_LOCK):
                        try:
                            await conn.execute("VACUUM wonderq.messages")
                            log.info("vacuumed %d dead message rows", dead)
                        finally:
                            await unlock(conn, VACUUM_LOCK)
            except CONNECTION_ERRORS:
                pass  # the database is away; requests report it
            except asyncpg.PostgresError:
                log.exception("vacuum failed")

    async def ping(self) -> None:
        await self._read(lambda conn: conn.fetchval("SELECT 1"))

    # -- the verbs (the contract is in Backend's docstrings) ---------------------

    async def create_queue(self, name: str, attributes: QueueAttributes) -> Queue:
        cap = self.settings.max_queues  # alone: its advisory lock (the cap) must not meet a batch's row locks
        return await self._write_alone(lambda txn: queues.create_queue(txn, name, attributes, cap), durable=True)

    async def get_queue(self, ref: QueueRef) -> Queue:
        return await self._read(lambda conn: queues.resolve(conn, ref))

    async def list_queues(self) -> list[Queue]:
        return await self._read(queues.list_queues)

    async def delete_queue(self, ref: QueueRef) -> None:
        await self._write(lambda txn: queues.delete_queue(txn, ref), durable=True)

    async def set_attributes(self, ref: QueueRef, attributes: QueueAttributes) -> Queue:
        return await self._write(lambda txn: queues.set_attributes(txn, ref, attributes), durable=True)

    async def set_tags(self, ref: QueueRef, tags: Mapping[str, str]) -> Queue:
        return await self._write(lambda txn: queues.set_tags(txn, ref, tags), durable=True)

    async def purge(self, ref: QueueRef) -> int:
        return await self._write(lambda txn: queries.purge(txn, ref), durable=True)

    async def send_batch(self, ref: QueueRef, messages: Sequence[NewMessage]) -> list[Message]:
        op = Send(ref, messages)
        self._group.submit(op)
        return await op.result()

    async def claim(self, ref: QueueRef, size: int, visibility_timeout: int | None) -> Claim:
        queue = self._queues.peek(ref) or (await self._read(lambda conn: self._queues.get(conn, ref))).queue
        if queue.fifo:  # its lock in a transaction of its own, so no batch's row locks wait behind it
            return await self._write_alone(lambda txn: queries.claim(txn, ref, size, visibility_timeout))
        op = Take(ref, size, visibility_timeout)
        self._group.submit(op)
        return await op.result()

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
        return await self._read(reads.stats)

    async def create_key(self, key_id: str, name: str, scope: str, queues: Sequence[str], secret_hash: str) -> ApiKey:
        return await self._write(lambda txn: keys.create_key(txn, key_id, name, scope, queues, secret_hash),
                                 durable=True)

    async def list_keys(self, active_only: bool = False) -> list[ApiKey]:
        return await self._read(lambda conn: keys.list_keys(conn, active_only))

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self._write(lambda txn: keys.revoke_key(txn, key_id), durable=True)

    async def queue_stats(self, ref: QueueRef) -> QueueStats:
        return await self._read(lambda conn: reads.queue_stats(conn, ref))

    async def expire_some(self, limit: int) -> int:
        return await self._write(lambda txn: queries.expire(txn, limit))

    # -- notifications --------------------------------------------------------

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=5)
        await conn.add_listener(CHANNEL, self._on_notify)
        conn.add_termination_listener(self._on_listener_lost)
        self._listener = conn

    def _on_listener_lost(self, conn: asyncpg.Connection) -> None:
        log.warning("lost the LISTEN connection; reconnecting")
        self._tasks.append(asyncio.get_running_loop().create_task(self._relisten()))

    async def _relisten(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen()
                break
            except CONNECTION_ERRORS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        log.info("LISTEN connection restored")
        self.waiters.wake_all()  # notifications may have been missed meanwhile

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        sender, _, pairs = payload.partition("|")
        if sender == self.instance:
            return  # woken locally at commit
        if pairs == "*":
            self.waiters.wake_all()
            return
        for pair in pairs.split(","):
            queue_id, _, n = pair.partition(":")
            self.waiters.notify(int(queue_id), int(n))

    def _committed(self, woken: rules.Woken) -> None:
        for queue_id, n in woken:
            self.waiters.notify(queue_id, n)

    # -- writes: one transaction per batch ------------------------------------

    async def _write(self, fn: Callable[[Txn], Awaitable[T]], durable: bool = False) -> T:
        op = AsyncOp(fn, durable)
        self._group.submit(op)
        return await op.result()

    async def _write_alone(self, fn: Callable[[Txn], Awaitable[T]], durable: bool = False) -> T:
        """A write in a transaction of its own, outside the group commit."""
        op = AsyncOp(fn, durable)
        try:
            woken = await self._run_batch([op])
        except WonderQError as exc:
            op.fail(exc)
            woken = []
        op.settle()
        self._committed(woken)
        return await op.result()

    async def _run_batch(self, batch: list[AsyncWrite[Txn]]) -> rules.Woken:
        """One transaction for the batch. A failure while the connection went
        away is the database's (Unavailable, for every op), not the ops'."""
        assert self._pool is not None
        try:
            async with self._pool.acquire() as conn:
                try:
                    return await self._transaction(conn, batch)
                except Exception as exc:
                    if isinstance(exc, CONNECTION_ERRORS) or conn.is_closed():
                        raise self._unavailable(exc) from exc
                    raise
        except CONNECTION_ERRORS as exc:
            raise self._unavailable(exc) from exc

    async def _transaction(self, conn: asyncpg.Connection, batch: list[AsyncWrite[Txn]]) -> rules.Woken:
        async with conn.transaction():
            txn = Txn(conn, self._queues)
            joined = await send_joined(txn, [op for op in batch if isinstance(op, Send)])
            joined |= await claims_joined(txn, [op for op in batch if isinstance(op, Take)])
            for op in batch:
                if id(op) not in joined:
                    await op.run(txn)
            woken = txn.changes.woken
            payload = self._payload(woken) if woken else ""
            await txn.finish(CHANNEL, payload, any(op.durable for op in batch))
            return woken

    def _payload(self, woken: rules.Woken) -> str:
        total: dict[int, int] = {}
        for queue_id, n in woken:
            total[queue_id] = total.get(queue_id, 0) + n
        pairs = ",".join(f"{q}:{n}" for q, n in total.items())
        return f"{self.instance}|{pairs if len(pairs) < 7000 else '*'}"

    def _unavailable(self, exc: BaseException) -> Unavailable:
        """PostgreSQL cannot be reached: the client is told so plainly; the driver's own words
        (which name its internals) go to the log, at most once every OUTAGE_LOG_EVERY seconds."""
        now = time.monotonic()
        if now - self._outage_logged >= OUTAGE_LOG_EVERY:
            self._outage_logged = now
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return Unavailable("database unavailable: PostgreSQL cannot be reached, or the connection to it was lost;"
                           " retry")

    async def _read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        assert self._pool is not None
        try:
            async with self._pool.acquire() as conn:
                return await fn(conn)
        except CONNECTION_ERRORS as exc:
            raise self._unavailable(exc) from exc


async def unlock(conn: asyncpg.Connection, key: int) -> None:
    """Release a session's advisory lock; if that fails, end the session, which releases it
    (a pooled connection is not reset: :func:`keep_session`)."""
    try:
        await conn.fetchval("SELECT pg_advisory_unlock($1)", key)
    except BaseException:
        conn.terminate()
        raise


async def keep_session(conn: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is: asyncpg has already rolled back a transaction
    left open, and nothing else lasts past one (no session settings, cursors or LISTENs; the
    vacuum's lock is released where it is taken). Its default reset (``RESET ALL``,
    ``UNLISTEN *``, ... ) was a round trip for every batch."""


class Send(AsyncOp[Txn, list[Message]]):
    """A send, which its batch may join with the other sends to the same queue."""

    __slots__ = ("messages", "ref")

    def __init__(self, ref: QueueRef, messages: Sequence[NewMessage]) -> None:
        super().__init__(lambda txn: queries.send_batch(txn, ref, messages), durable=True)
        self.ref, self.messages = ref, messages


async def send_joined(txn: Txn, sends: list[Send]) -> set[int]:
    """The sends of a batch to one standard queue, as one INSERT (each send had been a
    round trip of its own); the ids of the ops settled so. A send with a body over the
    queue's limit is left to run alone and say so, and so is every send of a group whose
    INSERT fails (the queue gone, say); FIFO queues too, for their deduplication."""
    joined: set[int] = set()
    for ref, ops in groups(sends, lambda op: op.ref):
        try:
            fit = joinable((await txn.queues.get(txn.conn, ref)).queue, ops)
            if fit:
                joined |= deal(fit, await queries.send_batch(txn, ref, [m for op in fit for m in op.messages]))
        except WonderQError:
            continue
    return joined


class Take(AsyncOp[Txn, Claim]):
    """A claim on a standard queue, which its batch may join with the others on that queue."""

    __slots__ = ("ref", "size", "visibility_timeout")

    def __init__(self, ref: QueueRef, size: int, visibility_timeout: int | None) -> None:
        super().__init__(lambda txn: queries.claim(txn, ref, size, visibility_timeout))
        self.ref, self.size, self.visibility_timeout = ref, size, visibility_timeout


async def claims_joined(txn: Txn, takes: list[Take]) -> set[int]:
    """The claims of a batch on one queue with one visibility timeout, as one claim of all
    their sizes, its messages dealt out in id order; the ids of the ops settled so. A claim
    left with nothing runs alone (its empty answer says when the queue has more), and so do
    claims on a queue with a dead-letter limit, whose redrive counts each claim's messages."""
    joined: set[int] = set()
    for (ref, timeout), ops in groups(takes, lambda op: (op.ref, op.visibility_timeout)):
        try:
            queue = (await txn.queues.get(txn.conn, ref)).queue
            if queue.fifo or queue.attributes.max_receive_count:
                continue
            claim = await queries.claim(txn, ref, sum(op.size for op in ops), timeout)
        except WonderQError:
            continue
        start = 0
        for op in ops:
            mine = claim.messages[start:start + op.size]
            if mine:
                start += len(mine)
                op.succeed(Claim(mine, claim.queue_id))
                joined.add(id(op))
    return joined
