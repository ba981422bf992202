"""The PostgreSQL backend's message statements, each beside the function that runs it.

Times come from the database's clock (``NOW``), so brokers on several machines
agree on when a message is visible. Write ops take a :class:`Txn` and run
inside the batch's transaction; they check before they write, so a raised
WonderQError leaves nothing behind. Queue rows, the queue cache and the
transaction are in :mod:`.queues`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from wonderq.backends import rules
from wonderq.backends.postgres import fifo
from wonderq.backends.postgres.queues import (
    MESSAGE_COLUMNS,
    NOW,
    Cached,
    Txn,
    find_queue,
    list_queues,
    resolve,
)
from wonderq.backends.rules import Deleted, Redrive, check_sizes, delays, missing, uuid4s
from wonderq.errors import PayloadTooLarge, StaleToken, Unavailable
from wonderq.models import Claim, Message, NewMessage, QueueRef

PURGE = "DELETE FROM wonderq.messages WHERE queue_id = $1"


async def purge(txn: Txn, ref: QueueRef) -> int:
    queue = await resolve(txn.conn, ref)
    purged = int((await txn.conn.execute(PURGE, queue.id)).split()[-1])
    txn.changes.tally.add(queue.id, messages=-purged)
    return purged


INSERT_MESSAGES = f"""
INSERT INTO wonderq.messages (uuid, queue_id, body, created_at, visible_at, attributes, group_id, dedup_id,
                              system_attributes)
SELECT u.uuid, $2, u.body, {NOW}, {NOW} + u.delay * 1000, u.attributes, u.group_id, u.dedup_id,
       u.system_attributes
FROM unnest($1::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[])
     WITH ORDINALITY AS u(uuid, body, delay, attributes, group_id, dedup_id, system_attributes, n)
WHERE EXISTS (SELECT 1 FROM wonderq.queues WHERE id = $2 AND version = $9)
ORDER BY u.n
RETURNING {MESSAGE_COLUMNS}
"""
VERSION = "SELECT version FROM wonderq.queues WHERE id = $1"
ATTEMPTS = 3  # looks at a queue whose attributes keep changing under a send


async def send_batch(txn: Txn, ref: QueueRef, messages: Sequence[NewMessage]) -> list[Message]:
    """Send with the cached queue; if it changed or went meanwhile, look it up
    again (QueueNotFound if it is gone) and send once more."""
    cached = await txn.queues.get(txn.conn, ref)
    for _ in range(ATTEMPTS):
        sent = await _send(txn, cached, messages)
        if sent is not None:
            return sent
        cached = await txn.queues.refresh(txn.conn, ref, cached.queue)
    raise Unavailable(f"queue {ref!r} keeps changing; try again")


async def _send(txn: Txn, cached: Cached, messages: Sequence[NewMessage]) -> list[Message] | None:
    """The messages stored, or None if ``cached`` is no longer the queue's state."""
    queue = cached.queue
    try:
        check_sizes(queue, messages)
    except PayloadTooLarge:
        if await txn.conn.fetchval(VERSION, queue.id) != cached.version:
            return None  # the limit may have changed
        raise
    messages = rules.content_deduped(queue, messages)
    seconds = delays(queue, messages)
    keys = [rules.dedup_key(queue, m) for m in messages] if queue.fifo else []
    if any(keys):
        return await _send_fifo(txn, cached, messages, seconds, keys)
    rows = await txn.conn.fetch(
        INSERT_MESSAGES, uuid4s(len(messages)), queue.id, [m.body for m in messages], seconds,
        [m.attributes for m in messages], [m.group_id for m in messages], [m.dedup_id for m in messages],
        [m.system_attributes for m in messages], cached.version,
    )
    if not rows:
        return None
    txn.changes.sent(queue.id, len(rows), sum(d == 0 for d in seconds))
    return sorted((Message.from_row(row) for row in rows), key=lambda m: m.id)


