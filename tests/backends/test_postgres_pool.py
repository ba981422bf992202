"""PostgreSQL: a pooled connection goes back to the pool without a round trip.

asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``
every time a connection is released: one more round trip for every batch of writes, and
work for the database (RESET ALL walks every setting). Nothing the backend does lasts past a
transaction, so it resets nothing (``backend.keep_session``)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import fresh_database
from wonderq.backends import backend_for
from wonderq.models import NewMessage, QueueAttributes
from wonderq.settings import Settings


async def test_a_batch_releases_its_connection_without_the_reset_query(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def reset_query(conn: asyncpg.Connection) -> str:
        asked.append("reset")
        return ""

    monkeypatch.setattr(asyncpg.Connection, "get_reset_query", reset_query)
    backend = backend_for(Settings(db=fresh_database(postgres), retention_interval=3600))
    await backend.open()
    try:
        queue = await backend.create_queue("pooled", QueueAttributes())
        await backend.send(queue.id, NewMessage("hello"))
        (message,) = await backend.receive(queue.id, 10, 30, 0)
        assert message.body == "hello"
        await backend.delete(message.id, message.token)
    finally:
        await backend.close()
    assert asked == []
