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
    txn.conn.execute("DELETE FROM messages WHERE queue_id = ?", (queue.id,))
    txn.conn.execute("DELETE FROM queues WHERE id = ?", (queue.id,))


def purge(txn: Txn, ref: QueueRef) -> int:
    queue = resolve(txn.conn, ref)
    return txn.conn.execute("DELETE FROM messages WHERE queue_id = ?", (queue.id,)).rowcount


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
    for _ in range(10):
        over = [r for r in rows if r[6] > limit]
        kept += [r for r in rows if r[6] <= limit]
        if not over:
            break
        txn.conn.executemany(REDRIVE, [(row[0], txn.now, r[0]) for r in over])
        txn.woken.append((row[0], len(over)))
        params["size"] = len(over)
        rows = txn.conn.execute(CLAIM, params).fetchall()
    return kept


DELETE = "DELETE FROM messages WHERE id = ? AND (? IS NULL OR token = ?)"
EXISTS = "SELECT 1 FROM messages WHERE id = ?"


def delete(txn: Txn, message_id: int, token: str | None) -> None:
    if txn.conn.execute(DELETE, (message_id, token, token)).rowcount == 0:
        _missing(txn.conn, message_id)


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


STATS = """
SELECT count(*), coalesce(sum(visible_at <= :now), 0),
       coalesce(sum(visible_at > :now AND token IS NOT NULL), 0),
       coalesce(sum(visible_at > :now AND token IS NULL), 0),
       min(created_at)
FROM messages WHERE queue_id = :queue
"""


def stats(conn: sqlite3.Connection, now: int) -> list[QueueStats]:
    result = []
    for queue in list_queues(conn):
        row = conn.execute(STATS, {"now": now, "queue": queue.id}).fetchone()
        result.append(QueueStats(queue, *row))
    return result


EXPIRE = """
DELETE FROM messages WHERE id IN (
    SELECT m.id FROM queues q JOIN messages m ON m.queue_id = q.id
    WHERE m.created_at < :now - q.retention_seconds * 1000 LIMIT :limit
)
"""


def expire(txn: Txn, limit: int) -> int:
    return txn.conn.execute(EXPIRE, {"now": txn.now, "limit": limit}).rowcount
