"""The SQLite backend's statements, each beside the function that runs it.

Write ops take a :class:`~wonderq.sqlite.Txn` and run inside the writer's
open transaction; they check everything that can fail before writing, so a
raised WonderQError never leaves half an op behind. Read ops take the reader
connection.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wonderq.backend import (
    Claim,
    Message,
    NewMessage,
    Queue,
    QueueAttributes,
    QueueRef,
    QueueStats,
    now_ms,
    uuid4s,
)
from wonderq.errors import (
    InvalidParameter,
    MessageNotFound,
    PayloadTooLarge,
    QueueExists,
    QueueNotFound,
    StaleToken,
)

if TYPE_CHECKING:
    from wonderq.sqlite import Txn

MIGRATIONS = [
    """
    CREATE TABLE queues (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        visibility_timeout INTEGER NOT NULL,
        delay_seconds INTEGER NOT NULL,
        retention_seconds INTEGER NOT NULL,
        max_message_size INTEGER NOT NULL,
        redrive_target TEXT,
        max_receive_count INTEGER NOT NULL
    );
    CREATE TABLE sequence (next_id INTEGER NOT NULL);
    INSERT INTO sequence VALUES (1);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL,
        queue_id INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        visible_at INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        first_received_at INTEGER,
        token TEXT,
        attributes TEXT,
        group_id TEXT,
        dedup_id TEXT
    );
    CREATE INDEX messages_ready ON messages (queue_id, visible_at);
    CREATE INDEX messages_age ON messages (queue_id, created_at)
    """,
    """
    CREATE TABLE queue_counts (
        queue_id INTEGER NOT NULL,
        shard INTEGER NOT NULL,
        messages INTEGER NOT NULL DEFAULT 0,
        sent INTEGER NOT NULL DEFAULT 0,
        received INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        expired INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (queue_id, shard)
    );
    INSERT INTO queue_counts (queue_id, shard, messages)
        SELECT queue_id, 0, count(*) FROM messages GROUP BY queue_id
    """,
    # Within one queue_id this index is in id order: peeks page through it, and since
    # created_at grows with id, it finds the oldest message and the expired ones too.
    """
    CREATE INDEX messages_queue ON messages (queue_id);
    DROP INDEX messages_age
    """,
]


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date (inside the caller's write transaction);
    the version lives in ``PRAGMA user_version``."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], version + 1):
        for statement in script.split(";"):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")


ADD_COUNTS = """
INSERT INTO queue_counts (queue_id, shard, messages, sent, received, deleted, expired)
VALUES (?, 0, ?, ?, ?, ?, ?)
ON CONFLICT (queue_id, shard) DO UPDATE SET
    messages = messages + excluded.messages, sent = sent + excluded.sent,
    received = received + excluded.received, deleted = deleted + excluded.deleted,
    expired = expired + excluded.expired
