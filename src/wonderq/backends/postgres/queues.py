"""The PostgreSQL backend's queue rows, its queue cache, and the transaction a
write runs in; message statements are in :mod:`.queries` and :mod:`.fifo`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wonderq.backends import rules
from wonderq.backends.postgres.schema import SCHEMA_LOCK
from wonderq.backends.rules import SETTINGS, Changes, settings, tags_json
from wonderq.errors import QueueExists
from wonderq.models import Queue, QueueAttributes, QueueRef

if TYPE_CHECKING:
    import asyncpg

NOW = "(extract(epoch from statement_timestamp()) * 1000)::bigint"
QUEUE_COLUMNS = f"id, name, created_at, {', '.join(SETTINGS)}, modified_at, tags"
MESSAGE_COLUMNS = (
    "id, uuid::text AS message_id, queue_id, body, created_at, visible_at, receive_count,"
    " first_received_at, token, attributes, group_id, dedup_id, system_attributes, origin"
)
SHARDS = 32  # counter rows per queue, so concurrent batches rarely wait on one another

FINISH = """
WITH counts AS (
    INSERT INTO wonderq.queue_counts AS c (queue_id, shard, messages, sent, received, deleted, expired)
    SELECT u.q, $1, u.m, u.s, u.r, u.d, u.e
    FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
         AS u(q, m, s, r, d, e)
    ON CONFLICT (queue_id, shard) DO UPDATE SET
        messages = c.messages + excluded.messages, sent = c.sent + excluded.sent,
        received = c.received + excluded.received, deleted = c.deleted + excluded.deleted,
        expired = c.expired + excluded.expired
)
SELECT CASE WHEN $8 <> '' THEN pg_notify($9, $8) END,
       CASE WHEN NOT $10 THEN set_config('synchronous_commit', 'off', true) END
"""
QUEUE_TTL = 5.0  # seconds a looked-up queue is reused


@dataclass(frozen=True, slots=True)
class Cached:
    """A queue as looked up, with its row's ``version`` then."""

    queue: Queue
    version: int


class QueueCache:
    """Queues recently looked up, by id and by name, so a send or a claim needs
    no round trip to find its queue. Attributes change (set_attributes bumps
    the row's ``version``), so every statement that relies on cached
    attributes also checks the version it was cached with, in the same
    statement, and does nothing if the queue has changed or gone; its caller
    then drops the entry, looks the queue up again and retries once. So a
    change takes effect at once on every broker, at no extra round trip."""

    def __init__(self) -> None:
        self._entries: dict[QueueRef, tuple[float, Cached]] = {}

    def peek(self, ref: QueueRef) -> Queue | None:
        """The cached queue, if any (no look-up)."""
        hit = self._entries.get(ref)
        return hit[1].queue if hit and hit[0] > time.monotonic() else None

    async def get(self, conn: asyncpg.Connection, ref: QueueRef) -> Cached:
        hit = self._entries.get(ref)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        row = await fetch_queue(conn, ref)
        if row is None:
            raise rules.no_queue(ref)
        cached = Cached(Queue.from_row(row), int(row["version"]))
        self._entries[cached.queue.id] = self._entries[cached.queue.name] = (time.monotonic() + QUEUE_TTL, cached)
        return cached

    def drop(self, queue: Queue) -> None:
        self._entries.pop(queue.id, None)
        self._entries.pop(queue.name, None)

    async def refresh(self, conn: asyncpg.Connection, ref: QueueRef, stale: Queue) -> Cached:
        """Look the queue up again after a statement found it changed or gone."""
        self.drop(stale)
        return await self.get(conn, ref)


@dataclass(slots=True)
class Txn:
    """What a write sees: the batch's connection, the broker's queue cache, and
    the changes to deliver."""

    conn: asyncpg.Connection
    queues: QueueCache
    changes: Changes = field(default_factory=Changes)

    async def finish(self, channel: str, payload: str, durable: bool) -> None:
        """In one round trip: add the counter changes (to one of SHARDS rows per
        queue, at random), notify the other brokers, and skip the commit's
        fsync when nothing in the batch needs it."""
        columns = list(zip(*self.changes.tally.rows(), strict=True)) or [()] * 6
        await self.conn.execute(
            FINISH, secrets.randbelow(SHARDS), *map(list, columns), payload, channel, durable
        )


SELECT_QUEUE_BY_ID = f"SELECT {QUEUE_COLUMNS}, version FROM wonderq.queues WHERE id = $1"
SELECT_QUEUE_BY_NAME = f"SELECT {QUEUE_COLUMNS}, version FROM wonderq.queues WHERE name = $1"


