"""The SQLite backend's statements, each beside the function that runs it.

Write functions take a :class:`Txn` and run inside the writer's open
transaction; they check everything that can fail before writing, so a raised
WonderQError never leaves half a write behind. Read functions take the reader
connection (those that serve the dashboard and the metrics are in :mod:`.reads`).
Messages are built from rows of :data:`MESSAGE_COLUMNS`, made from the model's
fields in order (``sqlite3.Row``'s look-up by name compares it with every column
before it); the other models by column name.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial

from wonderq.backends import rules
from wonderq.backends.rules import SETTINGS, Deleted, Redrive, check_sizes, delay, missing, settings, tags_json, uuid4s
from wonderq.backends.sqlite import fifo
from wonderq.backends.sqlite.txn import QUEUE_COLUMNS, Txn, find_queue
from wonderq.errors import QueueExists
from wonderq.models import Claim, Message, NewMessage, Queue, QueueAttributes, QueueRef

# Message's fields, by name and in its order (the uuid column is its message_id), so that
# messages() builds a Message from a row's values alone: sqlite3.Row looks a name up by
# comparing it with every column before it, and a by-name from_row cost 2.5 µs a message
MESSAGE_COLUMNS = ", ".join("uuid AS message_id" if f == "message_id" else f for f in Message.FIELDS)


def messages(rows: sqlite3.Cursor) -> list[Message]:
    """The messages of a statement that selects MESSAGE_COLUMNS."""
    return [Message(*row) for row in rows]


LIST_QUEUES = f"SELECT {QUEUE_COLUMNS} FROM queues ORDER BY id"


def list_queues(conn: sqlite3.Connection) -> list[Queue]:
    return [Queue.from_row(row) for row in conn.execute(LIST_QUEUES)]


INSERT_QUEUE = (
    f"INSERT INTO queues (name, created_at, modified_at, {', '.join(SETTINGS)})"
    f" VALUES (?, ?, ?, {', '.join('?' for _ in SETTINGS)}) RETURNING {QUEUE_COLUMNS}"
)


def check_target(conn: sqlite3.Connection, name: str, a: QueueAttributes, before: str | None = None) -> None:
    rules.check_target(name, a, find_queue(conn, a.redrive_target) if a.redrive_target else None, before)


COUNT_QUEUES = "SELECT count(*) FROM queues"


def check_room(conn: sqlite3.Connection, name: str, cap: int) -> None:
    """The queue cap, in the create's transaction (the writer's: exact, even across
    processes). Counting 10,000 queues takes SQLite about 13 µs."""
    (count,) = conn.execute(COUNT_QUEUES).fetchone()
    if count >= cap:
        raise rules.too_many_queues(name, count, cap, find_queue(conn, name) is not None)


def create_queue(txn: Txn, name: str, a: QueueAttributes, cap: int) -> Queue:
    check_room(txn.conn, name, cap)
    check_target(txn.conn, name, a)
    try:
        row = txn.conn.execute(INSERT_QUEUE, (name, txn.now, txn.now, *settings(a))).fetchone()
    except sqlite3.IntegrityError:
        raise QueueExists(f"queue {name!r} already exists") from None
    txn.queues.clear()
    return Queue.from_row(row)


SET_ATTRIBUTES = (
    f"UPDATE queues SET {', '.join(c + ' = ?' for c in SETTINGS)}, modified_at = ?"
    f" WHERE id = ? RETURNING {QUEUE_COLUMNS}"
)


def set_attributes(txn: Txn, ref: QueueRef, a: QueueAttributes) -> Queue:
    queue = txn.queue(ref)
    check_target(txn.conn, queue.name, a, queue.attributes.redrive_target)
    txn.queues.clear()
    return Queue.from_row(txn.conn.execute(SET_ATTRIBUTES, (*settings(a), txn.now, queue.id)).fetchone())


SET_TAGS = f"UPDATE queues SET tags = ? WHERE id = ? RETURNING {QUEUE_COLUMNS}"


def set_tags(txn: Txn, ref: QueueRef, tags: Mapping[str, str]) -> Queue:
    queue = txn.queue(ref)
    txn.queues.clear()
    return Queue.from_row(txn.conn.execute(SET_TAGS, (tags_json(tags), queue.id)).fetchone())


DELETE_QUEUE = ("DELETE FROM messages WHERE queue_id = ?", "DELETE FROM queue_counts WHERE queue_id = ?",
                "DELETE FROM dedups WHERE queue_id = ?", "DELETE FROM queues WHERE id = ?")


def delete_queue(txn: Txn, ref: QueueRef) -> None:
    queue = txn.queue(ref)
    txn.queues.clear()
    for statement in DELETE_QUEUE:
        txn.conn.execute(statement, (queue.id,))


PURGE = "DELETE FROM messages WHERE queue_id = ?"


def purge(txn: Txn, ref: QueueRef) -> int:
    queue = txn.queue(ref)
    purged: int = txn.conn.execute(PURGE, (queue.id,)).rowcount
    txn.changes.tally.add(queue.id, messages=-purged)
    return purged


INSERT_MESSAGE = (
    "INSERT INTO messages (id, uuid, queue_id, body, created_at, visible_at,"
    " attributes, group_id, dedup_id, system_attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_PLAIN = "INSERT INTO messages (id, uuid, queue_id, body, created_at, visible_at) VALUES (?, ?, ?, ?, ?, ?)"


def send_batch(txn: Txn, ref: QueueRef, messages: Sequence[NewMessage]) -> list[Message]:
    queue = txn.queue(ref)
    check_sizes(queue, messages)
    messages = rules.content_deduped(queue, messages)
    now = txn.now
    sent = staged(txn, [(queue, m) for m in messages])
    keys = [rules.dedup_key(queue, m) for m in messages] if queue.fifo else []
    if not any(keys):
        insert(txn, sent)
        return sent
    known = fifo.originals(txn.conn, queue.id, keys, now)
    store = [i for i in rules.firsts(keys) if keys[i] not in known]
    insert(txn, [sent[i] for i in store])
    fifo.remember(txn.conn, [(keys[i], sent[i]) for i in store], now)
    return rules.in_place(dict(enumerate(sent)), keys, known)


def staged(txn: Txn, messages: Sequence[tuple[Queue, NewMessage]]) -> list[Message]:
    """The messages sends will store, each to its queue, with their ids, not written yet.
    One call for a whole batch of sends, whatever their queues: ids and UUIDs drawn once
    (a draw a queue had cost a send spread over 10,000 queues a third of its writer time)."""
    now, n = txn.now, len(messages)
    return [  # by position, in the order of Message.FIELDS: by keyword cost twice as much (0.7 µs)
        Message(id, uuid, queue.id, m.body, now, now + 1000 * delay(queue, m), 0, None, None, m.attributes,
                m.group_id, m.dedup_id, m.system_attributes)
        for id, uuid, (queue, m) in zip(txn.take_ids(n), uuid4s(n), messages, strict=True)
    ]


def insert(txn: Txn, messages: list[Message]) -> None:
    """Write staged messages (:func:`staged`), of any queues, in one executemany. Those with
    nothing but a body (the common case) go through INSERT_PLAIN, which binds no None: the
    sqlite3 module binds each None only after two failed attribute lookups (its adapter
    protocol), each raising an AttributeError, some 20 times the cost of binding an int."""
    plain, rich = [], []
    counts: dict[int, list[int]] = {}  # queue id: [messages, visible now]
    now = txn.now
    for m in messages:
        row = (m.id, m.message_id, m.queue_id, m.body, m.created_at, m.visible_at)
        if m.attributes is None and m.group_id is None and m.dedup_id is None and m.system_attributes is None:
            plain.append(row)
        else:
            rich.append((*row, m.attributes, m.group_id, m.dedup_id, m.system_attributes))
        if (count := counts.get(m.queue_id)) is None:
            count = counts[m.queue_id] = [0, 0]
        count[0] += 1
        count[1] += m.visible_at == now
    if plain:
        txn.conn.executemany(INSERT_PLAIN, plain)
    if rich:
        txn.conn.executemany(INSERT_MESSAGE, rich)
    for queue_id, (n, visible_now) in counts.items():
        txn.changes.sent(queue_id, n, visible_now)


# A claim selects its messages, then takes them (take()): one UPDATE by id each. An
# UPDATE ... WHERE id IN (SELECT ...) RETURNING built two temporary tables a claim, whose
# pages SQLite zeroes (callgrind: 124k instructions more a claim of 10).
CLAIM = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE queue_id = :queue AND visible_at <= :now
ORDER BY visible_at, id LIMIT :size
"""
# FIFO: in id order (along messages_queue: the + keeps messages_ready and a sort away), and
# only messages whose group has none in flight and none earlier still invisible (by
# messages_group; a NULL group_id is one group: the second test, by messages_ready).
FIFO_CLAIM = f"""
SELECT {MESSAGE_COLUMNS} FROM messages m
WHERE queue_id = :queue AND +visible_at <= :now
  AND NOT EXISTS (
      SELECT 1 FROM messages o
      WHERE o.queue_id = :queue AND o.group_id = m.group_id AND o.visible_at > :now
        AND (o.token IS NOT NULL OR o.id < m.id))
  AND (m.group_id IS NOT NULL OR NOT EXISTS (
      SELECT 1 FROM messages o
      WHERE o.queue_id = :queue AND o.group_id IS NULL AND o.visible_at > :now
        AND (o.token IS NOT NULL OR o.id < m.id)))
ORDER BY id LIMIT :size
"""
TAKE = "UPDATE messages SET visible_at = ?, token = ?, receive_count = ?, first_received_at = ? WHERE id = ?"


