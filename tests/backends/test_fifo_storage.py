"""FIFO queues (names ending in ``.fifo``) on every backend: a dedup id is
remembered for five minutes, and a group's messages go out in order, one
in-flight batch at a time."""

from __future__ import annotations

import asyncio
import sqlite3

from tests.backends.conftest import Advance
from tests.conftest import fresh_database
from wonderq.backends import backend_for, sqlite_path
from wonderq.backends.base import Backend
from wonderq.backends.rules import DEDUP_WINDOW
from wonderq.models import Message, NewMessage, QueueAttributes
from wonderq.settings import Settings


def fifo(body: str, group: str | None = "g", dedup: str | None = None, delay: int | None = None) -> NewMessage:
    return NewMessage(body, delay_seconds=delay, group_id=group, dedup_id=dedup or body)


async def bodies(db: Backend, queue: str) -> list[str]:
    return [m.body for m in await db.peek(queue, 100)]


async def counts(db: Backend, queue: str) -> tuple[int, int]:
    s = next(s for s in await db.stats() if s.queue.name == queue)
    return s.messages, s.sent


async def dedup_rows(url: str) -> int:
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(url)) as conn:
            return int(conn.execute("SELECT count(*) FROM dedups").fetchone()[0])
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM wonderq.dedups"))
    finally:
        await conn.close()


def same(a: Message, b: Message) -> bool:
    return (a.id, a.message_id) == (b.id, b.message_id)


# -- dedup --


async def test_a_duplicate_within_the_window_is_the_original(timed: tuple[Backend, Advance]) -> None:
    db, advance = timed
    await db.create_queue("q.fifo", QueueAttributes())
    first = await db.send("q.fifo", fifo("a", dedup="d1"))
    await advance(DEDUP_WINDOW - 1)
    again = await db.send("q.fifo", fifo("b", dedup="d1"))
    assert same(again, first)
    assert await bodies(db, "q.fifo") == ["a"]
    assert await counts(db, "q.fifo") == (1, 1)  # sent counts only what was stored
    await advance(2)  # past the window: a new message
    later = await db.send("q.fifo", fifo("c", dedup="d1"))
    assert later.id != first.id and later.message_id != first.message_id
    assert await bodies(db, "q.fifo") == ["a", "c"]
    assert same(await db.send("q.fifo", fifo("d", dedup="d1")), later)  # remembered afresh


async def test_a_deleted_message_is_still_remembered(db: Backend) -> None:
    await db.create_queue("q.fifo", QueueAttributes())
    sent = await db.send("q.fifo", fifo("a"))
    (m,) = (await db.claim("q.fifo", 1, 30)).messages
    await db.delete(m.id, m.token)
    assert same(await db.send("q.fifo", fifo("a")), sent)
    assert await bodies(db, "q.fifo") == []
    await db.purge("q.fifo")
    assert same(await db.send("q.fifo", fifo("a")), sent)


async def test_duplicates_within_one_batch(db: Backend) -> None:
    await db.create_queue("q.fifo", QueueAttributes())
    out = await db.send_batch("q.fifo", [fifo("a"), fifo("b"), fifo("a"), fifo("c", group=None), fifo("b")])
    assert same(out[2], out[0]) and same(out[4], out[1])
    assert len({m.id for m in out}) == 3 and [m.body for m in out[:2]] == ["a", "b"]
    assert await bodies(db, "q.fifo") == ["a", "b", "c"]
    assert await counts(db, "q.fifo") == (3, 3)
    mixed = await db.send_batch("q.fifo", [fifo("new"), fifo("a")])  # one new, one remembered
    assert same(mixed[1], out[0]) and await bodies(db, "q.fifo") == ["a", "b", "c", "new"]


async def test_dedup_scope_is_the_queue_or_the_group(db: Backend) -> None:
    await db.create_queue("queue.fifo", QueueAttributes())
    await db.create_queue("group.fifo", QueueAttributes(dedup_by_group=True))
    for name in ("queue.fifo", "group.fifo"):
        for group in ("g1", "g2", "g1"):
            await db.send(name, fifo(group, group=group, dedup="same"))
    assert await bodies(db, "queue.fifo") == ["g1"]
    assert await bodies(db, "group.fifo") == ["g1", "g2"]
    other = await db.create_queue("other.fifo", QueueAttributes())  # each queue its own ids
    assert (await db.send(other.id, fifo("x", dedup="same"))).queue_id == other.id


