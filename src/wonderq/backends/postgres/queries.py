"""The PostgreSQL backend's statements, each beside the function that runs it.

Times come from the database's clock (``NOW``), so brokers on several machines
agree on when a message is visible. Write ops take a :class:`Txn` and run
inside the batch's transaction; they check before they write, so a raised
WonderQError leaves nothing behind.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wonderq.backends.rules import Changes, Redrive, check_sizes, delays, missing, uuid4s
from wonderq.errors import InvalidParameter, QueueExists, QueueNotFound
from wonderq.models import Claim, Message, NewMessage, Queue, QueueAttributes, QueueRef, QueueStats

if TYPE_CHECKING:
    import asyncpg

NOW = "(extract(epoch from statement_timestamp()) * 1000)::bigint"
QUEUE_COLUMNS = (
    "id, name, created_at, visibility_timeout, delay_seconds, retention_seconds,"
    " max_message_size, redrive_target, max_receive_count"
)
MESSAGE_COLUMNS = (
    "id, uuid::text AS message_id, queue_id, body, created_at, visible_at, receive_count,"
    " first_received_at, token, attributes, group_id, dedup_id"
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


class QueueCache:
    """Queues recently looked up, by id and by name, so a send or a claim needs
    no round trip to find its queue. Safe: a queue's attributes never change,
    and the statements that use a cached id find nothing if the queue has been
    deleted meanwhile (then the entry is dropped and looked up again)."""

    def __init__(self) -> None:
        self._entries: dict[QueueRef, tuple[float, Queue]] = {}

    async def get(self, conn: asyncpg.Connection, ref: QueueRef) -> Queue:
        hit = self._entries.get(ref)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        queue = await resolve(conn, ref)
        expires = time.monotonic() + QUEUE_TTL
        self._entries[queue.id] = self._entries[queue.name] = (expires, queue)
        return queue

    def drop(self, queue: Queue) -> None:
        self._entries.pop(queue.id, None)
        self._entries.pop(queue.name, None)


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


SELECT_QUEUE_BY_ID = f"SELECT {QUEUE_COLUMNS} FROM wonderq.queues WHERE id = $1"
SELECT_QUEUE_BY_NAME = f"SELECT {QUEUE_COLUMNS} FROM wonderq.queues WHERE name = $1"


async def find_queue(conn: asyncpg.Connection, ref: QueueRef) -> Queue | None:
    row = await conn.fetchrow(SELECT_QUEUE_BY_ID if isinstance(ref, int) else SELECT_QUEUE_BY_NAME, ref)
    return None if row is None else Queue.from_row(row)


async def resolve(conn: asyncpg.Connection, ref: QueueRef) -> Queue:
    queue = await find_queue(conn, ref)
    if queue is None:
        raise QueueNotFound(f"queue {ref!r} does not exist")
    return queue


LIST_QUEUES = f"SELECT {QUEUE_COLUMNS} FROM wonderq.queues ORDER BY id"


async def list_queues(conn: asyncpg.Connection) -> list[Queue]:
    return [Queue.from_row(row) for row in await conn.fetch(LIST_QUEUES)]


INSERT_QUEUE = f"""
INSERT INTO wonderq.queues (name, created_at, visibility_timeout, delay_seconds, retention_seconds,
                            max_message_size, redrive_target, max_receive_count)
