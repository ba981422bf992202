"""The contract's per-queue stats verb and the queue cap, on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wonderq.backends import backend_for
from wonderq.backends.base import Backend
from wonderq.errors import OverLimit, QueueExists, QueueNotFound
from wonderq.models import NewMessage, QueueAttributes
from wonderq.settings import Settings


async def test_queue_stats_is_that_queues_row_of_stats(db: Backend) -> None:
    a = await db.create_queue("a", QueueAttributes(visibility_timeout=60))
    b = await db.create_queue("b", QueueAttributes())
    await db.send_batch("a", [NewMessage(f"m{i}") for i in range(6)])
    await db.send("a", NewMessage("later", delay_seconds=900))
    await db.send_batch("b", [NewMessage("x"), NewMessage("y")])
    claimed = (await db.claim("a", 3, None)).messages
    await db.delete(claimed[0].id, claimed[0].token)
    await db.claim("b", 1, None)
    every = {s.queue.id: s for s in await db.stats()}
    for queue in (a, b):
        assert await db.queue_stats(queue.id) == every[queue.id]
        assert await db.queue_stats(queue.name) == every[queue.id]
    one = await db.queue_stats("a")
    assert (one.messages, one.visible, one.in_flight, one.delayed) == (6, 3, 2, 1)
    assert (one.sent, one.received, one.deleted) == (7, 3, 1)


async def test_queue_stats_of_an_empty_queue_and_of_none(db: Backend) -> None:
    q = await db.create_queue("empty", QueueAttributes())
    s = await db.queue_stats(q.id)
    assert (s.messages, s.visible, s.in_flight, s.delayed, s.oldest_created_at, s.sent) == (0, 0, 0, 0, None, 0)
    with pytest.raises(QueueNotFound):
        await db.queue_stats("nope")
    with pytest.raises(QueueNotFound):
        await db.queue_stats(q.id + 1000)
    await db.delete_queue(q.id)
    with pytest.raises(QueueNotFound):
        await db.queue_stats(q.id)


async def test_queue_stats_sees_attribute_changes_at_once(db: Backend) -> None:
    q = await db.create_queue("q", QueueAttributes(visibility_timeout=5))
    await db.queue_stats("q")
    await db.set_attributes(q.id, QueueAttributes(visibility_timeout=77))
    assert (await db.queue_stats("q")).queue.attributes.visibility_timeout == 77


@pytest.fixture
async def capped(db_url: str) -> AsyncIterator[Backend]:
    backend = backend_for(Settings(db=db_url, retention_interval=3600, max_queues=3))
    await backend.open()
    yield backend
    await backend.close()


async def test_the_queue_cap(capped: Backend) -> None:
    for name in ("a", "b", "c"):
        await capped.create_queue(name, QueueAttributes())
    with pytest.raises(OverLimit) as refused:
        await capped.create_queue("d", QueueAttributes())
    assert "3 queues" in refused.value.message and "--max-queues" in refused.value.message
    with pytest.raises(QueueExists):  # a name taken is still told so (SQS answers a repeated create)
        await capped.create_queue("a", QueueAttributes())
    await capped.delete_queue("b")
    await capped.create_queue("d", QueueAttributes())
    assert [q.name for q in await capped.list_queues()] == ["a", "c", "d"]


async def test_concurrent_creates_do_not_pass_the_cap_together(db_url: str) -> None:
    """Two brokers on one database, twelve creates at once: exactly three are made."""
    brokers = [backend_for(Settings(db=db_url, retention_interval=3600, max_queues=3)) for _ in range(2)]
    for broker in brokers:
        await broker.open()
    try:
        outcomes = await asyncio.gather(
            *(brokers[i % 2].create_queue(f"q{i}", QueueAttributes()) for i in range(12)), return_exceptions=True
        )
    finally:
        for broker in brokers:
            await broker.close()
    refused = [o for o in outcomes if isinstance(o, OverLimit)]
    assert len(refused) == 9 and len(outcomes) - len(refused) == 3, outcomes