def take(txn: Txn, statement: str, params: dict[str, int], until: int, prefix: str) -> list[Message]:
    """The messages a claim's statement selects, taken: invisible until ``until``, under a
    new token (``prefix`` and the id), received once more, first received now if never."""
    taken = messages(txn.conn.execute(statement, params))
    for m in taken:
        m.visible_at, m.token, m.receive_count = until, f"{prefix}{m.id}", m.receive_count + 1
        if m.first_received_at is None:
            m.first_received_at = txn.now
    txn.conn.executemany(TAKE, [(m.visible_at, m.token, m.receive_count, m.first_received_at, m.id) for m in taken])
    return taken


NEXT_VISIBLE = "SELECT min(visible_at) FROM messages WHERE queue_id = ?"
REDRIVE = "UPDATE messages SET queue_id = ?, visible_at = ?, token = NULL, origin = ? WHERE id = ?"


def claim(txn: Txn, ref: QueueRef, size: int, visibility_timeout: int | None) -> Claim:
    queue = txn.queue(ref)
    timeout = queue.attributes.visibility_timeout if visibility_timeout is None else visibility_timeout
    params = {"queue": queue.id, "now": txn.now, "size": size}
    taking = partial(take, txn, FIFO_CLAIM if queue.fifo else CLAIM, params, txn.now + timeout * 1000,
                     secrets.token_hex(8) + "-")
    claimed = taking()
    if claimed and queue.attributes.max_receive_count:
        claimed = _redrive(txn, queue, claimed, params, timeout, taking)
    if not claimed:
        (next_visible_at,) = txn.conn.execute(NEXT_VISIBLE, (queue.id,)).fetchone()
        return Claim([], queue.id, next_visible_at)
    txn.changes.tally.add(queue.id, received=len(claimed))
    claimed.sort(key=lambda m: m.id)
    return Claim(claimed, queue.id)


