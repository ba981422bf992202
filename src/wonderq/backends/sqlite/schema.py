"""The SQLite schema: each version a script, applied in order inside the
writer's first transaction; the version lives in ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

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
    # The SQS API: more queue settings, tags, when attributes last changed; a message's
    # system attributes and the queue it was dead-lettered from; FIFO dedup ids, kept
    # DEDUP_WINDOW seconds (even after their message is deleted); and an index that finds
    # the earlier or in-flight messages of a FIFO group (a NULL group goes by messages_ready).
    """
    ALTER TABLE queues ADD COLUMN receive_wait_seconds INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN content_dedup INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN dedup_by_group INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN extras TEXT;
    ALTER TABLE queues ADD COLUMN modified_at INTEGER NOT NULL DEFAULT 0;
    UPDATE queues SET modified_at = created_at;
    ALTER TABLE queues ADD COLUMN tags TEXT;
    ALTER TABLE messages ADD COLUMN system_attributes TEXT;
    ALTER TABLE messages ADD COLUMN origin TEXT;
    CREATE TABLE dedups (
        queue_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        id INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (queue_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX dedups_expiry ON dedups (expires_at);
    CREATE INDEX messages_group ON messages (queue_id, group_id, id) WHERE group_id IS NOT NULL
    """,
    # A FIFO claim asks of each candidate whether its group has a message still invisible:
    # by visible_at, the index holds the answer's few rows (in flight or delayed), not the group.
    """
    DROP INDEX messages_group;
    CREATE INDEX messages_group ON messages (queue_id, group_id, visible_at) WHERE group_id IS NOT NULL
    """,
    # The REST API's keys: the secret's SHA-256 only; queues a comma list of names or prefix*.
    """
    CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        scope TEXT NOT NULL,
        queues TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    )
    """,
]


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date, inside the caller's write transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], version + 1):
        for statement in script.split(";"):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")


VERSION = len(MIGRATIONS)
