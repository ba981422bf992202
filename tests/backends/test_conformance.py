"""The storage contract's conformance suite: runs unchanged on every backend."""

from __future__ import annotations

import asyncio

import pytest

from wonderq.backends import backend_for
from wonderq.backends.base import Backend
from wonderq.clock import ManualClock
from wonderq.errors import InvalidParameter, MessageNotFound, PayloadTooLarge, QueueExists, QueueNotFound, StaleToken
from wonderq.models import NewMessage, QueueAttributes
from wonderq.settings import Settings


async def test_queue_life_cycle(db: Backend) -> None:
    q = await db.create_queue("orders", QueueAttributes(visibility_timeout=5))
    assert q.name == "orders" and q.attributes.visibility_timeout == 5
    assert await db.get_queue("orders") == q
    assert await db.get_queue(q.id) == q
    with pytest.raises(QueueExists):
        await db.create_queue("orders", QueueAttributes())
    other = await db.create_queue("other", QueueAttributes())
    assert [x.name for x in await db.list_queues()] == ["orders", "other"]
    await db.send(q.id, NewMessage("x"))
    await db.delete_queue("orders")
    with pytest.raises(QueueNotFound):
        await db.get_queue(q.id)
    assert [s.queue.id for s in await db.stats()] == [other.id]
    with pytest.raises(QueueNotFound):
        await db.delete_queue("orders")


async def test_send_claim_delete(db: Backend) -> None:
    q = await db.create_queue("q", QueueAttributes())
    sent = await db.send_batch("q", [NewMessage(f"m{i}") for i in range(5)])
    assert [m.body for m in sent] == [f"m{i}" for i in range(5)]
    assert sorted(m.id for m in sent) == [m.id for m in sent]
    assert len({m.message_id for m in sent}) == 5
    claim = await db.claim(q.id, 3, 30)
    assert [m.body for m in claim.messages] == ["m0", "m1", "m2"]
    assert all(m.receive_count == 1 and m.token and m.first_received_at for m in claim.messages)
    assert len({m.token for m in claim.messages}) == 3
    rest = await db.claim("q", 10, 30)
    assert [m.body for m in rest.messages] == ["m3", "m4"]
    empty = await db.claim("q", 10, 30)
    assert empty.messages == [] and empty.next_visible_at is not None
    for m in claim.messages + rest.messages:
        await db.delete(m.id, m.token)
    assert (await db.claim("q", 10, 30)).next_visible_at is None
    with pytest.raises(MessageNotFound):
        await db.delete(sent[0].id)