"""

QUEUE_COLUMNS = (
    "id, name, created_at, visibility_timeout, delay_seconds, retention_seconds,"
    " max_message_size, redrive_target, max_receive_count"
)
MESSAGE_COLUMNS = (
    "id, uuid, queue_id, body, created_at, visible_at, receive_count,"
    " first_received_at, token, attributes, group_id, dedup_id"
)


def _queue(row: Sequence[Any]) -> Queue:
    return Queue(row[0], row[1], row[2], QueueAttributes(*row[3:]))


SELECT_QUEUE_BY_ID = f"SELECT {QUEUE_COLUMNS} FROM queues WHERE id = ?"
SELECT_QUEUE_BY_NAME = f"SELECT {QUEUE_COLUMNS} FROM queues WHERE name = ?"


def resolve(conn: sqlite3.Connection, ref: QueueRef) -> Queue:
    sql = SELECT_QUEUE_BY_ID if isinstance(ref, int) else SELECT_QUEUE_BY_NAME
    row = conn.execute(sql, (ref,)).fetchone()
    if row is None:
        raise QueueNotFound(f"queue {ref!r} does not exist")
    return _queue(row)


LIST_QUEUES = f"SELECT {QUEUE_COLUMNS} FROM queues ORDER BY id"


def list_queues(conn: sqlite3.Connection) -> list[Queue]:
    return [_queue(row) for row in conn.execute(LIST_QUEUES)]


INSERT_QUEUE = (
    "INSERT INTO queues (name, created_at, visibility_timeout, delay_seconds,"
    " retention_seconds, max_message_size, redrive_target, max_receive_count)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def create_queue(txn: Txn, name: str, a: QueueAttributes) -> Queue:
    if a.redrive_target and not txn.conn.execute(SELECT_QUEUE_BY_NAME, (a.redrive_target,)).fetchone():
        raise InvalidParameter(f"redrive_target {a.redrive_target!r} is not an existing queue")
    try:
        cursor = txn.conn.execute(INSERT_QUEUE, (
            name, txn.now, a.visibility_timeout, a.delay_seconds, a.retention_seconds,
            a.max_message_size, a.redrive_target, a.max_receive_count,
        ))
    except sqlite3.IntegrityError:
        raise QueueExists(f"queue {name!r} already exists") from None
    assert cursor.lastrowid is not None
    return Queue(cursor.lastrowid, name, txn.now, a)


def delete_queue(txn: Txn, ref: QueueRef) -> None:
    queue = resolve(txn.conn, ref)
    for table in ("messages", "queue_counts"):
        txn.conn.execute(f"DELETE FROM {table} WHERE queue_id = ?", (queue.id,))
    txn.conn.execute("DELETE FROM queues WHERE id = ?", (queue.id,))


def purge(txn: Txn, ref: QueueRef) -> int:
    queue = resolve(txn.conn, ref)
    purged: int = txn.conn.execute("DELETE FROM messages WHERE queue_id = ?", (queue.id,)).rowcount
    txn.tally.add(queue.id, messages=-purged)
    return purged


INSERT_MESSAGE = (
    "INSERT INTO messages (id, uuid, queue_id, body, created_at, visible_at,"
    " attributes, group_id, dedup_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def send_batch(txn: Txn, ref: QueueRef, messages: Sequence[NewMessage]) -> list[Message]:
    queue = resolve(txn.conn, ref)
    limit, default_delay = queue.attributes.max_message_size, queue.attributes.delay_seconds
    for m in messages:
        if len(m.body) * 4 > limit and len(m.body.encode()) > limit:
            raise PayloadTooLarge(f"message body is over the queue's limit of {limit} bytes")
    now = txn.now
    sent = [
        Message(
            id, uuid, queue.id, m.body, now,
            now + 1000 * (default_delay if m.delay_seconds is None else m.delay_seconds),
            attributes=m.attributes, group_id=m.group_id, dedup_id=m.dedup_id,
        )
        for id, uuid, m in zip(txn.take_ids(len(messages)), uuid4s(len(messages)), messages, strict=True)
    ]
    txn.conn.executemany(INSERT_MESSAGE, [
        (m.id, m.message_id, m.queue_id, m.body, now, m.visible_at, m.attributes, m.group_id, m.dedup_id)
        for m in sent
    ])
    visible_now = sum(m.visible_at == now for m in sent)
    txn.woken.append((queue.id, visible_now or 1))  # 1: wake someone to re-time
    txn.tally.add(queue.id, messages=len(sent), sent=len(sent))
    return sent


CLAIM = f"""
UPDATE messages
SET visible_at = :until, token = :prefix || id, receive_count = receive_count + 1,
    first_received_at = coalesce(first_received_at, :now)