async def fetch_queue(conn: asyncpg.Connection, ref: QueueRef) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_QUEUE_BY_ID if isinstance(ref, int) else SELECT_QUEUE_BY_NAME, ref)


async def find_queue(conn: asyncpg.Connection, ref: QueueRef) -> Queue | None:
    row = await fetch_queue(conn, ref)
    return None if row is None else Queue.from_row(row)


async def resolve(conn: asyncpg.Connection, ref: QueueRef) -> Queue:
    queue = await find_queue(conn, ref)
    if queue is None:
        raise rules.no_queue(ref)
    return queue


LIST_QUEUES = f"SELECT {QUEUE_COLUMNS} FROM wonderq.queues ORDER BY id"


async def list_queues(conn: asyncpg.Connection) -> list[Queue]:
    return [Queue.from_row(row) for row in await conn.fetch(LIST_QUEUES)]


INSERT_QUEUE = f"""
INSERT INTO wonderq.queues (name, created_at, modified_at, {", ".join(SETTINGS)})
VALUES ($1, {NOW}, {NOW}, {", ".join(f"${i}" for i in range(2, len(SETTINGS) + 2))})
ON CONFLICT (name) DO NOTHING
RETURNING {QUEUE_COLUMNS}
"""


async def check_target(conn: asyncpg.Connection, name: str, a: QueueAttributes, before: str | None = None) -> None:
    rules.check_target(name, a, await find_queue(conn, a.redrive_target) if a.redrive_target else None, before)


QUEUES_LOCK = SCHEMA_LOCK + 2  # advisory lock ids: the schema's, the vacuum's, then this
LOCK_QUEUES = "SELECT pg_advisory_xact_lock($1)"
COUNT_QUEUES = "SELECT count(*) FROM wonderq.queues"  # a statement of its own: its snapshot follows the lock
TAKEN = "SELECT 1 FROM wonderq.queues WHERE name = $1"


async def check_room(conn: asyncpg.Connection, name: str, cap: int) -> None:
    """The queue cap, in the create's own transaction: creates take turns on an
    advisory lock, so concurrent ones on several brokers cannot pass the cap
    together (READ COMMITTED alone would let each count the others' rows as
    absent). Counting 10,000 rows is about a millisecond; no other verb pays it."""
    await conn.execute(LOCK_QUEUES, QUEUES_LOCK)
    count = await conn.fetchval(COUNT_QUEUES)
    if count >= cap:
        raise rules.too_many_queues(name, count, cap, bool(await conn.fetchval(TAKEN, name)))


async def create_queue(txn: Txn, name: str, a: QueueAttributes, cap: int) -> Queue:
    await check_room(txn.conn, name, cap)
    await check_target(txn.conn, name, a)
    row = await txn.conn.fetchrow(INSERT_QUEUE, name, *settings(a))
    if row is None:
        raise QueueExists(f"queue {name!r} already exists")
    return Queue.from_row(row)


SET_ATTRIBUTES = f"""
UPDATE wonderq.queues
SET {", ".join(f"{c} = ${i}" for i, c in enumerate(SETTINGS, 2))}, modified_at = {NOW}, version = version + 1
WHERE id = $1
RETURNING {QUEUE_COLUMNS}
"""


async def set_attributes(txn: Txn, ref: QueueRef, a: QueueAttributes) -> Queue:
    queue = await resolve(txn.conn, ref)
    await check_target(txn.conn, queue.name, a, queue.attributes.redrive_target)
    txn.queues.drop(queue)
    row = await txn.conn.fetchrow(SET_ATTRIBUTES, queue.id, *settings(a))
    if row is None:
        raise rules.no_queue(ref)
    return Queue.from_row(row)


SET_TAGS = f"UPDATE wonderq.queues SET tags = $2 WHERE id = $1 RETURNING {QUEUE_COLUMNS}"


async def set_tags(txn: Txn, ref: QueueRef, tags: Mapping[str, str]) -> Queue:
    queue = await resolve(txn.conn, ref)
    row = await txn.conn.fetchrow(SET_TAGS, queue.id, tags_json(tags))
    if row is None:
        raise rules.no_queue(ref)
    return Queue.from_row(row)


DELETE_QUEUE = (
    "DELETE FROM wonderq.messages WHERE queue_id = $1", "DELETE FROM wonderq.queue_counts WHERE queue_id = $1",
    "DELETE FROM wonderq.dedups WHERE queue_id = $1", "DELETE FROM wonderq.queues WHERE id = $1",
)


async def delete_queue(txn: Txn, ref: QueueRef) -> None:
    queue = await resolve(txn.conn, ref)
    txn.queues.drop(queue)
    for statement in DELETE_QUEUE:
        await txn.conn.execute(statement, queue.id)
