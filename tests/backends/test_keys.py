"""API key storage, on every backend: keys are created, listed and revoked; a v5
database (before keys) upgrades with its queues kept."""

from __future__ import annotations

import pytest

from tests.backends.conftest import OLD_QUEUE, database_at_version
from wonderq.backends import backend_for
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


async def test_a_version_5_database_upgrades(db_url: str) -> None:
    assert len(sqlite_schema.MIGRATIONS) == len(pg_schema.MIGRATIONS) >= 6
    await database_at_version(db_url, 5, OLD_QUEUE.replace("{name}", "kept"))  # before keys
    db = backend_for(Settings(db=db_url, retention_interval=3600))
    await db.open()
    try:
        assert [q.name for q in await db.list_queues()] == ["kept"]
        key = await db.create_key("0123456789abcdef", "", "read", (), HASH)
        assert await db.list_keys() == [key]
    finally:
        await db.close()