async def test_visibility_timeout_expiry_redelivers(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    await db.send("q", NewMessage("once"))
    first = (await db.claim("q", 1, 0)).messages[0]
    second = (await db.claim("q", 1, 30)).messages[0]
    assert second.id == first.id and second.receive_count == 2
    assert second.first_received_at == first.first_received_at
    with pytest.raises(StaleToken):
        await db.delete(first.id, first.token)
    await db.delete(second.id, second.token)


async def test_change_visibility(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    await db.send("q", NewMessage("x"))
    m = (await db.claim("q", 1, 30)).messages[0]
    assert (await db.claim("q", 1, 30)).messages == []
    with pytest.raises(StaleToken):
        await db.change_visibility(m.id, "not-the-token", 0)
    with pytest.raises(MessageNotFound):
        await db.change_visibility(m.id + 100, "x", 0)
    released = await db.change_visibility(m.id, m.token or "", 0)
    assert released.visible_at <= (await db.claim("q", 1, 30)).messages[0].visible_at


async def test_delay_and_queue_default_delay(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes(delay_seconds=60))
    await db.send("q", NewMessage("default delay"))
    await db.send("q", NewMessage("no delay", delay_seconds=0))
    claim = await db.claim("q", 10, 30)
    assert [m.body for m in claim.messages] == ["no delay"]
    stats = (await db.stats())[0]
    assert (stats.messages, stats.visible, stats.in_flight, stats.delayed) == (2, 0, 1, 1)


async def test_max_message_size_counts_utf8_bytes(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes(max_message_size=1024))
    await db.send("q", NewMessage("é" * 512))  # 1024 bytes
    with pytest.raises(PayloadTooLarge):
        await db.send_batch("q", [NewMessage("ok"), NewMessage("é" * 513)])
    assert (await db.stats())[0].messages == 1  # the batch was all or nothing


async def test_unknown_queue_everywhere(db: Backend) -> None:
    for call in (
        db.get_queue("nope"), db.purge("nope"), db.send("nope", NewMessage("x")),
        db.claim("nope", 1, 1), db.peek("nope", 1), db.delete_queue(99),
    ):
        with pytest.raises(QueueNotFound):
            await call


async def test_peek_pages_without_consuming(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    await db.send_batch("q", [NewMessage(str(i)) for i in range(7)])
    page = await db.peek("q", 5)
    assert [m.body for m in page] == ["0", "1", "2", "3", "4"]
    assert [m.body for m in await db.peek("q", 5, page[-1].id)] == ["5", "6"]
    assert len((await db.claim("q", 10, 30)).messages) == 7


async def test_a_peek_stops_once_its_bodies_pass_the_byte_budget(db: Backend) -> None:
    """A thousand 1 MiB messages in one answer held a gigabyte: a page ends once its bodies pass
    PEEK_BYTES, counted in UTF-8 bytes; the next page picks up after it."""
    from wonderq.backends import rules

    await db.create_queue("q", QueueAttributes())
    mib = "é" * (512 * 1024)  # 1 MiB in UTF-8, 512 Ki characters
    for _ in range(2):
        await db.send_batch("q", [NewMessage(mib)] * 5)
    fit = rules.PEEK_BYTES // (1024 * 1024)  # the last one starts under the budget
    page = await db.peek("q", 20)
    assert len(page) == fit
    rest = await db.peek("q", 20, page[-1].id)
    assert len(rest) == 10 - fit and rest[0].id > page[-1].id


async def test_purge(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    await db.send_batch("q", [NewMessage("x")] * 3)
    assert await db.purge("q") == 3
    assert (await db.stats())[0].messages == 0


async def test_redrive_to_dead_letter_queue(db: Backend) -> None:
    dlq = await db.create_queue("dlq", QueueAttributes())
    await db.create_queue("q", QueueAttributes(redrive_target="dlq", max_receive_count=2))
    await db.send("q", NewMessage("poison"))
    for _ in range(2):
        assert len((await db.claim("q", 1, 0)).messages) == 1
    assert (await db.claim("q", 1, 0)).messages == []
    moved = (await db.claim(dlq.id, 1, 30)).messages
    assert [m.body for m in moved] == ["poison"]


async def test_retention_expires_old_messages(db: Backend) -> None:
    await db.create_queue("short", QueueAttributes(retention_seconds=0))
    await db.create_queue("long", QueueAttributes())
    await db.send("short", NewMessage("old"))
    await db.send("long", NewMessage("kept"))
    await asyncio.sleep(0.01)
    assert await db.expire() == 1
    assert {s.queue.name: s.messages for s in await db.stats()} == {"short": 0, "long": 1}


async def test_concurrent_claims_never_share_a_message(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    for _ in range(50):
        await db.send_batch("q", [NewMessage("x")] * 10)
    claims = await asyncio.gather(*(db.claim("q", 10, 30) for _ in range(64)))
    ids = [m.id for c in claims for m in c.messages]
    assert len(ids) == 500 and len(set(ids)) == 500


async def test_no_claim_can_make_another_claims_tokens(db: Backend) -> None:
    """A token is the message's id and random bits; claims served together (PostgreSQL joins
    a batch's claims on a queue into one statement) must not share those bits, or a consumer
    holding one message could make the token of a message another consumer holds."""
    await db.create_queue("q", QueueAttributes())
    await db.send_batch("q", [NewMessage("x")] * 50)
    claims = await asyncio.gather(*(db.claim("q", 1, 30) for _ in range(50)))
    tokens = {m.id: m.token or "" for c in claims for m in c.messages}
    assert len(tokens) == 50 and all(t.endswith(f"-{i}") for i, t in tokens.items())
    assert len({t.rsplit("-", 1)[0] for t in tokens.values()}) == 50


async def test_receive_waits_for_a_send(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    waiting = asyncio.create_task(db.receive("q", 1, 30, 5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await db.send("q", NewMessage("wake"))
    messages = await asyncio.wait_for(waiting, 2)
    assert [m.body for m in messages] == ["wake"]
    assert loop.time() - start < 0.1


async def test_receive_wakes_when_a_delay_expires(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    await db.send("q", NewMessage("later", delay_seconds=1))
    loop = asyncio.get_running_loop()
    start = loop.time()
    messages = await db.receive("q", 1, 30, 5)
    assert [m.body for m in messages] == ["later"]
    assert 0.9 < loop.time() - start < 1.2


async def test_receive_returns_empty_at_deadline_and_when_gone(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    assert await db.receive("q", 1, 30, 0) == []
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()
    waiting = asyncio.create_task(db.receive("q", 1, 30, 10, gone))
    await asyncio.sleep(0.05)
    gone.set_result(None)
    assert await asyncio.wait_for(waiting, 1) == []
    await db.send("q", NewMessage("nobody took me"))
    assert len((await db.claim("q", 1, 30)).messages) == 1


async def test_retention_sweeps_in_the_background(db_url: str) -> None:
    backend = backend_for(Settings(db=db_url, retention_interval=0.05))
    await backend.open()
    try:
        await backend.create_queue("q", QueueAttributes(retention_seconds=0))
        await backend.send("q", NewMessage("old"))
        for _ in range(40):
            await asyncio.sleep(0.05)
            if (await backend.stats())[0].messages == 0:
                break
        assert (await backend.stats())[0].messages == 0
    finally:
        await backend.close()


async def test_counts_follow_every_change(db: Backend) -> None:
    async def counts(name: str) -> tuple[int, ...]:
        s = next(s for s in await db.stats() if s.queue.name == name)
        return (s.messages, s.visible, s.in_flight, s.delayed, s.sent, s.received, s.deleted, s.expired)

    await db.create_queue("dlq", QueueAttributes())
    await db.create_queue("q", QueueAttributes(redrive_target="dlq", max_receive_count=1))
    sent = await db.send_batch("q", [NewMessage(str(i)) for i in range(5)])
    await db.send("q", NewMessage("later", delay_seconds=60))
    assert await counts("q") == (6, 5, 0, 1, 6, 0, 0, 0)
    held = (await db.claim("q", 2, 30)).messages
    await db.delete(held[0].id, held[0].token)
    assert await counts("q") == (5, 3, 1, 1, 6, 2, 1, 0)
    await db.change_visibility(held[1].id, held[1].token or "", 0)
    assert (await db.claim("q", 1, 30)).messages[0].id == sent[2].id  # oldest visible first
    await db.claim("q", 10, 0)  # the released one goes over max_receive_count: to the dead letters
    assert (await counts("dlq"))[0] == 1
    assert await db.purge("q") == 4
    assert await counts("q") == (0, 0, 0, 0, 6, 5, 1, 0)  # the one moved was not received


# -- time under a hand-moved clock (SQLite: message times come from the broker's clock;
#    PostgreSQL takes them from the database's, which a test cannot move) --


async def test_visibility_timeout_runs_on_the_clock(clocked: tuple[Backend, ManualClock]) -> None:
    db, clock = clocked
    await db.create_queue("q", QueueAttributes(visibility_timeout=30))
    await db.send("q", NewMessage("m"))
    first = (await db.claim("q", 1, None)).messages[0]
    assert first.visible_at == clock.now_ms() + 30_000
    clock.advance(29.999)
    assert (await db.claim("q", 1, None)).messages == []
    clock.advance(0.001)
    again = (await db.claim("q", 1, None)).messages
    assert [m.id for m in again] == [first.id] and again[0].receive_count == 2


async def test_delay_runs_on_the_clock(clocked: tuple[Backend, ManualClock]) -> None:
    db, clock = clocked
    await db.create_queue("q", QueueAttributes(delay_seconds=900))
    await db.send("q", NewMessage("later"))
    claim = await db.claim("q", 1, None)
    assert claim.messages == [] and claim.next_visible_at == clock.now_ms() + 900_000
    (stats,) = await db.stats()
    assert (stats.visible, stats.delayed) == (0, 1)
    clock.advance(900)
    (stats,) = await db.stats()
    assert (stats.visible, stats.delayed) == (1, 0)
    assert [m.body for m in (await db.claim("q", 1, None)).messages] == ["later"]


async def test_retention_runs_on_the_clock(clocked: tuple[Backend, ManualClock]) -> None:
    db, clock = clocked
    await db.create_queue("q", QueueAttributes(retention_seconds=60))
    await db.send("q", NewMessage("old"))
    clock.advance(30)
    await db.send("q", NewMessage("young"))
    clock.advance(30)
    assert await db.expire() == 0  # exactly 60 s old is still kept
    clock.advance(0.001)
    assert await db.expire() == 1
    assert [m.body for m in await db.peek("q", 10)] == ["young"]
    clock.advance(30)
    assert await db.expire() == 1
    (stats,) = await db.stats()
    assert (stats.messages, stats.expired) == (0, 2)


async def test_a_second_backend_on_the_database_sees_queue_changes_at_once(db: Backend, db_url: str) -> None:
    """Each backend keeps the queues its writes use (SQLite's writer, PostgreSQL's queue
    cache); another process's change to one must count from its next write on."""
    other = backend_for(Settings(db=db_url, retention_interval=3600))
    await other.open()
    try:
        q = await db.create_queue("shared", QueueAttributes())
        await db.send("shared", NewMessage("x" * 2000))  # the queue is now cached
        await other.set_attributes("shared", QueueAttributes(max_message_size=1024))
        with pytest.raises(PayloadTooLarge):
            await db.send("shared", NewMessage("x" * 2000))
        await other.delete_queue("shared")
        with pytest.raises(QueueNotFound):
            await db.send("shared", NewMessage("x"))
        again = await other.create_queue("shared", QueueAttributes())
        assert again.id != q.id and (await db.send("shared", NewMessage("y"))).queue_id == again.id
        await db.set_attributes("shared", QueueAttributes(max_message_size=1024))  # and its own changes
        with pytest.raises(PayloadTooLarge):
            await db.send("shared", NewMessage("x" * 2000))
    finally:
        await other.close()


async def test_delete_batch_answers_each_entry_in_order(db: Backend) -> None:
    await db.create_queue("q", QueueAttributes())
    await db.send_batch("q", [NewMessage(f"m{i}") for i in range(4)])
    a, b, c, d = (await db.claim("q", 4, 30)).messages
    outcomes = await db.delete_batch([(a.id, a.token), (b.id, "stale"), (d.id + 100, None), (c.id, None)])
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], StaleToken) and isinstance(outcomes[2], MessageNotFound)
    assert [m.id for m in await db.peek("q", 10)] == [b.id, d.id]  # the refused entries kept nothing else
    assert [s.messages for s in await db.stats()] == [2]
    again = await db.delete_batch([(b.id, b.token), (b.id, b.token)])  # the second finds it gone
    assert again[0] is None and isinstance(again[1], MessageNotFound)
    # as if one at a time, in order: a stale token before the current one, or after it
    stale_first = await db.delete_batch([(d.id, "stale"), (d.id, d.token)])
    assert isinstance(stale_first[0], StaleToken) and stale_first[1] is None
    await db.send("q", NewMessage("e"))
    (e,) = (await db.claim("q", 1, 30)).messages
    stale_after = await db.delete_batch([(e.id, e.token), (e.id, "stale")])
    assert stale_after[0] is None and isinstance(stale_after[1], MessageNotFound)
    assert [s.messages for s in await db.stats()] == [0]


async def test_queues_of_names_each_message_s_queue_now(db: Backend) -> None:
    await db.create_queue("a", QueueAttributes())
    await db.create_queue("dlq", QueueAttributes())
    await db.create_queue("b", QueueAttributes(redrive_target="dlq", max_receive_count=1))
    x, y = await db.send_batch("a", [NewMessage("x"), NewMessage("y")])
    z = await db.send("b", NewMessage("z"))
    assert await db.queues_of([x.id, z.id, x.id, z.id + 100]) == {x.id: "a", z.id: "b"}  # a missing one left out
    assert await db.queues_of([]) == {}
    await db.claim("b", 1, 0)
    await db.claim("b", 1, 30)  # received twice: dead-lettered
    assert await db.queues_of([z.id, y.id]) == {z.id: "dlq", y.id: "a"}
    await db.delete(y.id)
    assert await db.queues_of([y.id]) == {}


async def test_a_queue_named_keeps_deletes_and_visibility_changes_to_its_own_messages(db: Backend) -> None:
    """With ``queue`` a message of another queue is refused as a stale token is, and kept;
    a queue that does not exist fails the whole call."""
    mine, other = await db.create_queue("mine", QueueAttributes()), await db.create_queue("other", QueueAttributes())
    await db.send("other", NewMessage("theirs"))
    await db.send("mine", NewMessage("ours"))
    (theirs,) = (await db.claim("other", 1, 30)).messages
    (ours,) = (await db.claim("mine", 1, 30)).messages
    assert theirs.token is not None and ours.token is not None
    (refused,) = await db.delete_batch([(theirs.id, theirs.token)], "mine")
    assert isinstance(refused, StaleToken) and refused.elsewhere
    with pytest.raises(StaleToken):
        await db.change_visibility(theirs.id, theirs.token, 0, mine.id)
    assert [m.body for m in await db.peek("other", 10)] == ["theirs"]
    assert (await db.peek("other", 10))[0].visible_at == theirs.visible_at  # not released either
    with pytest.raises(QueueNotFound):
        await db.delete_batch([(ours.id, ours.token)], "nowhere")
    with pytest.raises(QueueNotFound):
        await db.change_visibility(ours.id, ours.token, 0, "nowhere")
    moved = await db.change_visibility(ours.id, ours.token, 60, "mine")
    assert moved.id == ours.id
    outcomes = await db.delete_batch([(ours.id, ours.token), (theirs.id, theirs.token)], mine.id)
    assert outcomes[0] is None and isinstance(outcomes[1], StaleToken)
    assert [m.body for m in await db.peek("mine", 10)] == [] and len(await db.peek("other", 10)) == 1
    assert (await db.delete_batch([(theirs.id, theirs.token)], other.id)) == [None]


async def test_a_queue_made_again_by_another_backend_takes_its_handles_at_once(db: Backend, db_url: str) -> None:
    """A delete or visibility change naming a queue that another process deleted and made
    again (a new id) reaches the new queue's messages, whatever this backend had cached."""
    other = backend_for(Settings(db=db_url, retention_interval=3600))
    await other.open()
    try:
        await db.create_queue("again", QueueAttributes())
        await db.send("again", NewMessage("old"))  # the queue is now cached, by name
        await other.delete_queue("again")
        await other.create_queue("again", QueueAttributes())
        await other.send_batch("again", [NewMessage("a"), NewMessage("b")])
        a, b = (await other.claim("again", 2, 30)).messages
        assert a.token is not None and b.token is not None
        assert (await db.change_visibility(b.id, b.token, 60, "again")).id == b.id
        assert await db.delete_batch([(a.id, a.token)], "again") == [None]
        assert [m.body for m in await other.peek("again", 10)] == ["b"]
    finally:
        await other.close()


async def test_concurrent_sends_each_get_their_own_messages(db: Backend) -> None:
    """Sends that share a batch (PostgreSQL joins those to one queue into one INSERT) each get
    back their own messages, in order; one over the queue's limit fails alone, as does one
    to a queue that does not exist."""
    await db.create_queue("q", QueueAttributes(max_message_size=1024))
    batches = [[NewMessage(f"{i}-{j}") for j in range(i % 3 + 1)] for i in range(24)]
    batches[5] = [NewMessage("ok"), NewMessage("x" * 1025)]
    results = await asyncio.gather(*(db.send_batch("q", b) for b in batches),
                                   db.send_batch("nowhere", [NewMessage("x")]), return_exceptions=True)
    assert isinstance(results[5], PayloadTooLarge) and isinstance(results[-1], QueueNotFound)
    for i, (batch, sent) in enumerate(zip(batches, results[:-1], strict=True)):
        if i != 5:
            assert isinstance(sent, list) and [m.body for m in sent] == [m.body for m in batch]
    stored = [m.body for m in await db.peek("q", 100)]
    assert sorted(stored) == sorted(m.body for i, b in enumerate(batches) if i != 5 for m in b)
    assert [s.messages for s in await db.stats()] == [len(stored)]


async def test_concurrent_sends_to_many_queues_each_land_in_their_own(db: Backend) -> None:
    """Sends to several queues sharing a batch (SQLite joins every standard queue's into one
    INSERT) each land in their own queue, with their own counters and delays; a FIFO
    queue's sends beside them still deduplicate."""
    names = [f"q{i}" for i in range(5)]
    for name in names:
        await db.create_queue(name, QueueAttributes(delay_seconds=60 if name == "q4" else 0))
    await db.create_queue("f.fifo", QueueAttributes())
    sends = [db.send_batch(names[i % 5], [NewMessage(f"{i}-{j}") for j in range(i % 3 + 1)]) for i in range(30)]
    fifo = [db.send("f.fifo", NewMessage("same", group_id="g", dedup_id="d")) for _ in range(3)]
    results = await asyncio.gather(*sends, *fifo)
    for i, sent in enumerate(results[:30]):
        assert isinstance(sent, list) and [m.body for m in sent] == [f"{i}-{j}" for j in range(i % 3 + 1)]
        queue = await db.get_queue(names[i % 5])
        assert {m.queue_id for m in sent} == {queue.id}
    assert len({m.id for r in results[:30] for m in r} | set()) == sum(i % 3 + 1 for i in range(30))
    assert len({m.message_id for m in results[30:]}) == 1  # the FIFO duplicates answered with the first
    by_name = {s.queue.name: s for s in await db.stats()}
    for k, name in enumerate(names):
        expected = sum(i % 3 + 1 for i in range(30) if i % 5 == k)
        assert by_name[name].messages == expected
        assert [m.body for m in await db.peek(name, 100)] == [
            f"{i}-{j}" for i in range(30) if i % 5 == k for j in range(i % 3 + 1)]
    assert by_name["q4"].delayed == by_name["q4"].messages and by_name["q0"].visible == by_name["q0"].messages
    assert by_name["f.fifo"].messages == 1


async def test_concurrent_sends_keep_their_own_delays(db: Backend) -> None:
    """In a joined batch each message's delay is its own, else its queue's."""
    await db.create_queue("slow", QueueAttributes(delay_seconds=60))
    await db.create_queue("quick", QueueAttributes())
    own = [NewMessage("a", delay_seconds=5), NewMessage("b")]
    sent = await asyncio.gather(*(db.send_batch(name, own) for name in ("slow", "quick", "slow", "quick")))
    for name, batch in zip(("slow", "quick", "slow", "quick"), sent, strict=True):
        queue_delay = 60 if name == "slow" else 0
        assert [m.visible_at - m.created_at for m in batch] == [5000, queue_delay * 1000]


async def test_concurrent_deletes_each_get_their_own_outcomes(db: Backend) -> None:
    """Deletes that share a batch (PostgreSQL joins them into one statement) each get the
    outcomes of their own entries; a single delete still raises its own refusal."""
    await db.create_queue("q", QueueAttributes())
    await db.send_batch("q", [NewMessage(f"m{i}") for i in range(8)])
    ms = (await db.claim("q", 8, 30)).messages
    batches = [[(ms[0].id, ms[0].token), (ms[1].id, "stale")], [(ms[2].id, None)],
               [(ms[3].id, ms[3].token), (ms[0].id, ms[0].token)], [(ms[4].id + 100, None), (ms[5].id, ms[5].token)]]
    results = await asyncio.gather(*(db.delete_batch(b) for b in batches), db.delete(ms[6].id, "stale"),
                                   db.delete(ms[7].id, ms[7].token), return_exceptions=True)
    assert [[type(o).__name__ for o in r] for r in results[:4] if isinstance(r, list)] == [
        ["NoneType", "StaleToken"], ["NoneType"], ["NoneType", "MessageNotFound"], ["MessageNotFound", "NoneType"]]
    assert isinstance(results[4], StaleToken) and results[5] is None
    assert sorted(m.id for m in await db.peek("q", 10)) == [ms[1].id, ms[4].id, ms[6].id]
    assert [s.messages for s in await db.stats()] == [3]


async def test_concurrent_claims_share_the_messages_without_overlap(db: Backend) -> None:
    """Claims that share a batch (PostgreSQL joins those on one queue into one claim) each
    take at most their size, no message twice; one left with nothing answers empty."""
    queue = await db.create_queue("q", QueueAttributes())
    await db.send_batch("q", [NewMessage(f"m{i}") for i in range(5)])
    claims = await asyncio.gather(*(db.claim("q", 2, 30) for _ in range(4)))
    taken = [m.id for c in claims for m in c.messages]
    assert all(len(c.messages) <= 2 for c in claims) and len(taken) == len(set(taken)) == 5
    assert all(c.queue_id == queue.id for c in claims) and any(not c.messages for c in claims)
    assert all(m.token and m.receive_count == 1 for c in claims for m in c.messages)


async def test_a_dead_letter_queue_is_of_its_sources_kind(db: Backend) -> None:
    await db.create_queue("std", QueueAttributes())
    await db.create_queue("dlq.fifo", QueueAttributes())
    to_fifo, to_std = QueueAttributes(redrive_target="dlq.fifo", max_receive_count=3), \
        QueueAttributes(redrive_target="std", max_receive_count=3)
    for name, attributes in (("s", to_fifo), ("f.fifo", to_std)):
        with pytest.raises(InvalidParameter, match="kind"):
            await db.create_queue(name, attributes)
        await db.create_queue(name, QueueAttributes())
        with pytest.raises(InvalidParameter, match="kind"):
            await db.set_attributes(name, attributes)
    assert (await db.set_attributes("f.fifo", to_fifo)).attributes.redrive_target == "dlq.fifo"
    assert (await db.set_attributes("s", to_std)).attributes.redrive_target == "std"
    # A target is checked when set, not again when other attributes change: one since deleted
    # (or, set before this rule, of the other kind) does not lock the queue's settings.
    await db.delete_queue("std")
    changed = QueueAttributes(redrive_target="std", max_receive_count=3, visibility_timeout=5)
    assert (await db.set_attributes("s", changed)).attributes.visibility_timeout == 5