def _redrive(
    txn: Txn, queue: Queue, claimed: list[Message], params: dict[str, int], timeout: int,
    taking: Callable[[], list[Message]],
) -> list[Message]:
    dlq = queue.attributes.redrive_target and txn.find(queue.attributes.redrive_target)
    if not dlq:
        return claimed  # no dead-letter queue (any more): keep delivering
    redrive = Redrive(queue, dlq.id, timeout, txn.changes)
    while over := redrive.over(claimed):
        txn.conn.executemany(REDRIVE, [(dlq.id, txn.now, queue.name, m.id) for m in over])
        params["size"] = redrive.again(over)
        claimed = taking() if params["size"] else []
    return redrive.kept


MOVED = "visible_at = :now, receive_count = 0, token = NULL, origin = NULL, first_received_at = NULL"
MOVE_TO = f"""
UPDATE messages SET queue_id = :destination, {MOVED}
WHERE id IN (SELECT id FROM messages WHERE queue_id = :queue AND visible_at <= :now ORDER BY id LIMIT :limit)
RETURNING queue_id
"""
MOVE_BACK = f"""
UPDATE messages SET queue_id = (SELECT q.id FROM queues q WHERE q.name = messages.origin), {MOVED}
WHERE id IN (
    SELECT m.id FROM messages m JOIN queues q ON q.name = m.origin
    WHERE m.queue_id = :queue AND m.visible_at <= :now ORDER BY m.id LIMIT :limit
)
RETURNING queue_id
"""


