"""The storage contract: what every backend promises, written once.

A backend stores queues and messages. The edge validates every input before
calling it, so a backend trusts its arguments: names match the name pattern,
numbers are within their documented bounds, bodies are strings. What only
storage can know (does the queue exist, is the token current, does the body
fit the queue's size limit) it checks and raises from :mod:`wonderq.errors`.

One time column carries the whole message life cycle (as in goqite):
``visible_at`` is when a message may next be handed out. A send sets it to
now plus the delay; a receive sets it to now plus the visibility timeout and
writes a fresh ``token``; a change of visibility moves it; an expired timeout
simply means ``visible_at <= now`` again, so redelivery needs no sweeper.

A queue argument (``ref``) is a queue id (``int``) or name (``str``). The
conformance suite (``tests/backends/``) runs unchanged on every backend.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
from collections.abc import Awaitable, Mapping, Sequence

from wonderq.backends.rules import EXPIRE_CHUNK, Deleted
from wonderq.backends.waiters import Waiters
from wonderq.clock import Clock
from wonderq.models import ApiKey, Claim, Message, NewMessage, Queue, QueueAttributes, QueueRef, QueueStats

log = logging.getLogger("wonderq.backend")
SAFETY_POLL = 1.0  # a waiter re-checks its queue at least this often, whatever it was told


class Backend(abc.ABC):
    """Base class of every backend: the abstract verbs are each backend's own.

    Concrete here: :meth:`receive` (long polling built on :meth:`claim` and
    :attr:`waiters`), :meth:`expire` and :meth:`retention_loop`. Backends call
    ``self.waiters.notify(queue_id, n)`` after committing anything that makes
    ``n`` messages visible sooner (a send, a visibility change), including
    changes made by other processes.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waiters = Waiters()
        self._queue_ids: dict[str, int] = {}  # names seen by receive

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create or upgrade the schema, start background work."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish work in progress, stop background work, disconnect."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return if the database answers, else raise :class:`Unavailable`."""

    @abc.abstractmethod
    async def create_queue(self, name: str, attributes: QueueAttributes) -> Queue:
        """Create a queue (``modified_at`` = ``created_at``, no tags). Raise
        QueueExists if the name is taken, InvalidParameter if its
        ``redrive_target`` names no queue, or OverLimit if the database holds
        ``settings.max_queues`` queues already (``rules.too_many_queues``).
        The queues are counted here, in the creating transaction, and nowhere
        else: only a create pays for the cap, and concurrent creates (other
        processes, other brokers) cannot pass it together."""

    @abc.abstractmethod
    async def get_queue(self, ref: QueueRef) -> Queue:
        """The queue with this id or name, or raise QueueNotFound."""

    @abc.abstractmethod
    async def list_queues(self) -> list[Queue]:
        """Every queue, ordered by id."""

    @abc.abstractmethod
    async def delete_queue(self, ref: QueueRef) -> None:
        """Delete a queue and all its messages, or raise QueueNotFound."""

    @abc.abstractmethod
    async def set_attributes(self, ref: QueueRef, attributes: QueueAttributes) -> Queue:
        """Replace a queue's attributes and set its ``modified_at`` to now; return
        the queue. Raise QueueNotFound, or InvalidParameter if ``redrive_target``
        names no queue. Takes effect at once for every later send and claim, on
        every process and broker sharing the database."""

    @abc.abstractmethod
    async def set_tags(self, ref: QueueRef, tags: Mapping[str, str]) -> Queue:
        """Replace a queue's tags (``modified_at`` unchanged); return the queue.
        Raise QueueNotFound."""

    @abc.abstractmethod
    async def purge(self, ref: QueueRef) -> int:
        """Delete every message of a queue; return how many."""

    @abc.abstractmethod
    async def send_batch(self, ref: QueueRef, messages: Sequence[NewMessage]) -> list[Message]:
        """Store messages atomically (all or none), committed before returning.

        Raise QueueNotFound, or PayloadTooLarge if a body's UTF-8 length is over
        the queue's ``max_message_size``. Each becomes visible after its delay
        (the queue's ``delay_seconds`` when None). Returns them in order.

        In a FIFO queue (:attr:`Queue.fifo`) a message whose ``dedup_id`` was
        sent within the last ``rules.DEDUP_WINDOW`` seconds (even if deleted
        since) is not stored again: its place in the result is the original
        (same ``id`` and ``message_id``; its other fields may be the
        duplicate's). That holds within one batch too: a later message with an
        earlier one's dedup id answers with the earlier one. Dedup ids are
        unique per queue, or per (queue, group) when the queue's
        ``dedup_by_group`` is set; a message without one is never dropped (the
        edge supplies the body's hash for ``content_dedup``). Counters count
        only the messages stored.
        """

    async def send(self, ref: QueueRef, message: NewMessage) -> Message:
        """Store one message: :meth:`send_batch` of one."""
        return (await self.send_batch(ref, [message]))[0]

    @abc.abstractmethod
    async def claim(self, ref: QueueRef, size: int, visibility_timeout: int | None) -> Claim:
        """Hand out up to ``size`` visible messages, oldest visible first.

        Atomically, for each: ``visible_at`` = now + visibility_timeout (the
        queue's own when None), a new unique ``token``, ``receive_count`` + 1,
        ``first_received_at`` set on the first receive. No message is handed
        out twice while its ``visible_at`` is in the future, whatever the
        number of concurrent claimers, processes or brokers. A message whose
        receive count would exceed the queue's ``max_receive_count`` is moved
        to its ``redrive_target`` instead, with ``origin`` set to this queue's
        name, ``receive_count`` kept (counting the receive that found it over
        the limit), visible at once. With nothing to hand out,
        ``next_visible_at`` tells when the queue's next message becomes
        visible (None if it holds none).

        In a FIFO queue, messages go out in id order within a group (a NULL
        ``group_id`` is one group of its own), and a message is handed out only
        if no message of its group is in flight and none before it in its group
        is invisible; so a group is blocked while one of its messages is out.
        One claim may hand out several messages of a group, in order.
        Concurrent claimers of a FIFO queue take turns.
        """

    @abc.abstractmethod
    async def move_messages(self, ref: QueueRef, destination: QueueRef | None, limit: int) -> int:
        """Move up to ``limit`` visible messages of a queue, oldest first, to
        ``destination``, or when None each to its ``origin`` (messages without
        an origin, or whose origin no longer exists, stay). Moved messages are
        as if new: visible now, ``receive_count`` 0, no token, no origin,
        ``first_received_at`` NULL (not deduplicated again in a FIFO
        destination). Return how many moved; the counters and the destinations'
        consumers follow. Raise QueueNotFound for a missing queue or destination."""

    @abc.abstractmethod
    async def delete(self, message_id: int, token: str | None = None) -> None:
        """Delete a message. Raise MessageNotFound if it does not exist, or
        StaleToken if ``token`` is given and is not the message's current one
        (it was received again since, by someone else)."""

    @abc.abstractmethod
    async def delete_batch(self, entries: Sequence[tuple[int, str | None]], queue: QueueRef | None = None) -> Deleted:
        """Delete each (message id, token) as :meth:`delete` does, all in one write, and say
        per entry, in order: None if deleted, else the MessageNotFound or StaleToken that kept
        it (which keeps no other entry). With ``queue``, only that queue's messages: one in
        another queue is refused as a stale token is (QueueNotFound, for all, if it is none)."""

    @abc.abstractmethod
    async def change_visibility(
        self, message_id: int, token: str, visibility_timeout: int, queue: QueueRef | None = None,
    ) -> Message:
        """Set ``visible_at`` = now + timeout for a message held with ``token``.

        Raise MessageNotFound or StaleToken as :meth:`delete` does. A timeout
        of 0 releases the message to other consumers at once. With ``queue``, as
        :meth:`delete_batch`: only a message of that queue.
        """

    @abc.abstractmethod
    async def queues_of(self, message_ids: Sequence[int]) -> dict[int, str]:
        """The name of the queue each of these messages is in (a batch's ids, not
        thousands), read now; a message that does not exist is left out. It may have
        moved by the time the answer is used, but a message changes queue only with its
        token cleared (a redrive, a move), so a token checked against the queue found
        here acts on it nowhere else."""

    @abc.abstractmethod
    async def peek(self, ref: QueueRef, size: int, after_id: int = 0) -> list[Message]:
        """Up to ``size`` messages with id > ``after_id`` in id order, unchanged; fewer once
        their bodies pass :data:`rules.PEEK_BYTES` (always the first), so that one answer holds
        no more than about that (the next page starts after the last one returned)."""

    @abc.abstractmethod
    async def stats(self) -> list[QueueStats]:
        """Counts for every queue (empty ones too), ordered by queue id."""

    @abc.abstractmethod
    async def create_key(self, key_id: str, name: str, scope: str, queues: Sequence[str], secret_hash: str) -> ApiKey:
        """Store a new API key, created now and not revoked; return it. ``queues``
        are names or ``prefix*`` patterns (none: every queue), none holding a comma.
        Raise Conflict if ``key_id`` is taken. Committed before returning."""

    @abc.abstractmethod
    async def list_keys(self, active_only: bool = False) -> list[ApiKey]:
        """Every API key (only those not revoked, if ``active_only``), oldest first."""

    @abc.abstractmethod
    async def revoke_key(self, key_id: str) -> ApiKey:
        """Set a key's ``revoked_at`` to now, once (revoking it again changes
        nothing); return it. Raise NotFound if there is no such key."""

    @abc.abstractmethod
    async def queue_stats(self, ref: QueueRef) -> QueueStats:
        """One queue's counts, as :meth:`stats` gives them, or raise QueueNotFound.

        Costs what one queue's share of :meth:`stats` costs, whatever the
        number of queues: ``messages`` and the cumulative counters from the
        queue's ``queue_counts`` rows, in-flight and delayed from the index
        range of its invisible messages, the oldest from its first id; the
        queue's attributes as they are now, on every broker."""

    @abc.abstractmethod
    async def expire_some(self, limit: int) -> int:
        """Delete up to ``limit`` messages older than their queue's retention, in
        one transaction, and FIFO dedup ids older than the window; return how
        many messages."""

    async def expire(self) -> int:
        """Delete every message older than its queue's retention; return how many.
        Run periodically by :meth:`retention_loop`; tests call it directly."""
        total = 0
        while True:
            removed = await self.expire_some(EXPIRE_CHUNK)
            total += removed
            if removed < EXPIRE_CHUNK:
                return total

    async def retention_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await self.expire()
                if removed:
                    log.info("retention removed %d messages", removed)
            except Exception:
                log.exception("retention sweep failed")

    async def receive(
        self, ref: QueueRef, size: int, visibility_timeout: int | None, wait_seconds: float,
        disconnected: Awaitable[None] | None = None,
    ) -> list[Message]:
        """Claim messages, waiting up to ``wait_seconds`` for some to appear.

        Returns as soon as a claim finds messages, or empty at the deadline.
        ``disconnected`` completes when the client has gone; it is awaited only
        once there is something to wait for, and then the receive returns
        empty without claiming anything more.
        """
        try:
            return await self._long_poll(ref, size, visibility_timeout, wait_seconds, disconnected)
        finally:
            if inspect.iscoroutine(disconnected) and inspect.getcoroutinestate(disconnected) == "CORO_CREATED":
                disconnected.close()  # never needed: no waiting happened

    async def _long_poll(
        self, ref: QueueRef, size: int, visibility_timeout: int | None, wait_seconds: float,
        disconnected: Awaitable[None] | None,
    ) -> list[Message]:
        queue_id = ref if isinstance(ref, int) else self._queue_ids.get(ref)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        gone: asyncio.Future[None] | None = None
        try:
            while True:
                version = self.waiters.version(queue_id) if queue_id is not None else -1
                claim = await self.claim(ref, size, visibility_timeout)
                remaining = deadline - loop.time()
                if claim.messages or remaining <= 0:
                    return claim.messages
                if claim.queue_id != queue_id:  # learnt (or re-learnt) the id: claim again
                    queue_id = claim.queue_id
                    if isinstance(ref, str):
                        self._queue_ids[ref] = queue_id
                    continue
                timeout = min(remaining, SAFETY_POLL)
                if claim.next_visible_at is not None:
                    timeout = min(timeout, max(0.0, (claim.next_visible_at - self.clock.now_ms()) / 1000))
                if gone is None and disconnected is not None:
                    gone = asyncio.ensure_future(disconnected)
                woken = await self.waiters.wait(queue_id, version, timeout, gone)
                if gone is not None and gone.done():
                    if woken:
                        self.waiters.notify(queue_id, 1)  # pass the wake-up on
                    return []
        finally:
            if gone is not None and not gone.done():
                gone.cancel()
