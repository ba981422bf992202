"""The storage contract's parts for the SQS API, on every backend: the new queue
settings and tags, attribute changes, dead-letter origins, moving messages back,
FIFO dedup and group order, and the schema upgrade that brings them."""

from __future__ import annotations

import asyncio

import pytest

from tests.backends.conftest import OLD_QUEUE, Advance, database_at_version
from tests.conftest import fresh_database
from wonderq.backends import backend_for
from wonderq.backends.base import Backend
from wonderq.errors import InvalidParameter, PayloadTooLarge, QueueNotFound
from wonderq.models import NewMessage, QueueAttributes
from wonderq.settings import Settings

SQS_SETTINGS = QueueAttributes(
    visibility_timeout=45, receive_wait_seconds=20, content_dedup=True, dedup_by_group=True,
    extras='{"Policy":"{}","KmsMasterKeyId":"alias/x"}',
)


async def test_new_queue_settings_are_stored(db: Backend) -> None:
    q = await db.create_queue("q.fifo", SQS_SETTINGS)
    assert q.attributes == SQS_SETTINGS and q.fifo
    assert q.modified_at == q.created_at and q.tags == {}
    assert await db.get_queue("q.fifo") == q == (await db.list_queues())[0]
    assert (await db.stats())[0].queue == q
    assert not (await db.create_queue("plain", QueueAttributes())).fifo


async def test_set_attributes_takes_effect_at_once(timed: tuple[Backend, Advance]) -> None:
    db, advance = timed
    q = await db.create_queue("q", QueueAttributes(visibility_timeout=30, max_message_size=1024))
    await db.send("q", NewMessage("before"))
    await advance(10)
    changed = QueueAttributes(visibility_timeout=5, delay_seconds=60, max_message_size=4096, receive_wait_seconds=3)
    after = await db.set_attributes(q.id, changed)
    assert after.attributes == changed and after.name == q.name
    assert after.modified_at - after.created_at >= 10_000
    assert await db.get_queue("q") == after
    (m,) = (await db.claim("q", 10, None)).messages
    assert m.visible_at - (m.first_received_at or 0) == 5_000  # the new visibility timeout
    await db.send("q", NewMessage("é" * 2000))  # 4000 bytes: over the old limit, within the new
    assert (await db.claim("q", 10, None)).messages == []  # the new default delay
    with pytest.raises(PayloadTooLarge):
        await db.send("q", NewMessage("x" * 4097))


async def test_set_attributes_checks_the_queue_and_target(db: Backend) -> None:
    q = await db.create_queue("q", QueueAttributes())
    with pytest.raises(QueueNotFound):
        await db.set_attributes("nope", QueueAttributes())
    with pytest.raises(InvalidParameter):
        await db.set_attributes("q", QueueAttributes(redrive_target="nope", max_receive_count=3))
    assert await db.get_queue("q") == q
    await db.create_queue("dlq", QueueAttributes())
    after = await db.set_attributes("q", QueueAttributes(redrive_target="dlq", max_receive_count=1))
    await db.send("q", NewMessage("poison"))
    await db.claim("q", 1, 0)
    assert (await db.claim("q", 1, 0)).messages == []  # redriven under the new policy
    assert [m.body for m in await db.peek("dlq", 10)] == ["poison"]
    assert after.attributes.redrive_target == "dlq"


async def test_tags_round_trip(timed: tuple[Backend, Advance]) -> None:
    db, advance = timed
    q = await db.create_queue("q", QueueAttributes())
    await advance(5)
    tagged = await db.set_tags("q", {"team": "payments", "env": "prod", "ünïcode": "✓"})
    assert tagged.tags == {"team": "payments", "env": "prod", "ünïcode": "✓"}
    assert tagged.modified_at == tagged.created_at  # tags are no attribute change
    assert (await db.get_queue(q.id)).tags == tagged.tags
    assert (await db.list_queues())[0].tags == tagged.tags
    assert (await db.set_tags(q.id, {"env": "dev"})).tags == {"env": "dev"}  # replaced, not merged
    assert (await db.set_tags("q", {})).tags == {}
    assert (await db.get_queue("q")).tags == {}
    with pytest.raises(QueueNotFound):
        await db.set_tags("nope", {"a": "b"})


