"""FIFO dedup in PostgreSQL: a FIFO queue remembers each message's dedup key
for ``rules.DEDUP_WINDOW`` seconds in ``wonderq.dedups`` (even after the
message is deleted).

A send stores the first message of each key and claims the key in the same
statement (``INSERT … ON CONFLICT DO UPDATE … WHERE expired``). A key held by
another transaction makes the claim wait for it, so of two brokers sending one
dedup id at once exactly one keeps its message; the other deletes what it
stored (never seen by anyone: its transaction has not committed) and answers
with the original."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wonderq.backends.postgres.queues import MESSAGE_COLUMNS, NOW
from wonderq.backends.rules import DEDUP_WINDOW, uuid4s
from wonderq.models import Message, NewMessage

if TYPE_CHECKING:
    import asyncpg

# $1 uuids, $2 queue, $3 bodies, $4 delays, $5 attributes, $6 groups, $7 dedup ids, $8 system attributes,
# $9 keys, $10 the cached version
INSERT_AND_CLAIM = f"""
WITH u AS (
    SELECT * FROM unnest($1::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
                         $9::text[])
         WITH ORDINALITY AS u(uuid, body, delay, attributes, group_id, dedup_id, system_attributes, key, n)
), stored AS (
    INSERT INTO wonderq.messages (uuid, queue_id, body, created_at, visible_at, attributes, group_id, dedup_id,
                                  system_attributes)
    SELECT u.uuid, $2, u.body, {NOW}, {NOW} + u.delay * 1000, u.attributes, u.group_id, u.dedup_id,
           u.system_attributes
    FROM u WHERE EXISTS (SELECT 1 FROM wonderq.queues WHERE id = $2 AND version = $10)
    ORDER BY u.n
    RETURNING {MESSAGE_COLUMNS}
), claimed AS (
    INSERT INTO wonderq.dedups AS d (queue_id, key, id, message_id, expires_at)
    SELECT $2, u.key, s.id, u.uuid, {NOW} + {DEDUP_WINDOW * 1000}
    FROM stored s JOIN u ON u.uuid = s.message_id::uuid
    WHERE u.key IS NOT NULL
    ON CONFLICT (queue_id, key) DO UPDATE
        SET id = excluded.id, message_id = excluded.message_id, expires_at = excluded.expires_at
        WHERE d.expires_at <= {NOW}
    RETURNING d.id
)
SELECT s.*, u.key IS NULL OR s.id IN (SELECT id FROM claimed) AS kept
FROM stored s JOIN u ON u.uuid = s.message_id::uuid
ORDER BY s.id
"""


async def insert(
    conn: asyncpg.Connection, queue_id: int, version: int, messages: Sequence[NewMessage], seconds: list[int],
    keys: list[str | None],
) -> list[tuple[Message, bool]]:
    """Store messages (keys unique among them) and claim their keys; each
    stored message with whether it keeps its place. Empty if the queue is no
    longer at ``version``."""
    rows = await conn.fetch(
        INSERT_AND_CLAIM, uuid4s(len(messages)), queue_id, [m.body for m in messages], seconds,
        [m.attributes for m in messages], [m.group_id for m in messages], [m.dedup_id for m in messages],
        [m.system_attributes for m in messages], keys, version,
    )
    return [(Message.from_row(row), bool(row["kept"])) for row in rows]


DROP_LOSERS = "DELETE FROM wonderq.messages WHERE id = ANY($1)"
SELECT_ORIGINALS = (
    "SELECT key, id, message_id::text AS message_id FROM wonderq.dedups WHERE queue_id = $1 AND key = ANY($2)"
)


async def originals(conn: asyncpg.Connection, queue_id: int, losers: dict[str, int]) -> dict[str, tuple[int, str]]:
    """Delete the messages (by key) whose key another send holds, and return
    those originals: key -> (id, message_id)."""
    await conn.execute(DROP_LOSERS, list(losers.values()))
    rows = await conn.fetch(SELECT_ORIGINALS, queue_id, list(losers))
    return {row["key"]: (row["id"], row["message_id"]) for row in rows}


FORGET = f"""
DELETE FROM wonderq.dedups WHERE (queue_id, key) IN (
    SELECT queue_id, key FROM wonderq.dedups WHERE expires_at <= {NOW} LIMIT $1
)
"""


async def forget(conn: asyncpg.Connection, limit: int) -> None:
    """Delete up to ``limit`` expired dedup keys."""
    await conn.execute(FORGET, limit)


FIFO_LOCKS = 0x57_6F_6E_64 << 32  # + queue id: an advisory lock per FIFO queue (schema's and vacuum's are small)
LOCK = "SELECT pg_advisory_xact_lock($1)"


async def lock(conn: asyncpg.Connection, queue_id: int) -> None:
    """Take the queue's FIFO lock until the transaction ends: concurrent claims
    of a FIFO queue take turns, each seeing what the last one handed out."""
    await conn.execute(LOCK, FIFO_LOCKS + queue_id)
