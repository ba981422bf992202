"""The SQLite backend's read-only statements, each beside the function that runs it: they
run on a reader connection, never the writer (the dashboard, the metrics, the CLI)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from wonderq.backends import rules
from wonderq.backends.sqlite.queries import MESSAGE_COLUMNS, messages
from wonderq.backends.sqlite.txn import QUEUE_COLUMNS, resolve
from wonderq.models import Message, QueueRef, QueueStats

QUEUES_OF = "SELECT m.id, q.name FROM messages m JOIN queues q ON q.id = m.queue_id WHERE m.id IN ({})"


def queues_of(conn: sqlite3.Connection, message_ids: Sequence[int]) -> dict[int, str]:
    ids = list(set(message_ids))
    return {row[0]: row[1] for row in conn.execute(QUEUES_OF.format(", ".join("?" * len(ids))), ids)}


PEEK = f"""
SELECT {", ".join(Message.FIELDS)} FROM (
    SELECT {MESSAGE_COLUMNS}, length(CAST(body AS BLOB)) AS bytes,
           sum(length(CAST(body AS BLOB))) OVER (ORDER BY id) AS running
    FROM messages WHERE queue_id = ? AND id > ? ORDER BY id LIMIT ?
) WHERE running - bytes < ? ORDER BY id
"""


def peek(conn: sqlite3.Connection, ref: QueueRef, size: int, after_id: int) -> list[Message]:
    queue = resolve(conn, ref)
    return messages(conn.execute(PEEK, (queue.id, after_id, size, rules.PEEK_BYTES)))


STATS = f"""
SELECT {", ".join("q." + c for c in QUEUE_COLUMNS.split(", "))},
       coalesce(c.messages, 0) AS messages,
       (SELECT count(*) FROM messages m
        WHERE m.queue_id = q.id AND m.visible_at > :now AND m.token IS NOT NULL) AS in_flight,
       (SELECT count(*) FROM messages m
        WHERE m.queue_id = q.id AND m.visible_at > :now AND m.token IS NULL) AS delayed,
       (SELECT created_at FROM messages m WHERE m.queue_id = q.id ORDER BY id LIMIT 1) AS oldest_created_at,
       coalesce(c.sent, 0) AS sent, coalesce(c.received, 0) AS received,
       coalesce(c.deleted, 0) AS deleted, coalesce(c.expired, 0) AS expired
FROM queues q LEFT JOIN (
    SELECT queue_id, sum(messages) AS messages, sum(sent) AS sent, sum(received) AS received,
           sum(deleted) AS deleted, sum(expired) AS expired
    FROM queue_counts GROUP BY queue_id
) c ON c.queue_id = q.id
ORDER BY q.id
"""


def stats(conn: sqlite3.Connection, now: int) -> list[QueueStats]:
    return [QueueStats.from_row(row) for row in conn.execute(STATS, {"now": now})]


QUEUE_STATS = f"""
SELECT {", ".join("q." + c for c in QUEUE_COLUMNS.split(", "))},
       (SELECT sum(messages) FROM queue_counts WHERE queue_id = q.id) AS messages,
       (SELECT count(*) FROM messages m
        WHERE m.queue_id = q.id AND m.visible_at > :now AND m.token IS NOT NULL) AS in_flight,
       (SELECT count(*) FROM messages m
        WHERE m.queue_id = q.id AND m.visible_at > :now AND m.token IS NULL) AS delayed,
       (SELECT created_at FROM messages m WHERE m.queue_id = q.id ORDER BY id LIMIT 1) AS oldest_created_at,
       (SELECT sum(sent) FROM queue_counts WHERE queue_id = q.id) AS sent,
       (SELECT sum(received) FROM queue_counts WHERE queue_id = q.id) AS received,
       (SELECT sum(deleted) FROM queue_counts WHERE queue_id = q.id) AS deleted,
       (SELECT sum(expired) FROM queue_counts WHERE queue_id = q.id) AS expired
FROM queues q
"""
QUEUE_STATS_BY_ID = QUEUE_STATS + "WHERE q.id = :ref"
QUEUE_STATS_BY_NAME = QUEUE_STATS + "WHERE q.name = :ref"


def queue_stats(conn: sqlite3.Connection, ref: QueueRef, now: int) -> QueueStats:
    """One queue's row of STATS, each count by the queue's own index entries
    (its one queue_counts row, its invisible messages), none by the others'."""
    statement = QUEUE_STATS_BY_ID if isinstance(ref, int) else QUEUE_STATS_BY_NAME
    row = conn.execute(statement, {"ref": ref, "now": now}).fetchone()
    if row is None:
        raise rules.no_queue(ref)
    return QueueStats.from_row(row)