VALUES ($1, {NOW}, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO NOTHING
RETURNING {QUEUE_COLUMNS}
"""


async def create_queue(txn: Txn, name: str, a: QueueAttributes) -> Queue:
    if a.redrive_target and await find_queue(txn.conn, a.redrive_target) is None:
        raise InvalidParameter(f"redrive_target {a.redrive_target!r} is not an existing queue")
    row = await txn.conn.fetchrow(
        INSERT_QUEUE, name, a.visibility_timeout, a.delay_seconds, a.retention_seconds,
        a.max_message_size, a.redrive_target, a.max_receive_count,
    )
    if row is None:
        raise QueueExists(f"queue {name!r} already exists")
    return Queue.from_row(row)


DELETE_QUEUE = (
    "DELETE FROM wonderq.messages WHERE queue_id = $1", "DELETE FROM wonderq.queue_counts WHERE queue_id = $1",
    "DELETE FROM wonderq.queues WHERE id = $1",
)


async def delete_queue(txn: Txn, ref: QueueRef) -> None:
    queue = await resolve(txn.conn, ref)
    txn.queues.drop(queue)
    for statement in DELETE_QUEUE:
        await txn.conn.execute(statement, queue.id)


PURGE = "DELETE FROM wonderq.messages WHERE queue_id = $1"


async def purge(txn: Txn, ref: QueueRef) -> int:
    queue = await resolve(txn.conn, ref)
    purged = int((await txn.conn.execute(PURGE, queue.id)).split()[-1])
    txn.changes.tally.add(queue.id, messages=-purged)
    return purged


INSERT_MESSAGES = f"""
INSERT INTO wonderq.messages (uuid, queue_id, body, created_at, visible_at, attributes, group_id, dedup_id)
SELECT u.uuid, $2, u.body, {NOW}, {NOW} + u.delay * 1000, u.attributes, u.group_id, u.dedup_id
FROM unnest($1::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[])
     WITH ORDINALITY AS u(uuid, body, delay, attributes, group_id, dedup_id, n)
WHERE EXISTS (SELECT 1 FROM wonderq.queues WHERE id = $2)
ORDER BY u.n
RETURNING {MESSAGE_COLUMNS}
"""


async def send_batch(txn: Txn, ref: QueueRef, messages: Sequence[NewMessage]) -> list[Message]:
    queue = await txn.queues.get(txn.conn, ref)
    check_sizes(queue, messages)
    seconds = delays(queue, messages)
    rows = await txn.conn.fetch(
        INSERT_MESSAGES, uuid4s(len(messages)), queue.id, [m.body for m in messages], seconds,
        [m.attributes for m in messages], [m.group_id for m in messages], [m.dedup_id for m in messages],
    )
    if not rows:  # the cached queue was deleted meanwhile; it may exist again under its name
        txn.queues.drop(queue)
        if isinstance(ref, int) or (await resolve(txn.conn, ref)).id == queue.id:
            raise QueueNotFound(f"queue {ref!r} does not exist")
        return await send_batch(txn, ref, messages)
    txn.changes.sent(queue.id, len(rows), sum(d == 0 for d in seconds))
    return sorted((Message.from_row(row) for row in rows), key=lambda m: m.id)


CLAIM = f"""
UPDATE wonderq.messages m
SET visible_at = {NOW} + $3 * 1000, token = $4 || m.id, receive_count = m.receive_count + 1,
    first_received_at = coalesce(m.first_received_at, {NOW})
FROM (
    SELECT id FROM wonderq.messages
    WHERE queue_id = $1 AND visible_at <= {NOW}
    ORDER BY visible_at, id LIMIT $2
    FOR UPDATE SKIP LOCKED
) c
WHERE m.id = c.id
RETURNING {", ".join("m." + c for c in MESSAGE_COLUMNS.split(", "))}
"""
NEXT_VISIBLE = "SELECT min(visible_at) FROM wonderq.messages WHERE queue_id = $1"
REDRIVE_PASSES = 10  # bounded, so a flood of poison messages cannot stall a batch
REDRIVE = f"UPDATE wonderq.messages SET queue_id = $1, visible_at = {NOW}, token = NULL WHERE id = ANY($2)"


async def claim(txn: Txn, ref: QueueRef, size: int, visibility_timeout: int | None) -> Claim:
    queue = await txn.queues.get(txn.conn, ref)  # deleted meanwhile: it simply finds nothing
    timeout = queue.attributes.visibility_timeout if visibility_timeout is None else visibility_timeout
    prefix = secrets.token_hex(8) + "-"
    claimed = [Message.from_row(row) for row in await txn.conn.fetch(CLAIM, queue.id, size, timeout, prefix)]
    if claimed and queue.attributes.max_receive_count:
        claimed = await _redrive(txn, queue, claimed, timeout, prefix)
    if not claimed:
        return Claim([], queue.id, await txn.conn.fetchval(NEXT_VISIBLE, queue.id))
    txn.changes.tally.add(queue.id, received=len(claimed))
    return Claim(sorted(claimed, key=lambda m: m.id), queue.id)


async def _redrive(txn: Txn, queue: Queue, claimed: list[Message], timeout: int, prefix: str) -> list[Message]:
    dlq = queue.attributes.redrive_target and await find_queue(txn.conn, queue.attributes.redrive_target)
    if not dlq:
        return claimed
    redrive = Redrive(queue, dlq.id, timeout, txn.changes)
    while over := redrive.over(claimed):
        await txn.conn.execute(REDRIVE, dlq.id, [m.id for m in over])
        again = redrive.again(over)
        rows = await txn.conn.fetch(CLAIM, queue.id, again, timeout, prefix) if again else []
        claimed = [Message.from_row(row) for row in rows]
    return redrive.kept


DELETE = "DELETE FROM wonderq.messages WHERE id = $1 AND ($2::text IS NULL OR token = $2) RETURNING queue_id"
EXISTS = "SELECT 1 FROM wonderq.messages WHERE id = $1"


async def delete(txn: Txn, message_id: int, token: str | None) -> None:
    queue_id = await txn.conn.fetchval(DELETE, message_id, token)
    if queue_id is None:
        missing(message_id, bool(await txn.conn.fetchval(EXISTS, message_id)))
    txn.changes.tally.add(queue_id, messages=-1, deleted=1)


CHANGE_VISIBILITY = f"""
UPDATE wonderq.messages SET visible_at = {NOW} + $3 * 1000 WHERE id = $1 AND token = $2
RETURNING {MESSAGE_COLUMNS}
"""


async def change_visibility(txn: Txn, message_id: int, token: str, visibility_timeout: int) -> Message:
    row = await txn.conn.fetchrow(CHANGE_VISIBILITY, message_id, token, visibility_timeout)
    if row is None:
        missing(message_id, bool(await txn.conn.fetchval(EXISTS, message_id)))
    message = Message.from_row(row)
    txn.changes.woken.append((message.queue_id, 1))
    return message


PEEK = f"SELECT {MESSAGE_COLUMNS} FROM wonderq.messages WHERE queue_id = $1 AND id > $2 ORDER BY id LIMIT $3"


async def peek(conn: asyncpg.Connection, ref: QueueRef, size: int, after_id: int) -> list[Message]:
    queue = await resolve(conn, ref)
    return [Message.from_row(row) for row in await conn.fetch(PEEK, queue.id, after_id, size)]


STATS = f"""
SELECT {", ".join("q." + c for c in QUEUE_COLUMNS.split(", "))},
       coalesce(c.messages, 0)::bigint AS messages, coalesce(i.in_flight, 0) AS in_flight,
       coalesce(i.delayed, 0) AS delayed,
       (SELECT created_at FROM wonderq.messages m WHERE m.queue_id = q.id ORDER BY id LIMIT 1)
           AS oldest_created_at,
       coalesce(c.sent, 0)::bigint AS sent, coalesce(c.received, 0)::bigint AS received,
       coalesce(c.deleted, 0)::bigint AS deleted, coalesce(c.expired, 0)::bigint AS expired
FROM wonderq.queues q
LEFT JOIN (
    SELECT queue_id, sum(messages) AS messages, sum(sent) AS sent, sum(received) AS received,
           sum(deleted) AS deleted, sum(expired) AS expired
    FROM wonderq.queue_counts GROUP BY queue_id
) c ON c.queue_id = q.id
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE token IS NOT NULL) AS in_flight,
           count(*) FILTER (WHERE token IS NULL) AS delayed
    FROM wonderq.messages m WHERE m.queue_id = q.id AND m.visible_at > {NOW}
) i ON true
ORDER BY q.id
"""


async def stats(conn: asyncpg.Connection) -> list[QueueStats]:
    return [QueueStats.from_row(row) for row in await conn.fetch(STATS)]


FIRST_KEPT = "SELECT id FROM wonderq.messages WHERE queue_id = $1 AND created_at >= $2 ORDER BY id LIMIT 1"
EXPIRE = """
DELETE FROM wonderq.messages WHERE queue_id = $1 AND id IN (
    SELECT id FROM wonderq.messages WHERE queue_id = $1 AND id < $2 ORDER BY id LIMIT $3
)
"""


async def expire(txn: Txn, limit: int) -> int:
    """Ids grow with created_at, so a queue's expired messages are the ones
    below its first unexpired id: found by walking only the expired."""
    removed = await _orphans(txn)
    now = await txn.conn.fetchval(f"SELECT {NOW}")
    for queue in await list_queues(txn.conn):
        cutoff = now - queue.attributes.retention_seconds * 1000
        below = await txn.conn.fetchval(FIRST_KEPT, queue.id, cutoff) or 2**63 - 1
        n = int((await txn.conn.execute(EXPIRE, queue.id, below, limit - removed)).split()[-1])
        txn.changes.tally.add(queue.id, messages=-n, expired=n)
        removed += n
        if removed >= limit:
            break
    return removed


ORPHANS = """
WITH RECURSIVE q(id) AS (
    (SELECT queue_id FROM wonderq.messages ORDER BY queue_id LIMIT 1)
    UNION ALL
    SELECT (SELECT queue_id FROM wonderq.messages WHERE queue_id > q.id ORDER BY queue_id LIMIT 1)
    FROM q WHERE q.id IS NOT NULL
)
SELECT id FROM q WHERE id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM wonderq.queues WHERE queues.id = q.id)
"""
ORPHAN_COUNTS = """
DELETE FROM wonderq.queue_counts c WHERE NOT EXISTS (SELECT 1 FROM wonderq.queues q WHERE q.id = c.queue_id)
"""


async def _orphans(txn: Txn) -> int:
    """Remove what a send committed into a queue deleted by a concurrent
    transaction (neither could see the other's rows). ORPHANS visits each
    distinct queue_id once through the index, so this costs no scan."""
    removed = 0
    for (queue_id,) in await txn.conn.fetch(ORPHANS):
        status = await txn.conn.execute("DELETE FROM wonderq.messages WHERE queue_id = $1", queue_id)
        removed += int(status.split()[-1])
    await txn.conn.execute(ORPHAN_COUNTS)
    return removed
