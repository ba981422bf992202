"""FIFO dedup in SQLite: a FIFO queue remembers each message's dedup key for
``rules.DEDUP_WINDOW`` seconds in ``dedups`` (even after the message is
deleted), and a send finds there the originals of its duplicates. The single
writer serialises sends, so a look-up and the insert after it cannot race."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from wonderq.backends.rules import DEDUP_WINDOW
from wonderq.models import Message

SELECT_ORIGINAL = "SELECT id, message_id FROM dedups WHERE queue_id = ? AND key = ? AND expires_at > ?"


def originals(
    conn: sqlite3.Connection, queue_id: int, keys: Sequence[str | None], now: int
) -> dict[str, tuple[int, str]]:
    """The unexpired originals of these keys: key -> (id, message_id)."""
    found = {}
    for key in {k for k in keys if k is not None}:
        row = conn.execute(SELECT_ORIGINAL, (queue_id, key, now)).fetchone()
        if row is not None:
            found[key] = (row[0], row[1])
    return found


REMEMBER = """
INSERT INTO dedups (queue_id, key, id, message_id, expires_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (queue_id, key) DO UPDATE SET
    id = excluded.id, message_id = excluded.message_id, expires_at = excluded.expires_at
"""


def remember(conn: sqlite3.Connection, stored: Sequence[tuple[str | None, Message]], now: int) -> None:
    """Record the keys of messages just stored (an expired entry is replaced)."""
    expires = now + DEDUP_WINDOW * 1000
    conn.executemany(REMEMBER, [(m.queue_id, key, m.id, m.message_id, expires) for key, m in stored if key])


FORGET = """
DELETE FROM dedups WHERE (queue_id, key) IN (SELECT queue_id, key FROM dedups WHERE expires_at <= ? LIMIT ?)
"""


def forget(conn: sqlite3.Connection, now: int, limit: int) -> int:
    """Delete up to ``limit`` expired dedup keys; return how many."""
    n: int = conn.execute(FORGET, (now, limit)).rowcount
    return n