async def test_only_fifo_queues_and_dedup_ids_deduplicate(db: Backend) -> None:
    await db.create_queue("standard", QueueAttributes())
    await db.create_queue("q.fifo", QueueAttributes())
    for _ in range(2):
        await db.send("standard", fifo("x"))
        await db.send("q.fifo", NewMessage("no dedup id", group_id="g"))
    assert await bodies(db, "standard") == ["x", "x"]
    assert await bodies(db, "q.fifo") == ["no dedup id"] * 2


async def test_content_based_deduplication_is_the_backends_whichever_api_sends(db: Backend) -> None:
    """A message with no dedup id, sent to a FIFO queue with content-based deduplication (REST's
    sends carry none), takes its body's SHA-256, as SQS's sends did at the SQS edge alone."""
    import hashlib

    await db.create_queue("c.fifo", QueueAttributes(content_dedup=True))
    first = await db.send("c.fifo", NewMessage("same body"))
    again = await db.send_batch("c.fifo", [NewMessage("same body"), NewMessage("other")])
    assert same(again[0], first) and await bodies(db, "c.fifo") == ["same body", "other"]
    (m,) = (await db.claim("c.fifo", 1, 30)).messages
    assert m.dedup_id == hashlib.sha256(b"same body").hexdigest()
    given = await db.send("c.fifo", NewMessage("same body", dedup_id="mine"))  # a given id wins
    assert given.id != first.id


async def test_expiry_and_queue_deletion_forget_dedup_ids(timed: tuple[Backend, Advance], db_url: str) -> None:
    db, advance = timed
    await db.create_queue("q.fifo", QueueAttributes())
    await db.create_queue("gone.fifo", QueueAttributes())
    await db.send_batch("q.fifo", [fifo("a"), fifo("b")])
    await db.send("gone.fifo", fifo("a"))
    await db.delete_queue("gone.fifo")
    assert await dedup_rows(db_url) == 2
    await advance(DEDUP_WINDOW - 10)
    await db.send("q.fifo", fifo("c"))
    await advance(11)
    assert await db.expire() == 0  # counts messages only
    assert await dedup_rows(db_url) == 1  # c's is kept
    assert await bodies(db, "q.fifo") == ["a", "b", "c"]


# -- group order --


async def test_groups_go_out_in_order_one_in_flight_batch_at_a_time(db: Backend) -> None:
    await db.create_queue("q.fifo", QueueAttributes())
    await db.send_batch("q.fifo", [fifo("a1", "A"), fifo("b1", "B"), fifo("a2", "A"), fifo("b2", "B")])
    (a1,) = (await db.claim("q.fifo", 1, 30)).messages
    assert a1.body == "a1"
    rest = (await db.claim("q.fifo", 10, 30)).messages  # group A is blocked; B goes out whole, in order
    assert [m.body for m in rest] == ["b1", "b2"]
    assert (await db.claim("q.fifo", 10, 30)).messages == []
    await db.delete(a1.id, a1.token)
    assert [m.body for m in (await db.claim("q.fifo", 10, 30)).messages] == ["a2"]


async def test_one_claim_takes_several_of_a_group_in_order(db: Backend) -> None:
    await db.create_queue("q.fifo", QueueAttributes())
    await db.send_batch("q.fifo", [fifo(f"a{i}", "A") for i in range(3)] + [fifo("b0", "B")])
    assert [m.body for m in (await db.claim("q.fifo", 10, 30)).messages] == ["a0", "a1", "a2", "b0"]
    await db.send("q.fifo", fifo("a3", "A"))
    assert (await db.claim("q.fifo", 10, 30)).messages == []  # behind its group's in-flight messages


async def test_a_group_is_released_by_its_timeout_or_a_visibility_change(timed: tuple[Backend, Advance]) -> None:
    db, advance = timed
    await db.create_queue("q.fifo", QueueAttributes(visibility_timeout=30))
    await db.send_batch("q.fifo", [fifo("a1", "A"), fifo("a2", "A"), fifo("a3", "A")])
    assert [m.body for m in (await db.claim("q.fifo", 1, None)).messages] == ["a1"]
    assert (await db.claim("q.fifo", 10, None)).messages == []
    await advance(30)  # a1 is visible again, first in line
    again = (await db.claim("q.fifo", 2, None)).messages
    assert [(m.body, m.receive_count) for m in again] == [("a1", 2), ("a2", 1)]
    await db.change_visibility(again[1].id, again[1].token or "", 0)  # a2 released, a1 still out
    assert (await db.claim("q.fifo", 10, None)).messages == []
    await db.change_visibility(again[0].id, again[0].token or "", 0)
    assert [m.body for m in (await db.claim("q.fifo", 10, None)).messages] == ["a1", "a2", "a3"]


