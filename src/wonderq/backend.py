"""The storage contract: what every backend promises, written once.

A backend stores queues and messages. The HTTP edge validates every input
before calling it, so a backend trusts its arguments: names match the name
pattern, numbers are within their documented bounds, bodies are strings.
What only storage can know (does the queue exist, is the token current, does
the body fit the queue's size limit) it checks and raises from
:mod:`wonderq.errors`.

One time column carries the whole message life cycle (as in goqite):
``visible_at`` is when a message may next be handed out. A send sets it to
now plus the delay; a receive sets it to now plus the visibility timeout and
writes a fresh ``token``; a change of visibility moves it; an expired timeout
simply means ``visible_at <= now`` again, so redelivery needs no sweeper.
All times are integer milliseconds since the Unix epoch.

A queue argument (``ref``) is a queue id (``int``) or name (``str``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from wonderq.waiters import Waiters

if TYPE_CHECKING:
    from wonderq.settings import Settings

log = logging.getLogger("wonderq.backend")
QueueRef = int | str

DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_RETENTION = 4 * 24 * 3600
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024
# A waiter re-checks its queue at least this often, whatever it was told.
SAFETY_POLL = 1.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def uuid4s(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs, from one read of the OS's randomness."""
    raw = bytearray(os.urandom(16 * n))
    for i in range(6, 16 * n, 16):
        raw[i] = (raw[i] & 0x0F) | 0x40  # version 4
        raw[i + 2] = (raw[i + 2] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return [f"{h[j:j + 8]}-{h[j + 8:j + 12]}-{h[j + 12:j + 16]}-{h[j + 16:j + 20]}-{h[j + 20:j + 32]}"
            for j in range(0, 32 * n, 32)]


@dataclass(frozen=True, slots=True)
class QueueAttributes:
    """Per-queue settings, with SQS's defaults."""

    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT  # seconds
    delay_seconds: int = 0
    retention_seconds: int = DEFAULT_RETENTION
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE  # bytes of UTF-8 body
    redrive_target: str | None = None  # dead-letter queue name
    max_receive_count: int = 0  # 0: never move to the dead-letter queue


@dataclass(frozen=True, slots=True)
class Queue:
    id: int
    name: str
    created_at: int
    attributes: QueueAttributes = field(default_factory=QueueAttributes)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to send; ``delay_seconds`` None means the queue's default."""

    body: str
    delay_seconds: int | None = None
    attributes: str | None = None  # JSON text, kept verbatim
    group_id: str | None = None
    dedup_id: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    id: int  # monotonic per database, never reused
    message_id: str  # UUID
    queue_id: int
    body: str
    created_at: int
    visible_at: int
    receive_count: int = 0
    first_received_at: int | None = None
    token: str | None = None  # receipt of the latest receive
    attributes: str | None = None
    group_id: str | None = None
    dedup_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A queue's counts. ``messages`` and the cumulative ``sent`` … ``expired``
    come from counters kept in the same transactions as the changes they
    count; in-flight and delayed from the index range of invisible messages;
    so no count costs a scan of the queue."""

    queue: Queue
    messages: int  # all messages in the queue
    visible: int  # visible_at <= now
    in_flight: int  # received, visibility timeout running
    delayed: int  # never received, delay running
    oldest_created_at: int | None
    sent: int = 0  # since the queue was created
    received: int = 0
    deleted: int = 0
    expired: int = 0

    @classmethod
    def from_counts(cls, queue: Queue, counts: Sequence[Any]) -> QueueStats:
        """``counts``: messages, in flight, delayed, oldest created_at, sent,
        received, deleted, expired (the order the backends select them in)."""
        messages, in_flight, delayed, oldest, *totals = (None if c is None else int(c) for c in counts)
        assert messages is not None and in_flight is not None and delayed is not None
        visible = max(0, messages - in_flight - delayed)
        return cls(queue, messages, visible, in_flight, delayed, oldest, *totals)  # type: ignore[arg-type]


class Tally:
    """Per-queue counter changes gathered during one transaction, written once
    at its end: ``(queue_id, messages, sent, received, deleted, expired)``."""

    def __init__(self) -> None:
        self._deltas: dict[int, list[int]] = {}

    def add(
        self, queue_id: int, messages: int = 0, sent: int = 0, received: int = 0, deleted: int = 0,
        expired: int = 0,
    ) -> None:
        d = self._deltas.get(queue_id)
        if d is None:
            self._deltas[queue_id] = [messages, sent, received, deleted, expired]
            return
        d[0] += messages
        d[1] += sent
        d[2] += received
        d[3] += deleted
        d[4] += expired

    def rows(self) -> list[tuple[int, ...]]:
        """In queue id order, so concurrent transactions lock counters in one order."""
        return [(q, *d) for q, d in sorted(self._deltas.items()) if any(d)]


@dataclass(frozen=True, slots=True)
class Claim:
    """What one non-waiting receive found."""

    messages: list[Message]
    queue_id: int
    next_visible_at: int | None = None  # earliest later visibility, if none now


class Backend:
    """Base class of every backend. Subclasses implement the abstract verbs.

    Concrete here: :meth:`receive` (long polling built on :meth:`claim` and
    :attr:`waiters`). Backends call ``self.waiters.notify(queue_id, n)`` after
    committing anything that makes ``n`` messages visible sooner (a send, a
    visibility change), including changes made by other processes.
    """

    def __init__(self) -> None:
        self.waiters = Waiters()
        self._queue_ids: dict[str, int] = {}  # names seen by receive

    async def open(self) -> None:
        """Connect, create or migrate the schema, start background work."""
        raise NotImplementedError

    async def close(self) -> None:
        """Finish work in progress, stop background work, disconnect."""
        raise NotImplementedError

    async def ping(self) -> None:
        """Return if the database answers, else raise :class:`Unavailable`."""
        raise NotImplementedError

    async def create_queue(self, name: str, attributes: QueueAttributes) -> Queue:
        """Create a queue. Raise QueueExists if the name is taken, or
        InvalidParameter if its ``redrive_target`` names no queue."""
        raise NotImplementedError

    async def get_queue(self, ref: QueueRef) -> Queue:
        """The queue with this id or name, or raise QueueNotFound."""
        raise NotImplementedError

    async def list_queues(self) -> list[Queue]:
        """Every queue, ordered by id."""
        raise NotImplementedError

    async def delete_queue(self, ref: QueueRef) -> None:
        """Delete a queue and all its messages, or raise QueueNotFound."""
        raise NotImplementedError

    async def purge(self, ref: QueueRef) -> int:
        """Delete every message of a queue; return how many."""
        raise NotImplementedError

    async def send_batch(self, ref: QueueRef, messages: Sequence[NewMessage]) -> list[Message]:
        """Store messages atomically (all or none), committed before returning.

        Raise QueueNotFound, or PayloadTooLarge if a body's UTF-8 length is over
        the queue's ``max_message_size``. Each becomes visible after its delay
        (the queue's ``delay_seconds`` when None). Returns them in order.
        """
        raise NotImplementedError

    async def send(self, ref: QueueRef, message: NewMessage) -> Message:
        """Store one message: :meth:`send_batch` of one."""
        return (await self.send_batch(ref, [message]))[0]

    async def claim(self, ref: QueueRef, size: int, visibility_timeout: int | None) -> Claim:
        """Hand out up to ``size`` visible messages, oldest visible first.

        Atomically, for each: ``visible_at`` = now + visibility_timeout (the
        queue's own when None), a new
        unique ``token``, ``receive_count`` + 1, ``first_received_at`` set on the
        first receive. No message is handed out twice while its ``visible_at``
        is in the future, whatever the number of concurrent claimers,
        processes or brokers. A message whose receive count would exceed the
        queue's ``max_receive_count`` is moved to its ``redrive_target`` instead.
        With nothing to hand out, ``next_visible_at`` tells when the queue's
        next message becomes visible (None if it holds none).
        """
        raise NotImplementedError

    async def delete(self, message_id: int, token: str | None = None) -> None:
        """Delete a message. Raise MessageNotFound if it does not exist, or
        StaleToken if ``token`` is given and is not the message's current one
        (it was received again since, by someone else)."""
        raise NotImplementedError

    async def change_visibility(self, message_id: int, token: str, visibility_timeout: int) -> Message:
        """Set ``visible_at`` = now + timeout for a message held with ``token``.

        Raise MessageNotFound or StaleToken as :meth:`delete` does. A timeout
        of 0 releases the message to other consumers at once.
        """
        raise NotImplementedError

    async def peek(self, ref: QueueRef, size: int, after_id: int = 0) -> list[Message]:
        """Up to ``size`` messages with id > ``after_id`` in id order, unchanged."""
        raise NotImplementedError

    async def stats(self) -> list[QueueStats]:
        """Counts for every queue (empty ones too), ordered by queue id."""
        raise NotImplementedError

    async def expire(self) -> int:
        """Delete messages older than their queue's retention; return how many.
        Backends call it periodically (:meth:`retention_loop`); tests directly."""
        raise NotImplementedError

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
        self,
        ref: QueueRef,
        size: int,
        visibility_timeout: int | None,
        wait_seconds: float,
        watch: Callable[[], asyncio.Future[None]] | None = None,
    ) -> list[Message]:
        """Claim messages, waiting up to ``wait_seconds`` for some to appear.

        Returns as soon as a claim finds messages, or empty at the deadline.
        ``watch`` is called once, before the first wait, for a future that
        resolves when the client has gone; then it returns empty without
        claiming anything more.
        """
        queue_id = ref if isinstance(ref, int) else self._queue_ids.get(ref)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        gone: asyncio.Future[None] | None = None
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
                timeout = min(timeout, max(0.0, (claim.next_visible_at - now_ms()) / 1000))
            if gone is None and watch is not None:
                gone = watch()
            woken = await self.waiters.wait(queue_id, version, timeout, gone)
            if gone is not None and gone.done():
                if woken:
                    self.waiters.notify(queue_id, 1)  # pass the wake-up on
                return []


EXPIRE_CHUNK = 5000  # messages removed per retention transaction


class OpsBackend(Backend):
    """A backend built from a module of *ops*: each write verb is one op run in
    a group-committed batch (:meth:`_write`), each read one run on a reader
    connection (:meth:`_read`). The verbs below are then the same for every
    such backend; a subclass supplies ``ops``, ``_write``, ``_read`` and
    ``ping``, and the life cycle."""

    ops: Any  # the module: sqlite_ops or postgres_ops

    async def _write(self, fn: Callable[..., Any], *args: Any, durable: bool = False) -> Any:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    async def create_queue(self, name: str, attributes: QueueAttributes) -> Queue:
        return cast(Queue, await self._write(self.ops.create_queue, name, attributes, durable=True))

    async def get_queue(self, ref: QueueRef) -> Queue:
        return cast(Queue, await self._read(lambda conn: self.ops.resolve(conn, ref)))

    async def list_queues(self) -> list[Queue]:
        return cast(list[Queue], await self._read(self.ops.list_queues))

    async def delete_queue(self, ref: QueueRef) -> None:
        await self._write(self.ops.delete_queue, ref, durable=True)

    async def purge(self, ref: QueueRef) -> int:
        return cast(int, await self._write(self.ops.purge, ref, durable=True))

    async def send_batch(self, ref: QueueRef, messages: Sequence[NewMessage]) -> list[Message]:
        return cast(list[Message], await self._write(self.ops.send_batch, ref, messages, durable=True))

    async def claim(self, ref: QueueRef, size: int, visibility_timeout: int | None) -> Claim:
        return cast(Claim, await self._write(self.ops.claim, ref, size, visibility_timeout))

    async def delete(self, message_id: int, token: str | None = None) -> None:
        await self._write(self.ops.delete, message_id, token)

    async def change_visibility(self, message_id: int, token: str, visibility_timeout: int) -> Message:
        changed = await self._write(self.ops.change_visibility, message_id, token, visibility_timeout)
        return cast(Message, changed)

    async def peek(self, ref: QueueRef, size: int, after_id: int = 0) -> list[Message]:
        return cast(list[Message], await self._read(lambda conn: self.ops.peek(conn, ref, size, after_id)))

    async def stats(self) -> list[QueueStats]:
        return cast(list[QueueStats], await self._read(self.ops.stats))

    async def expire(self) -> int:
        total = 0
        while True:
            removed = cast(int, await self._write(self.ops.expire, EXPIRE_CHUNK))
            total += removed
            if removed < EXPIRE_CHUNK:
                return total


def open_backend(url: str, settings: Settings) -> Backend:
    """Choose a backend from the URL scheme; import only the one chosen."""
    if url.startswith("sqlite://"):
        from wonderq.sqlite import SqliteBackend

        return SqliteBackend(sqlite_path(url), settings)
    if url.startswith(("postgresql://", "postgres://")):
        from wonderq.postgres import PostgresBackend

        return PostgresBackend(url, settings)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://…")


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    path = url.removeprefix("sqlite://")
    return path[1:] if path.startswith("/") else path
