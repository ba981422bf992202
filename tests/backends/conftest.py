"""Fixtures of the conformance suite: a fresh backend of each kind, and one
whose time a test moves by hand."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from wonderq.backends import backend_for, sqlite_path
from wonderq.backends.base import Backend
from wonderq.backends.postgres import schema as pg_schema
from wonderq.backends.sqlite import schema as sqlite_schema
from wonderq.clock import ManualClock
from wonderq.settings import Settings

Advance = Callable[[float], Awaitable[None]]
OLD_QUEUE = (  # a queue as the first schema had it, for the upgrade tests
    "INSERT INTO {s}queues (name, created_at, visibility_timeout, delay_seconds, retention_seconds,"
    " max_message_size, redrive_target, max_receive_count) VALUES ('{name}', 1000, 7, 0, 60, 2048, NULL, 0)"
)


async def database_at_version(url: str, version: int, *statements: str) -> None:
    """A database made by the first ``version`` migrations only, then ``statements``
    (``{s}`` in them: the schema's prefix), for the upgrade tests."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        for script in sqlite_schema.MIGRATIONS[:version]:
            for statement in script.split(";"):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
        for statement in statements:
            conn.execute(statement.format(s=""))
        conn.close()
        return
    import asyncpg

    pg = await asyncpg.connect(url)
    try:
        await pg.execute("CREATE SCHEMA wonderq; CREATE TABLE wonderq.schema_version (version integer NOT NULL)")
        for number, script in enumerate(pg_schema.MIGRATIONS[:version], 1):
            await pg.execute(script)
            await pg.execute("INSERT INTO wonderq.schema_version VALUES ($1)", number)
        for statement in statements:
            await pg.execute(statement.format(s="wonderq."))
    finally:
        await pg.close()

# PostgreSQL takes message times from its own clock, which a test cannot move: everything
# stored is moved back in time instead, which is the same to every statement.
SHIFT_BACK = (
    "UPDATE wonderq.messages SET created_at = created_at - $1, visible_at = visible_at - $1,"
    " first_received_at = first_received_at - $1",
    "UPDATE wonderq.queues SET created_at = created_at - $1, modified_at = modified_at - $1",
    "UPDATE wonderq.dedups SET expires_at = expires_at - $1",
)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Backend]:
    backend = backend_for(Settings(db=db_url, retention_interval=3600))
    await backend.open()
    yield backend
    await backend.close()


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[Backend, ManualClock]]:
    """SQLite with a hand-moved clock (its message times come from the broker's clock)."""
    url = f"sqlite:///{tmp_path / 'clocked.db'}"
    clock = ManualClock()
    backend = backend_for(Settings(db=url, retention_interval=3600), clock)
    await backend.open()
    yield backend, clock
    await backend.close()


@pytest.fixture
async def timed(db_url: str) -> AsyncIterator[tuple[Backend, Advance]]:
    """Each backend, with ``await advance(seconds)`` moving its time on."""
    clock = ManualClock()
    backend = backend_for(Settings(db=db_url, retention_interval=3600), clock)
    await backend.open()

    async def advance(seconds: float) -> None:
        if db_url.startswith("sqlite"):
            clock.advance(seconds)
            return
        import asyncpg

        conn = await asyncpg.connect(db_url)
        try:
            for statement in SHIFT_BACK:
                await conn.execute(statement, round(seconds * 1000))
        finally:
            await conn.close()

    yield backend, advance
    await backend.close()