async def test_an_earlier_delayed_message_holds_its_group(timed: tuple[Backend, Advance]) -> None:
    db, advance = timed
    await db.create_queue("q.fifo", QueueAttributes())
    await db.send_batch("q.fifo", [fifo("a1", "A", delay=60), fifo("a2", "A"), fifo("b1", "B")])
    assert [m.body for m in (await db.claim("q.fifo", 10, 600)).messages] == ["b1"]
    await advance(60)
    assert [m.body for m in (await db.claim("q.fifo", 10, 30)).messages] == ["a1", "a2"]


async def test_no_group_is_one_group(db: Backend) -> None:
    await db.create_queue("q.fifo", QueueAttributes())
    await db.send_batch("q.fifo", [fifo("x", None), fifo("g", "g"), fifo("y", None)])
    got = (await db.claim("q.fifo", 1, 30)).messages
    assert [m.body for m in got] == ["x"]
    assert [m.body for m in (await db.claim("q.fifo", 10, 30)).messages] == ["g"]  # y waits for x
    await db.delete(got[0].id, got[0].token)
    assert [m.body for m in (await db.claim("q.fifo", 10, 30)).messages] == ["y"]


async def test_a_dead_lettered_head_unblocks_its_group(db: Backend) -> None:
    await db.create_queue("dlq.fifo", QueueAttributes())
    await db.create_queue("q.fifo", QueueAttributes(redrive_target="dlq.fifo", max_receive_count=1))
    await db.send_batch("q.fifo", [fifo("a1", "A"), fifo("a2", "A")])
    assert [m.body for m in (await db.claim("q.fifo", 1, 0)).messages] == ["a1"]
    (a2,) = (await db.claim("q.fifo", 1, 30)).messages  # a1 went to the dead letters in its place
    assert a2.body == "a2"
    assert [(m.body, m.origin) for m in await db.peek("dlq.fifo", 10)] == [("a1", "q.fifo")]


async def test_concurrent_claims_never_split_a_group(db: Backend) -> None:
    await db.create_queue("q.fifo", QueueAttributes())
    for g in range(6):
        await db.send_batch("q.fifo", [fifo(f"{g}-{i}", str(g)) for i in range(8)])
    claims = await asyncio.gather(*(db.claim("q.fifo", 3, 30) for _ in range(24)))
    owner: dict[str | None, int] = {}
    for n, c in enumerate(claims):
        for m in c.messages:
            assert owner.setdefault(m.group_id, n) == n, "a group went to two claims at once"
    for g, n in owner.items():
        assert [m.body for m in claims[n].messages if m.group_id == g] == [f"{g}-{i}" for i in range(3)]
    assert sum(len(c.messages) for c in claims) == 18


async def test_fifo_holds_across_postgres_brokers(postgres: str) -> None:
    url = fresh_database(postgres)
    brokers = [backend_for(Settings(db=url, retention_interval=3600)) for _ in range(3)]
    for b in brokers:
        await b.open()
    try:
        await brokers[0].create_queue("q.fifo", QueueAttributes())
        for n in range(10):  # the same dedup id from every broker at once: one stored, one answer
            sent = await asyncio.gather(*(b.send("q.fifo", fifo(f"m{n}", str(n % 3))) for b in brokers))
            assert len({(m.id, m.message_id) for m in sent}) == 1
        assert await bodies(brokers[0], "q.fifo") == [f"m{n}" for n in range(10)]
        assert await counts(brokers[1], "q.fifo") == (10, 10)
        claims = await asyncio.gather(*(b.claim("q.fifo", 2, 30) for b in brokers for _ in range(4)))
        owner: dict[str | None, int] = {}
        for n, c in enumerate(claims):
            for m in c.messages:
                assert owner.setdefault(m.group_id, n) == n, "a group went to two claims at once"
        assert sorted(owner) == ["0", "1", "2"]
    finally:
        for b in brokers:
            await b.close()