def move_messages(txn: Txn, ref: QueueRef, destination: QueueRef | None, limit: int) -> int:
    queue = txn.queue(ref)
    params = {"queue": queue.id, "now": txn.now, "limit": limit}
    if destination is not None:
        params["destination"] = txn.queue(destination).id
    moved = Counter(row[0] for row in txn.conn.execute(MOVE_BACK if destination is None else MOVE_TO, params))
    return txn.changes.moved(queue.id, moved)


DELETE = "DELETE FROM messages WHERE id = ?"
LOCATE_MANY = "SELECT id, queue_id, token FROM messages WHERE id IN ({})"


def delete(txn: Txn, message_id: int, token: str | None) -> None:
    (refused,) = delete_batch(txn, [(message_id, token)])
    if refused is not None:
        raise refused


def delete_batch(txn: Txn, entries: Sequence[tuple[int, str | None]], ref: QueueRef | None = None) -> Deleted:
    """One SELECT finds the batch and one executemany deletes it by id (a DELETE ...
    RETURNING costs SQLite a temporary table each time). Outcomes are as if the entries
    were deleted in order, one at a time."""
    queue_id = None if ref is None else txn.queue(ref).id
    ids = list({message_id for message_id, _ in entries})
    found = {row[0]: row for row in txn.conn.execute(LOCATE_MANY.format(", ".join("?" * len(ids))), ids)}
    outcomes: Deleted = []
    doomed = []
    for message_id, token in entries:
        row = found.get(message_id)
        if row is None or (token is not None and row[2] != token) or queue_id not in (None, row[1]):
            outcomes.append(rules.refusal(message_id, None if row is None else row[1], queue_id))
            continue
        del found[message_id]  # an entry after this one finds it gone
        doomed.append((message_id,))
        txn.changes.tally.add(row[1], messages=-1, deleted=1)
        outcomes.append(None)
    txn.conn.executemany(DELETE, doomed)
    return outcomes


CHANGE_VISIBILITY = f"""
UPDATE messages SET visible_at = ? WHERE id = ? AND token = ? AND queue_id = coalesce(?, queue_id)
RETURNING {MESSAGE_COLUMNS}"""
QUEUE_OF = "SELECT queue_id FROM messages WHERE id = ?"


def change_visibility(
    txn: Txn, message_id: int, token: str, visibility_timeout: int, ref: QueueRef | None = None,
) -> Message:
    queue_id = None if ref is None else txn.queue(ref).id
    visible_at = txn.now + visibility_timeout * 1000
    row = txn.conn.execute(CHANGE_VISIBILITY, (visible_at, message_id, token, queue_id)).fetchone()
    if row is None:
        found_in = txn.conn.execute(QUEUE_OF, (message_id,)).fetchone()
        missing(message_id, found_in and found_in[0], queue_id)
    message = Message(*row)  # a row of MESSAGE_COLUMNS (see messages())
    txn.changes.woken.append((message.queue_id, 1))
    return message


FIRST_KEPT = "SELECT id FROM messages WHERE queue_id = ? AND created_at >= ? ORDER BY id LIMIT 1"
EXPIRE = """
DELETE FROM messages WHERE id IN (
    SELECT id FROM messages WHERE queue_id = ? AND id < ? ORDER BY id LIMIT ?
)
"""


def expire(txn: Txn, limit: int) -> int:
    """Ids grow with created_at, so a queue's expired messages are the ones
    below its first unexpired id: found by walking only the expired. Expired
    dedup keys go too (not counted)."""
    fifo.forget(txn.conn, txn.now, limit)
    removed = 0
    for queue in list_queues(txn.conn):
        cutoff = txn.now - queue.attributes.retention_seconds * 1000
        kept = txn.conn.execute(FIRST_KEPT, (queue.id, cutoff)).fetchone()
        below = kept[0] if kept else 2**63 - 1
        n = txn.conn.execute(EXPIRE, (queue.id, below, limit - removed)).rowcount
        txn.changes.tally.add(queue.id, messages=-n, expired=n)
        removed += n
        if removed >= limit:
            break
    return removed