async def test_system_attributes_are_kept(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    trace = '{"AWSTraceHeader":{"DataType":"String","StringValue":"Root=1-5759e988"}}'
    (sent,) = await db.send_batch("q", [NewMessage("x", system_attributes=trace)])
    assert sent.system_attributes == trace and sent.origin is None
    assert (await db.peek("q", 1))[0].system_attributes == trace
    assert (await db.claim("q", 1, 30)).messages[0].system_attributes == trace


async def test_redrive_records_the_origin(db: Backend) -> None:
    await db.create_queue("dlq", QueueAttributes())
    await db.create_queue("source", QueueAttributes(redrive_target="dlq", max_receive_count=2))
    await db.send("source", NewMessage("poison"))
    for _ in range(2):
        await db.claim("source", 1, 0)
    assert (await db.claim("source", 1, 0)).messages == []
    (dead,) = await db.peek("dlq", 10)
    # the receive count is kept, with the receive that found it over the limit
    assert (dead.origin, dead.receive_count, dead.token) == ("source", 3, None)
    (claimed,) = (await db.claim("dlq", 1, 30)).messages  # visible at once
    assert claimed.origin == "source" and claimed.receive_count == 4


OLD_MESSAGE = (
    "INSERT INTO {s}messages (id, uuid, queue_id, body, created_at, visible_at)"
    " VALUES (5, '00000000-0000-4000-8000-000000000005', 1, 'kept', 1000, 1000)"
)


async def test_upgrade_keeps_old_queues_and_messages(db_url: str) -> None:
    ids = ("UPDATE {s}sequence SET next_id = 6",) if db_url.startswith("sqlite") else ()  # SQLite's id row
    await database_at_version(db_url, 3, OLD_QUEUE.replace("{name}", "old"), OLD_MESSAGE, *ids)  # before SQS
    db = backend_for(Settings(db=db_url, retention_interval=3600))
    await db.open()
    try:
        (q,) = await db.list_queues()
        assert (q.name, q.created_at, q.modified_at, q.tags) == ("old", 1000, 1000, {})
        assert q.attributes == QueueAttributes(visibility_timeout=7, retention_seconds=60, max_message_size=2048)
        (m,) = await db.peek("old", 10)
        assert (m.id, m.body, m.system_attributes, m.origin) == (5, "kept", None, None)
        await db.set_attributes("old", QueueAttributes(visibility_timeout=9))
        assert (await db.claim("old", 1, None)).messages[0].id == 5
        assert (await db.send("old", NewMessage("new"))).body == "new"
    finally:
        await db.close()


async def test_move_messages_back_to_their_origins(db: Backend) -> None:
    await db.create_queue("dlq", QueueAttributes())
    for name in ("a", "b"):
        await db.create_queue(name, QueueAttributes(redrive_target="dlq", max_receive_count=1))
    for queue, body in (("a", "a1"), ("a", "a2"), ("b", "b1"), ("dlq", "plain")):
        await db.send(queue, NewMessage(body))
    for name in ("a", "b"):
        await db.claim(name, 10, 0)
        assert (await db.claim(name, 10, 0)).messages == []  # all dead-lettered
    await db.delete_queue("b")
    assert await db.move_messages("dlq", None, 10) == 2  # b1's origin is gone; plain has none
    moved = await db.peek("a", 10)
    assert [m.body for m in moved] == ["a1", "a2"]
    assert all((m.receive_count, m.token, m.origin, m.first_received_at) == (0, None, None, None) for m in moved)
    assert [(m.body, m.origin) for m in await db.peek("dlq", 10)] == [("b1", "b"), ("plain", None)]
    assert {s.queue.name: (s.messages, s.visible) for s in await db.stats()} == {"dlq": (2, 2), "a": (2, 2)}
    assert [m.body for m in (await db.claim("a", 10, 30)).messages] == ["a1", "a2"]  # visible at once


async def test_move_messages_to_a_destination(db: Backend) -> None:
    await db.create_queue("from", QueueAttributes())
    to = await db.create_queue("to", QueueAttributes())
    await db.send_batch("from", [NewMessage(str(i)) for i in range(4)])
    held = (await db.claim("from", 1, 30)).messages[0]  # "0": in flight, not moved
    assert await db.move_messages("from", to.id, 2) == 2  # the oldest visible first
    assert [m.body for m in await db.peek("to", 10)] == ["1", "2"]
    assert [m.body for m in await db.peek("from", 10)] == ["0", "3"]
    await db.delete(held.id, held.token)
    assert await db.move_messages("from", "to", 10) == 1
    assert await db.move_messages("from", "to", 10) == 0
    assert {s.queue.name: s.messages for s in await db.stats()} == {"from": 0, "to": 3}
    with pytest.raises(QueueNotFound):
        await db.move_messages("nope", "to", 1)
    with pytest.raises(QueueNotFound):
        await db.move_messages("to", "nope", 1)


async def test_move_messages_wakes_consumers_of_the_destination(db: Backend) -> None:
    await db.create_queue("from", QueueAttributes())
    await db.create_queue("to", QueueAttributes())
    await db.send("from", NewMessage("x"))
    waiting = asyncio.create_task(db.receive("to", 1, 30, 5))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await db.move_messages("from", "to", 1) == 1
    assert [m.body for m in await asyncio.wait_for(waiting, 2)] == ["x"]
    assert loop.time() - start < 0.5


async def test_attribute_changes_reach_every_postgres_broker(postgres: str) -> None:
    url = fresh_database(postgres)
    a, b = (backend_for(Settings(db=url, retention_interval=3600)) for _ in range(2))
    await a.open()
    await b.open()
    try:
        q = await a.create_queue("q", QueueAttributes(visibility_timeout=30, max_message_size=1024))
        await b.send("q", NewMessage("first"))  # b now holds the queue in its cache, by name and id
        await a.set_attributes("q", QueueAttributes(visibility_timeout=5, max_message_size=1024))
        (m,) = (await b.claim(q.id, 1, None)).messages  # the claim's check
        assert m.visible_at - (m.first_received_at or 0) == 5_000
        await a.set_attributes("q", QueueAttributes(visibility_timeout=5, max_message_size=4096))
        await b.send("q", NewMessage("é" * 2000))  # the size check, against the new limit
        await a.set_attributes("q", QueueAttributes(delay_seconds=600))
        await b.send(q.id, NewMessage("later"))  # the insert's check
        assert [x.body for x in await b.peek("q", 10)] == ["first", "é" * 2000, "later"]
        assert (await b.claim("q", 10, None)).messages[0].body == "é" * 2000  # "later" is delayed
        await a.delete_queue("q")
        again = await a.create_queue("q", QueueAttributes())
        assert (await b.send("q", NewMessage("new"))).queue_id == again.id
        with pytest.raises(QueueNotFound):
            await b.claim(q.id, 1, None)
    finally:
        await a.close()
        await b.close()