WHERE id IN (
    SELECT id FROM messages
    WHERE queue_id = :queue AND visible_at <= :now
    ORDER BY visible_at, id LIMIT :size
)
RETURNING {MESSAGE_COLUMNS}
"""
NEXT_VISIBLE = "SELECT min(visible_at) FROM messages WHERE queue_id = ?"
REDRIVE_PASSES = 10  # bounded, so a flood of poison messages cannot stall the writer
REDRIVE = "UPDATE messages SET queue_id = ?, visible_at = ?, token = NULL WHERE id = ?"


def claim(txn: Txn, ref: QueueRef, size: int, visibility_timeout: int | None) -> Claim:
    queue = resolve(txn.conn, ref)
    if visibility_timeout is None:
        visibility_timeout = queue.attributes.visibility_timeout
    params = {
        "queue": queue.id, "now": txn.now, "size": size,
        "until": txn.now + visibility_timeout * 1000, "prefix": secrets.token_hex(8) + "-",
    }
    rows = txn.conn.execute(CLAIM, params).fetchall()
    if rows and queue.attributes.max_receive_count:
        rows = _redrive(txn, queue, rows, params)
    if not rows:
        (next_visible_at,) = txn.conn.execute(NEXT_VISIBLE, (queue.id,)).fetchone()
        return Claim([], queue.id, next_visible_at)
    txn.tally.add(queue.id, received=len(rows))
    rows.sort(key=lambda row: row[0])
    return Claim([Message(*row) for row in rows], queue.id)


def _redrive(txn: Txn, queue: Queue, rows: list[Any], params: dict[str, Any]) -> list[Any]:
    """Move claimed rows past the receive limit to the dead-letter queue, and
    claim again in their place (bounded, so a flood cannot stall the writer)."""
    target = queue.attributes.redrive_target
    row = target and txn.conn.execute(SELECT_QUEUE_BY_NAME, (target,)).fetchone()
    if not row:
        return rows  # no dead-letter queue (any more): keep delivering
    limit, kept = queue.attributes.max_receive_count, []
    for attempt in range(REDRIVE_PASSES):
        over = [r for r in rows if r[6] > limit]
        kept += [r for r in rows if r[6] <= limit]
        if not over:
            break
        txn.conn.executemany(REDRIVE, [(row[0], txn.now, r[0]) for r in over])
        txn.woken.append((row[0], len(over)))
        txn.tally.add(queue.id, messages=-len(over))
        txn.tally.add(row[0], messages=len(over))
        if params["until"] == txn.now or attempt == REDRIVE_PASSES - 1:
            break  # zero timeout: a new claim would take back what we keep; last pass: nothing claimed unseen
        params["size"] = len(over)
        rows = txn.conn.execute(CLAIM, params).fetchall()
    return kept


DELETE = "DELETE FROM messages WHERE id = ? AND (? IS NULL OR token = ?) RETURNING queue_id"
EXISTS = "SELECT 1 FROM messages WHERE id = ?"


def delete(txn: Txn, message_id: int, token: str | None) -> None:
    row = txn.conn.execute(DELETE, (message_id, token, token)).fetchone()
    if row is None:
        _missing(txn.conn, message_id)
    txn.tally.add(row[0], messages=-1, deleted=1)


def _missing(conn: sqlite3.Connection, message_id: int) -> None:
    if conn.execute(EXISTS, (message_id,)).fetchone():
        raise StaleToken(f"message {message_id} was received again since; its token is stale")
    raise MessageNotFound(f"message {message_id} does not exist")


CHANGE_VISIBILITY = (
    f"UPDATE messages SET visible_at = ? WHERE id = ? AND token = ? RETURNING {MESSAGE_COLUMNS}"
)


def change_visibility(txn: Txn, message_id: int, token: str, visibility_timeout: int) -> Message:
    row = txn.conn.execute(
        CHANGE_VISIBILITY, (txn.now + visibility_timeout * 1000, message_id, token)
    ).fetchone()
    if row is None:
        _missing(txn.conn, message_id)
    message = Message(*row)
    txn.woken.append((message.queue_id, 1))
    return message


PEEK = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE queue_id = ? AND id > ? ORDER BY id LIMIT ?"


def peek(conn: sqlite3.Connection, ref: QueueRef, size: int, after_id: int) -> list[Message]:
    queue = resolve(conn, ref)
    return [Message(*row) for row in conn.execute(PEEK, (queue.id, after_id, size))]


STATS = f"""
SELECT {", ".join("q." + c for c in QUEUE_COLUMNS.split(", "))},
       coalesce(c.messages, 0),
       (SELECT count(*) FROM messages m
        WHERE m.queue_id = q.id AND m.visible_at > :now AND m.token IS NOT NULL),
       (SELECT count(*) FROM messages m
        WHERE m.queue_id = q.id AND m.visible_at > :now AND m.token IS NULL),
       (SELECT created_at FROM messages m WHERE m.queue_id = q.id ORDER BY id LIMIT 1),
       coalesce(c.sent, 0), coalesce(c.received, 0), coalesce(c.deleted, 0), coalesce(c.expired, 0)
FROM queues q LEFT JOIN (
    SELECT queue_id, sum(messages) AS messages, sum(sent) AS sent, sum(received) AS received,
           sum(deleted) AS deleted, sum(expired) AS expired
    FROM queue_counts GROUP BY queue_id
) c ON c.queue_id = q.id
ORDER BY q.id
"""


def stats(conn: sqlite3.Connection) -> list[QueueStats]:
    rows = conn.execute(STATS, {"now": now_ms()})
    return [QueueStats.from_counts(_queue(row[:9]), row[9:]) for row in rows]


FIRST_KEPT = "SELECT id FROM messages WHERE queue_id = ? AND created_at >= ? ORDER BY id LIMIT 1"
EXPIRE = """
DELETE FROM messages WHERE id IN (
    SELECT id FROM messages WHERE queue_id = ? AND id < ? ORDER BY id LIMIT ?
)
"""


def expire(txn: Txn, limit: int) -> int:
    """Ids grow with created_at, so a queue's expired messages are the ones
    below its first unexpired id: found by walking only the expired."""
    removed = 0
    for queue in list_queues(txn.conn):
        cutoff = txn.now - queue.attributes.retention_seconds * 1000
        kept = txn.conn.execute(FIRST_KEPT, (queue.id, cutoff)).fetchone()
        below = kept[0] if kept else 2**63 - 1
        n = txn.conn.execute(EXPIRE, (queue.id, below, limit - removed)).rowcount
        txn.tally.add(queue.id, messages=-n, expired=n)
        removed += n
        if removed >= limit:
            break
    return removed