async def _send_fifo(
    txn: Txn, cached: Cached, messages: Sequence[NewMessage], seconds: list[int], keys: list[str | None]
) -> list[Message] | None:
    """Store the first message of each dedup key (see :mod:`.fifo`); the
    others, and those whose key another send holds, answer with the original."""
    queue = cached.queue
    store = rules.firsts(keys)
    stored = await fifo.insert(
        txn.conn, queue.id, cached.version, [messages[i] for i in store], [seconds[i] for i in store],
        [keys[i] for i in store],
    )
    if not stored:
        return None
    lost = {key: m.id for i, (m, kept) in zip(store, stored, strict=True) if not kept and (key := keys[i])}
    known = await fifo.originals(txn.conn, queue.id, lost) if lost else {}
    kept = [m for m, keep in stored if keep]
    if kept:
        txn.changes.sent(queue.id, len(kept), sum(m.visible_at == m.created_at for m in kept))
    return rules.in_place({i: m for i, (m, _) in zip(store, stored, strict=True)}, keys, known)


# A receipt's token: 64 random bits of its own and the message's id. Not one random prefix a
# claim: the claims a batch joins (backend.claims_joined) are one statement, and a consumer
# given one message's token could have made those of the others' messages from it.
TOKEN = "left(md5(gen_random_uuid()::text), 16) || '-' || m.id"
# Each statement that takes rows picks them in a MATERIALIZED CTE, which runs once. As a
# subquery in FROM it could be the inner side of a nested loop, run again for every outer
# row: SKIP LOCKED then skips the rows this statement has just updated, and returns the
# next ones, so a claim of 1 took every visible message of its queue.
CLAIM = f"""
WITH picked AS MATERIALIZED (
    SELECT id FROM wonderq.messages
    WHERE queue_id = $1 AND visible_at <= {NOW}
      AND EXISTS (SELECT 1 FROM wonderq.queues WHERE id = $1 AND version = $4)
    ORDER BY visible_at, id LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE wonderq.messages m
SET visible_at = {NOW} + $3 * 1000, token = {TOKEN}, receive_count = m.receive_count + 1,
    first_received_at = coalesce(m.first_received_at, {NOW})
FROM picked
WHERE m.id = picked.id
RETURNING {", ".join("m." + c for c in MESSAGE_COLUMNS.split(", "))}
"""
# FIFO: in id order, and only messages whose group has none in flight and none earlier
# still invisible (a NULL group_id is one group: the second test, by messages_ready).
FIFO_CLAIM = f"""
WITH picked AS MATERIALIZED (
    SELECT id FROM wonderq.messages c
    WHERE queue_id = $1 AND visible_at <= {NOW}
      AND EXISTS (SELECT 1 FROM wonderq.queues WHERE id = $1 AND version = $4)
      AND NOT EXISTS (
          SELECT 1 FROM wonderq.messages o
          WHERE o.queue_id = $1 AND o.group_id = c.group_id AND o.visible_at > {NOW}
            AND (o.token IS NOT NULL OR o.id < c.id))
      AND (c.group_id IS NOT NULL OR NOT EXISTS (
          SELECT 1 FROM wonderq.messages o
          WHERE o.queue_id = $1 AND o.group_id IS NULL AND o.visible_at > {NOW}
            AND (o.token IS NOT NULL OR o.id < c.id)))
    ORDER BY id LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE wonderq.messages m
SET visible_at = {NOW} + $3 * 1000, token = {TOKEN}, receive_count = m.receive_count + 1,
    first_received_at = coalesce(m.first_received_at, {NOW})
FROM picked
WHERE m.id = picked.id
RETURNING {", ".join("m." + c for c in MESSAGE_COLUMNS.split(", "))}
"""
NEXT_VISIBLE = """
SELECT (SELECT min(visible_at) FROM wonderq.messages WHERE queue_id = $1) AS next_visible_at,
       (SELECT version FROM wonderq.queues WHERE id = $1) AS version
"""
REDRIVE = (
    f"UPDATE wonderq.messages SET queue_id = $1, visible_at = {NOW}, token = NULL, origin = $3 WHERE id = ANY($2)"
)


async def claim(txn: Txn, ref: QueueRef, size: int, visibility_timeout: int | None) -> Claim:
    """Claim with the cached queue; if it changed or went meanwhile, look it up
    again (QueueNotFound if it is gone) and claim once more."""
    cached = await txn.queues.get(txn.conn, ref)
    result = await _claim(txn, cached, size, visibility_timeout)
    if result is None:
        cached = await txn.queues.refresh(txn.conn, ref, cached.queue)
        result = await _claim(txn, cached, size, visibility_timeout) or Claim([], cached.queue.id)
    return result


