"""What a write sees (:class:`Txn`): the writer's connection inside its open
transaction, the batch's clock reading, the changes to deliver, message ids, and
the queues, looked up through the writer's :class:`QueueCache`.

Message ids come from the one-row ``sequence`` table, read at most once and
written back once per transaction: monotonic and never reused, like
AUTOINCREMENT, without its bookkeeping on every insert.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from wonderq.backends import rules
from wonderq.backends.rules import SETTINGS, Changes
from wonderq.models import Queue, QueueRef

ADD_COUNTS = """
INSERT INTO queue_counts (queue_id, shard, messages, sent, received, deleted, expired)
VALUES (?, 0, ?, ?, ?, ?, ?)
ON CONFLICT (queue_id, shard) DO UPDATE SET
    messages = messages + excluded.messages, sent = sent + excluded.sent,
    received = received + excluded.received, deleted = deleted + excluded.deleted,
    expired = expired + excluded.expired
"""
READ_SEQUENCE = "SELECT next_id FROM sequence"
WRITE_SEQUENCE = "UPDATE sequence SET next_id = ?"
QUEUE_COLUMNS = f"id, name, created_at, {', '.join(SETTINGS)}, modified_at, tags"
SELECT_QUEUE_BY_ID = f"SELECT {QUEUE_COLUMNS} FROM queues WHERE id = ?"
SELECT_QUEUE_BY_NAME = f"SELECT {QUEUE_COLUMNS} FROM queues WHERE name = ?"
DATA_VERSION = "PRAGMA data_version"


def find_queue(conn: sqlite3.Connection, ref: QueueRef) -> Queue | None:
    row = conn.execute(SELECT_QUEUE_BY_ID if isinstance(ref, int) else SELECT_QUEUE_BY_NAME, (ref,)).fetchone()
    return None if row is None else Queue.from_row(row)


def resolve(conn: sqlite3.Connection, ref: QueueRef) -> Queue:
    return found(ref, find_queue(conn, ref))


def found(ref: QueueRef, queue: Queue | None) -> Queue:
    if queue is None:
        raise rules.no_queue(ref)
    return queue


class QueueCache:
    """The writer's queues, by id and by name, kept across transactions while they are
    still true: no other connection has committed since (``PRAGMA data_version`` is
    unchanged; :meth:`begin` reads it once a transaction, when the write lock is held, so
    nothing can change under it), and this writer has changed no queue (the writes that
    do :meth:`clear` it, as does a rolled-back transaction). A send then needs no queue
    lookup, which cost 15 µs: a tenth of a single send. Another process sharing the file
    (``--cluster``) commits between most transactions, so there it lasts one batch."""

    def __init__(self) -> None:
        self._queues: dict[QueueRef, Queue] = {}
        self._version: int | None = None

    def begin(self, conn: sqlite3.Connection) -> None:
        (version,) = conn.execute(DATA_VERSION).fetchone()
        if version != self._version:
            self._queues.clear()
            self._version = version

    def get(self, ref: QueueRef) -> Queue | None:
        return self._queues.get(ref)

    def put(self, queue: Queue) -> None:
        self._queues[queue.id] = self._queues[queue.name] = queue

    def clear(self) -> None:
        self._queues.clear()


@dataclass(slots=True)
class Txn:
    conn: sqlite3.Connection
    now: int
    changes: Changes = field(default_factory=Changes)
    next_id: int = 0  # 0: not read yet in this transaction
    queues: QueueCache = field(default_factory=QueueCache)  # the backend's own, across transactions

    def take_ids(self, n: int) -> range:
        if not self.next_id:
            self.next_id = self.conn.execute(READ_SEQUENCE).fetchone()[0]
        start, self.next_id = self.next_id, self.next_id + n
        return range(start, self.next_id)

    def find(self, ref: QueueRef) -> Queue | None:
        queue = self.queues.get(ref)
        if queue is None and (queue := find_queue(self.conn, ref)) is not None:
            self.queues.put(queue)
        return queue

    def queue(self, ref: QueueRef) -> Queue:
        """The queue ``ref`` names; QueueNotFound if there is none."""
        return found(ref, self.find(ref))

    def finish(self) -> None:
        if self.next_id:
            self.conn.execute(WRITE_SEQUENCE, (self.next_id,))
        self.conn.executemany(ADD_COUNTS, self.changes.tally.rows())
