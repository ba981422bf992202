"""A real backend and a small reference model of the queue semantics, driven
side by side by hypothesis (a ``RuleBasedStateMachine``): sends with delays,
claims and receives (size, visibility timeout), deletes with the current token,
a stale one or none, visibility changes, time passing, retention and purges,
on two standard queues. After every step the counts (``Backend.stats``) and
every stored message (``peek``: which are visible, receive counts, tokens)
must be what the model says, and every error the one it predicts.

SQLite takes its times from a ``ManualClock``, so the model is exact to the
millisecond, boundaries included. PostgreSQL takes them from the database's
clock: moving time there shifts everything stored back instead (as the
``timed`` fixture does), and the real time that passes meanwhile (well under a
second an example) is kept harmless by moving in steps of 10 s and keeping
retention off the grid; messages that become visible at the same modelled
instant may then be claimed in either order, so there the model checks that a
claim took the oldest visible messages up to such ties.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.backends.conftest import SHIFT_BACK
from wonderq.backends import backend_for
from wonderq.backends.base import Backend
from wonderq.clock import ManualClock
from wonderq.errors import MessageNotFound, StaleToken
from wonderq.models import NewMessage, QueueAttributes
from wonderq.settings import Settings

SETTINGS = settings(max_examples=100, stateful_step_count=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@dataclass
class Stored:
    id: int
    created_at: int
    visible_at: int
    token: str | None = None
    receive_count: int = 0


@dataclass
class ModelQueue:
    name: str
    id: int
    visibility_timeout: int  # ms
    delay: int  # ms
    retention: int  # ms
    messages: dict[int, Stored] = field(default_factory=dict)
    sent: int = 0
    received: int = 0
    deleted: int = 0
    expired: int = 0

    def visible(self, now: int) -> list[Stored]:
        """Visible messages, in the order a claim takes them."""
        return sorted((m for m in self.messages.values() if m.visible_at <= now), key=lambda m: (m.visible_at, m.id))


class Harness:
    """The backend on an event loop of its own, and the way to move its time."""

    def __init__(self, db_url: str) -> None:
        self.postgres = db_url.startswith("postgresql")
        self.unit = 10_000 if self.postgres else 1000  # ms: the grid durations are drawn on
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.now = self.clock.now_ms()  # the model's time
        self.backend: Backend = backend_for(Settings(db=db_url, retention_interval=3600), self.clock)
        self.run(self.backend.open())
        self.conn: Any = None
        if self.postgres:
            import asyncpg

            self.conn = self.run(asyncpg.connect(db_url))

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def advance(self, ms: int) -> None:
        self.now += ms
        self.clock.advance(ms / 1000)
        if self.postgres:
            for statement in SHIFT_BACK:
                self.run(self.conn.execute(statement, ms))

    def close(self) -> None:
        if self.conn is not None:
            self.run(self.conn.close())
        self.run(self.backend.close())
        self.loop.close()


def machine(h: Harness) -> type[RuleBasedStateMachine]:
    unit = h.unit
    durations = st.integers(0, 4).map(lambda n: n * unit)  # delays, timeouts: on the grid
    delays = st.none() | st.just(0) | durations  # None: the queue's
    # SQLite: exactly on a boundary, or a millisecond either side of it
    nudges = st.sampled_from([0, 1, unit - 1]) if not h.postgres else st.just(0)
    retentions = st.sampled_from([60, 90, 120] if not h.postgres else [65, 95, 125])

    class QueueMachine(RuleBasedStateMachine):
        receipts = Bundle("receipts")  # (queue index, message id, token): current or stale by now
        sent_ids = Bundle("sent_ids")  # (queue index, message id): perhaps deleted since

        def __init__(self) -> None:
            super().__init__()
            self.queues: list[ModelQueue] = []

        @initialize(
            target=sent_ids,
            specs=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), retentions), min_size=2, max_size=2),
            first=st.lists(st.none() | st.just(0), min_size=1, max_size=10),
        )
        def create_queues(self, specs: list[tuple[int, int, int]], first: list[int | None]) -> Any:
            """Two queues (visibility timeout, delay, retention drawn), and a first batch."""
            for vt, delay, retention in specs:
                name = f"model-{uuid.uuid4().hex[:12]}"
                attrs = QueueAttributes(visibility_timeout=vt * unit // 1000, delay_seconds=delay * unit // 1000,
                                        retention_seconds=retention)
                queue = h.run(h.backend.create_queue(name, attrs))
                self.queues.append(ModelQueue(name, queue.id, vt * unit, delay * unit, retention * 1000))
            return self.send(0, False, first)

        def has_messages(self) -> bool:
            return any(q.messages for q in self.queues)

        def teardown(self) -> None:
            for q in self.queues:
                h.run(h.backend.delete_queue(q.id))

        def ref(self, q: ModelQueue, by_name: bool) -> int | str:
            return q.name if by_name else q.id

        # -- the verbs --

        @rule(target=sent_ids, index=st.integers(0, 1), by_name=st.booleans(),
              delays=st.lists(delays, min_size=1, max_size=10))
        def send(self, index: int, by_name: bool, delays: list[int | None]) -> Any:
            q = self.queues[index]
            news = [NewMessage(f"m{i}", None if d is None else d // 1000) for i, d in enumerate(delays)]
            sent = h.run(h.backend.send_batch(self.ref(q, by_name), news))
            assert len(sent) == len(news)
            assert [m.id for m in sent] == sorted(m.id for m in sent)
            for m, d in zip(sent, delays, strict=True):
                assert m.id not in q.messages and m.queue_id == q.id
                q.messages[m.id] = Stored(m.id, h.now, h.now + (q.delay if d is None else d))
            q.sent += len(sent)
            return multiple(*[(index, m.id) for m in sent])

        @rule(target=sent_ids, index=st.integers(0, 1), delay=delays)
        def send_one(self, index: int, delay: int | None) -> Any:
            return self.send(index, True, [delay])

        @precondition(has_messages)
        @rule(target=receipts, index=st.integers(0, 1), by_name=st.booleans(), size=st.integers(1, 10),
              timeout=st.none() | durations, long_poll=st.booleans())
        def receive(self, index: int, by_name: bool, size: int, timeout: int | None, long_poll: bool) -> Any:
            q = self.queues[index]
            ref, seconds = self.ref(q, by_name), None if timeout is None else timeout // 1000
            if long_poll:
                got = h.run(h.backend.receive(ref, size, seconds, 0))
            else:
                claim = h.run(h.backend.claim(ref, size, seconds))
                assert claim.queue_id == q.id
                got = claim.messages
                if not got:
                    later = [m.visible_at for m in q.messages.values()]
                    if h.postgres:
                        assert (claim.next_visible_at is None) == (not later)
                    else:
                        assert claim.next_visible_at == (min(later) if later else None)
            visible = q.visible(h.now)
            expected = visible[:size]
            ids = [m.id for m in got]
            assert ids == sorted(ids), "a claim returns its messages in id order"
            assert len(ids) == len(expected), (ids, [m.id for m in visible])
            if h.postgres:  # the oldest visible, up to ties at the newest visible_at taken
                cut = expected[-1].visible_at if expected else 0
                assert {m.id for m in expected if m.visible_at < cut} <= set(ids)
                assert all(q.messages[i].visible_at <= cut for i in ids)
            else:
                assert set(ids) == {m.id for m in expected}
            until = h.now + (q.visibility_timeout if timeout is None else timeout)
            for m in got:
                stored = q.messages[m.id]
                assert m.token and m.token != stored.token
                assert m.receive_count == stored.receive_count + 1
                stored.token, stored.receive_count, stored.visible_at = m.token, m.receive_count, until
            q.received += len(got)
            return multiple(*[(index, m.id, m.token) for m in got])

        @rule(receipt=receipts)
        def delete_with_token(self, receipt: tuple[int, int, str]) -> None:
            index, message_id, token = receipt
            q = self.queues[index]
            stored = q.messages.get(message_id)
            if stored is None:
                with pytest.raises(MessageNotFound):
                    h.run(h.backend.delete(message_id, token))
            elif stored.token != token:
                with pytest.raises(StaleToken):
                    h.run(h.backend.delete(message_id, token))
            else:
                h.run(h.backend.delete(message_id, token))
                del q.messages[message_id]
                q.deleted += 1

        @rule(sent=sent_ids)
        def delete_without_token(self, sent: tuple[int, int]) -> None:
            index, message_id = sent
            q = self.queues[index]
            if message_id not in q.messages:
                with pytest.raises(MessageNotFound):
                    h.run(h.backend.delete(message_id))
            else:
                h.run(h.backend.delete(message_id))
                del q.messages[message_id]
                q.deleted += 1

        @rule(receipt=receipts, timeout=durations)
        def change_visibility(self, receipt: tuple[int, int, str], timeout: int) -> None:
            index, message_id, token = receipt
            q = self.queues[index]
            stored = q.messages.get(message_id)
            if stored is None:
                with pytest.raises(MessageNotFound):
                    h.run(h.backend.change_visibility(message_id, token, timeout // 1000))
            elif stored.token != token:
                with pytest.raises(StaleToken):
                    h.run(h.backend.change_visibility(message_id, token, timeout // 1000))
            else:
                m = h.run(h.backend.change_visibility(message_id, token, timeout // 1000))
                stored.visible_at = h.now + timeout
                assert (m.id, m.token, m.receive_count) == (stored.id, stored.token, stored.receive_count)
                if not h.postgres:
                    assert m.visible_at == stored.visible_at

        @rule(units=st.integers(0, 13) | st.sampled_from([30, 60, 90]), nudge=nudges)
        def time_passes(self, units: int, nudge: int) -> None:
            h.advance(units * unit + nudge)

        @rule(data=st.data(), nudge=nudges)
        def time_passes_to_an_event(self, data: st.DataObject, nudge: int) -> None:
            """To (or a millisecond past) one of the next instants where something
            changes: a message becomes visible, or (SQLite) its retention ends."""
            events = {m.visible_at for q in self.queues for m in q.messages.values()}
            future = sorted(t for t in events if t > h.now)[:3]
            if not h.postgres:  # there, real time passing would make a retention boundary a coin toss
                ends = {m.created_at + q.retention for q in self.queues for m in q.messages.values()}
                future += sorted(t for t in ends if t > h.now)[:2]
            if future:
                h.advance(data.draw(st.sampled_from(future), label="event") - h.now + min(nudge, 1))

        @precondition(has_messages)
        @rule()
        def expire(self) -> None:
            removed = h.run(h.backend.expire())
            expected = 0
            for q in self.queues:
                old = [i for i, m in q.messages.items() if m.created_at < h.now - q.retention]
                for i in old:
                    del q.messages[i]
                q.expired += len(old)
                expected += len(old)
            assert removed == expected

        @precondition(has_messages)
        @rule(index=st.integers(0, 1), by_name=st.booleans())
        def purge(self, index: int, by_name: bool) -> None:
            q = self.queues[index]
            assert h.run(h.backend.purge(self.ref(q, by_name))) == len(q.messages)
            q.messages.clear()

        # -- what must hold after every step --

        @invariant()
        def counts_match(self) -> None:
            if not self.queues:
                return
            stats = {s.queue.id: s for s in h.run(h.backend.stats())}
            for q in self.queues:
                s = stats[q.id]
                in_flight = sum(m.visible_at > h.now and m.token is not None for m in q.messages.values())
                delayed = sum(m.visible_at > h.now and m.token is None for m in q.messages.values())
                assert (s.messages, s.in_flight, s.delayed, s.visible) == (
                    len(q.messages), in_flight, delayed, len(q.messages) - in_flight - delayed)
                assert (s.sent, s.received, s.deleted, s.expired) == (q.sent, q.received, q.deleted, q.expired)
                if not h.postgres:
                    oldest = min(q.messages) if q.messages else None
                    assert s.oldest_created_at == (q.messages[oldest].created_at if oldest else None)

        @invariant()
        def messages_match(self) -> None:
            for q in self.queues:
                peeked = h.run(h.backend.peek(q.id, 1000))
                assert [m.id for m in peeked] == sorted(q.messages)
                for m in peeked:
                    stored = q.messages[m.id]
                    assert (m.token, m.receive_count) == (stored.token, stored.receive_count)
                    if not h.postgres:
                        assert (m.visible_at, m.created_at) == (stored.visible_at, stored.created_at)

    return QueueMachine


def test_backend_matches_the_model(db_url: str) -> None:
    h = Harness(db_url)
    try:
        # PostgreSQL: fewer examples, each write there waits for its fsync
        run_state_machine_as_test(machine(h), settings=settings(SETTINGS, max_examples=50) if h.postgres else SETTINGS)
    finally:
        h.close()