async def _claim(txn: Txn, cached: Cached, size: int, visibility_timeout: int | None) -> Claim | None:
    """The claim, or None if ``cached`` is no longer the queue's state."""
    queue, version = cached.queue, cached.version
    timeout = queue.attributes.visibility_timeout if visibility_timeout is None else visibility_timeout
    if queue.fifo:
        await fifo.lock(txn.conn, queue.id)
    statement = FIFO_CLAIM if queue.fifo else CLAIM
    rows = await txn.conn.fetch(statement, queue.id, size, timeout, version)
    claimed = [Message.from_row(row) for row in rows]
    if claimed and queue.attributes.max_receive_count:
        claimed = await _redrive(txn, cached, claimed, timeout, statement)
    if not claimed:
        row = await txn.conn.fetchrow(NEXT_VISIBLE, queue.id)
        return None if row["version"] != version else Claim([], queue.id, row["next_visible_at"])
    txn.changes.tally.add(queue.id, received=len(claimed))
    return Claim(sorted(claimed, key=lambda m: m.id), queue.id)


async def _redrive(
    txn: Txn, cached: Cached, claimed: list[Message], timeout: int, statement: str
) -> list[Message]:
    queue = cached.queue
    dlq = queue.attributes.redrive_target and await find_queue(txn.conn, queue.attributes.redrive_target)
    if not dlq:
        return claimed
    redrive = Redrive(queue, dlq.id, timeout, txn.changes)
    while over := redrive.over(claimed):
        await txn.conn.execute(REDRIVE, dlq.id, [m.id for m in over], queue.name)
        again = redrive.again(over)
        rows = await txn.conn.fetch(statement, queue.id, again, timeout, cached.version) if again else []
        claimed = [Message.from_row(row) for row in rows]
    return redrive.kept


MOVED = f"visible_at = {NOW}, receive_count = 0, token = NULL, origin = NULL, first_received_at = NULL"
MOVE_TO = f"""
WITH picked AS MATERIALIZED (
    SELECT id FROM wonderq.messages WHERE queue_id = $1 AND visible_at <= {NOW}
    ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE wonderq.messages m SET queue_id = $3, {MOVED}
FROM picked
WHERE m.id = picked.id
RETURNING m.queue_id
"""
MOVE_BACK = f"""
WITH picked AS MATERIALIZED (
    SELECT o.id, q.id AS origin_id FROM wonderq.messages o JOIN wonderq.queues q ON q.name = o.origin
    WHERE o.queue_id = $1 AND o.visible_at <= {NOW}
    ORDER BY o.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED
)
UPDATE wonderq.messages m SET queue_id = picked.origin_id, {MOVED}
FROM picked
WHERE m.id = picked.id
RETURNING m.queue_id
"""


async def move_messages(txn: Txn, ref: QueueRef, destination: QueueRef | None, limit: int) -> int:
    queue = await resolve(txn.conn, ref)
    if destination is None:
        rows = await txn.conn.fetch(MOVE_BACK, queue.id, limit)
    else:
        rows = await txn.conn.fetch(MOVE_TO, queue.id, limit, (await resolve(txn.conn, destination)).id)
    return txn.changes.moved(queue.id, Counter(row["queue_id"] for row in rows))


DELETE_BATCH = """
DELETE FROM wonderq.messages m USING unnest($1::bigint[], $2::text[]) AS w(id, token)
WHERE m.id = w.id AND (w.token IS NULL OR m.token = w.token) AND m.queue_id = coalesce($3, m.queue_id)
RETURNING m.id, m.queue_id, m.token
"""
QUEUE_OF = "SELECT queue_id FROM wonderq.messages WHERE id = $1"
EXISTING = "SELECT id, queue_id FROM wonderq.messages WHERE id = ANY($1::bigint[])"


async def delete(txn: Txn, message_id: int, token: str | None) -> None:
    (refused,) = await delete_batch(txn, [(message_id, token)])
    if refused is not None:
        raise refused


