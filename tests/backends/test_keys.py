"""API key storage, on every backend: keys are created, listed and revoked; a v5
database (before keys) upgrades with its queues kept."""

from __future__ import annotations

import sqlite3

import pytest

from wonderq.backends import backend_for, sqlite_path
from wonderq.backends.base import Backend
from wonderq.backends.postgres import schema as pg_schema
from wonderq.backends.sqlite import schema as sqlite_schema
from wonderq.errors import Conflict, NotFound
from wonderq.models import ApiKey
from wonderq.settings import Settings

HASH = "ab" * 32


async def test_create_list_revoke(db: Backend) -> None:
    assert await db.list_keys() == []
    first = await db.create_key("0123456789abcdef", "ci", "write", ("orders-*", "audit"), HASH)
    assert (first.id, first.name, first.scope, first.queues, first.secret_hash) == (
        "0123456789abcdef", "ci", "write", ("orders-*", "audit"), HASH)
    assert first.created_at > 0 and first.revoked_at is None and first.active
    second = await db.create_key("fedcba9876543210", "", "admin", (), HASH)
    assert second.queues == ()  # every queue
    assert await db.list_keys() == [first, second]
    assert await db.list_keys(active_only=True) == [first, second]
    with pytest.raises(Conflict):
        await db.create_key(first.id, "again", "read", (), HASH)
    revoked = await db.revoke_key(first.id)
    assert revoked.revoked_at is not None and revoked.revoked_at >= first.created_at and not revoked.active
    assert await db.revoke_key(first.id) == revoked  # once: revoking again changes nothing
    assert await db.list_keys(active_only=True) == [second]
    assert await db.list_keys() == [revoked, second]
    with pytest.raises(NotFound):
        await db.revoke_key("no-such-key-0000")


def test_a_key_row_becomes_a_model_by_column_name() -> None:
    row = {"revoked_at": None, "created_at": 5, "secret_hash": HASH, "queues": "a,b*",
           "scope": "read", "name": "n", "id": "k"}
    assert ApiKey.from_row(row) == ApiKey("k", "n", "read", ("a", "b*"), HASH, 5, None)


OLD_QUEUE = (
    "INSERT INTO {s}queues (name, created_at, visibility_timeout, delay_seconds, retention_seconds,"
    " max_message_size, redrive_target, max_receive_count) VALUES ('kept', 1000, 7, 0, 60, 2048, NULL, 0)"
)


async def version_5_database(url: str) -> None:
    """A database of schema version 5 (before keys) holding one queue."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        for script in sqlite_schema.MIGRATIONS[:5]:
            for statement in script.split(";"):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 5")
        conn.execute(OLD_QUEUE.format(s=""))
        conn.close()
        return
    import asyncpg

    pg = await asyncpg.connect(url)
    try:
        await pg.execute("CREATE SCHEMA wonderq; CREATE TABLE wonderq.schema_version (version integer NOT NULL)")
        for number, script in enumerate(pg_schema.MIGRATIONS[:5], 1):
            await pg.execute(script)
            await pg.execute("INSERT INTO wonderq.schema_version VALUES ($1)", number)
        await pg.execute(OLD_QUEUE.format(s="wonderq."))
    finally:
        await pg.close()


async def test_a_version_5_database_upgrades(db_url: str) -> None:
    assert len(sqlite_schema.MIGRATIONS) == len(pg_schema.MIGRATIONS) >= 6
    await version_5_database(db_url)
    db = backend_for(Settings(db=db_url, retention_interval=3600))
    await db.open()
    try:
        assert [q.name for q in await db.list_queues()] == ["kept"]
        key = await db.create_key("0123456789abcdef", "", "read", (), HASH)
        assert await db.list_keys() == [key]
    finally:
        await db.close()
