"""The PostgreSQL backend's read-only statements, each beside the function that runs it:
they run on a pooled connection outside any write batch (the dashboard, the metrics, the CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wonderq.backends import rules
from wonderq.backends.postgres.queues import MESSAGE_COLUMNS, NOW, QUEUE_COLUMNS, resolve
from wonderq.models import Message, QueueRef, QueueStats

if TYPE_CHECKING:
    import asyncpg


QUEUES_OF = """
SELECT m.id, q.name FROM wonderq.messages m JOIN wonderq.queues q ON q.id = m.queue_id WHERE m.id = ANY($1::bigint[])"""


async def queues_of(conn: asyncpg.Connection, message_ids: Sequence[int]) -> dict[int, str]:
    return {row["id"]: row["name"] for row in await conn.fetch(QUEUES_OF, list(set(message_ids)))}


PEEK = f"""
SELECT * FROM (
    SELECT {MESSAGE_COLUMNS}, octet_length(body) AS bytes, sum(octet_length(body)) OVER (ORDER BY id) AS running
    FROM wonderq.messages WHERE queue_id = $1 AND id > $2 ORDER BY id LIMIT $3
) page WHERE running - bytes < $4 ORDER BY id
"""


async def peek(conn: asyncpg.Connection, ref: QueueRef, size: int, after_id: int) -> list[Message]:
    queue = await resolve(conn, ref)
    return [Message.from_row(row) for row in await conn.fetch(PEEK, queue.id, after_id, size, rules.PEEK_BYTES)]


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


QUEUE_STATS = f"""
SELECT {", ".join("q." + c for c in QUEUE_COLUMNS.split(", "))},
       coalesce(c.messages, 0)::bigint AS messages, i.in_flight, i.delayed,
       (SELECT created_at FROM wonderq.messages m WHERE m.queue_id = q.id ORDER BY id LIMIT 1)
           AS oldest_created_at,
       coalesce(c.sent, 0)::bigint AS sent, coalesce(c.received, 0)::bigint AS received,
       coalesce(c.deleted, 0)::bigint AS deleted, coalesce(c.expired, 0)::bigint AS expired
FROM wonderq.queues q
CROSS JOIN LATERAL (
    SELECT sum(messages) AS messages, sum(sent) AS sent, sum(received) AS received,
           sum(deleted) AS deleted, sum(expired) AS expired
    FROM wonderq.queue_counts WHERE queue_id = q.id
) c
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE token IS NOT NULL) AS in_flight,
           count(*) FILTER (WHERE token IS NULL) AS delayed
    FROM wonderq.messages m WHERE m.queue_id = q.id AND m.visible_at > {NOW}
) i
"""
QUEUE_STATS_BY_ID = QUEUE_STATS + "WHERE q.id = $1"
QUEUE_STATS_BY_NAME = QUEUE_STATS + "WHERE q.name = $1"


async def queue_stats(conn: asyncpg.Connection, ref: QueueRef) -> QueueStats:
    """One queue's row of STATS in one round trip, each count by the queue's own
    index entries (its 32 counter shards, its invisible messages)."""
    row = await conn.fetchrow(QUEUE_STATS_BY_ID if isinstance(ref, int) else QUEUE_STATS_BY_NAME, ref)
    if row is None:
        raise rules.no_queue(ref)
    return QueueStats.from_row(row)