async def delete_batch(txn: Txn, entries: Sequence[tuple[int, str | None]], ref: QueueRef | None = None) -> Deleted:
    """One statement deletes the batch (a round trip for each had been most of a consume's
    cost); a second, only if some were not deleted, tells a stale token from a message gone.
    Outcomes are as if the entries were deleted in order, one at a time. With ``ref``, only
    that queue's messages, its id from the queue cache (checked by :func:`moved`)."""
    if ref is None:
        return await _delete_batch(txn, entries, None)
    cached = await txn.queues.get(txn.conn, ref)
    outcomes = await _delete_batch(txn, entries, cached.queue.id)
    if await moved(txn, ref, cached, outcomes):
        outcomes = await _delete_batch(txn, entries, (await txn.queues.get(txn.conn, ref)).queue.id)
    return outcomes


async def _delete_batch(txn: Txn, entries: Sequence[tuple[int, str | None]], queue_id: int | None) -> Deleted:
    rows = await txn.conn.fetch(DELETE_BATCH, [i for i, _ in entries], [t for _, t in entries], queue_id)
    gone = {row["id"]: (row["token"], row["queue_id"]) for row in rows}
    for row in rows:
        txn.changes.tally.add(row["queue_id"], messages=-1, deleted=1)
    left = [i for i, _ in entries if i not in gone]
    found_in = {row["id"]: row["queue_id"] for row in await txn.conn.fetch(EXISTING, left)} if left else {}
    found_in.update((message_id, queue) for message_id, (_, queue) in gone.items())
    outcomes: Deleted = []
    for message_id, token in entries:
        if message_id in gone and token in (None, gone[message_id][0]):
            del gone[message_id], found_in[message_id]  # an entry after this one finds it gone
            outcomes.append(None)
        else:
            outcomes.append(rules.refusal(message_id, found_in.get(message_id), queue_id))
    return outcomes


CHANGE_VISIBILITY = f"""
UPDATE wonderq.messages SET visible_at = {NOW} + $3 * 1000
WHERE id = $1 AND token = $2 AND queue_id = coalesce($4, queue_id)
RETURNING {MESSAGE_COLUMNS}
"""


async def change_visibility(
    txn: Txn, message_id: int, token: str, visibility_timeout: int, ref: QueueRef | None = None,
) -> Message:
    cached = None if ref is None else await txn.queues.get(txn.conn, ref)
    try:
        named = None if cached is None else cached.queue.id
        message = await _change_visibility(txn, message_id, token, visibility_timeout, named)
    except StaleToken as exc:
        if ref is None or cached is None or not await moved(txn, ref, cached, [exc]):
            raise
        fresh = (await txn.queues.get(txn.conn, ref)).queue.id
        message = await _change_visibility(txn, message_id, token, visibility_timeout, fresh)
    txn.changes.woken.append((message.queue_id, 1))
    return message


async def _change_visibility(txn: Txn, message_id: int, token: str, seconds: int, queue_id: int | None) -> Message:
    row = await txn.conn.fetchrow(CHANGE_VISIBILITY, message_id, token, seconds, queue_id)
    if row is None:
        missing(message_id, await txn.conn.fetchval(QUEUE_OF, message_id), queue_id)
    return Message.from_row(row)


async def moved(txn: Txn, ref: QueueRef, cached: Cached, outcomes: Sequence[object]) -> bool:
    """Whether a refusal for another queue came from a stale cache: another broker deleted
    the queue ``ref`` names and made it again, under a new id (then the statement changed
    nothing: no message is left in a deleted queue). Looked up afresh only then."""
    if not any(isinstance(o, StaleToken) and o.elsewhere for o in outcomes):
        return False
    return (await txn.queues.refresh(txn.conn, ref, cached.queue)).queue.id != cached.queue.id


FIRST_KEPT = "SELECT id FROM wonderq.messages WHERE queue_id = $1 AND created_at >= $2 ORDER BY id LIMIT 1"
EXPIRE = """
DELETE FROM wonderq.messages WHERE queue_id = $1 AND id IN (
    SELECT id FROM wonderq.messages WHERE queue_id = $1 AND id < $2 ORDER BY id LIMIT $3
)
"""


async def expire(txn: Txn, limit: int) -> int:
    """Ids grow with created_at, so a queue's expired messages are the ones
    below its first unexpired id: found by walking only the expired. Expired
    dedup keys go too (not counted)."""
    await fifo.forget(txn.conn, limit)
    removed = await _orphans(txn)
    if removed >= limit:  # the queues' turn comes next sweep (a LIMIT may not be negative)
        return removed
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
