"""The storage rules both backends share, written once: body sizes, delays,
the redrive to a dead-letter queue, a missing message versus a stale token,
counter changes, and message ids. Each backend keeps only its SQL and its
transaction plumbing, and calls these."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field, fields, replace
from typing import NoReturn

from wonderq.errors import (
    InvalidParameter,
    MessageNotFound,
    OverLimit,
    PayloadTooLarge,
    QueueExists,
    QueueNotFound,
    StaleToken,
    WonderQError,
)
from wonderq.models import FIFO_SUFFIX, Message, NewMessage, Queue, QueueAttributes, QueueRef

Woken = list[tuple[int, int]]  # (queue_id, messages made visible)
REDRIVE_PASSES = 10  # bounded, so a flood of poison messages cannot stall a batch
EXPIRE_CHUNK = 5000  # messages removed per retention transaction
DEDUP_WINDOW = 300  # seconds a FIFO queue remembers a dedup id (SQS: 5 minutes)
PEEK_BYTES = 8 * 1024 * 1024  # bodies a peek returns at most (past the first): 1,000 of 1 MiB held 1 GB


# The queue's columns holding its attributes, named as QueueAttributes' fields, in their order.
SETTINGS: tuple[str, ...] = tuple(f.name for f in fields(QueueAttributes))


def settings(attributes: QueueAttributes) -> list[int | str | None]:
    """The values of the SETTINGS columns (booleans as 0/1)."""
    return [int(v) if isinstance(v, bool) else v for v in astuple(attributes)]


def tags_json(tags: Mapping[str, str]) -> str | None:
    """The ``tags`` column: a JSON object, or NULL for none."""
    return json.dumps(dict(sorted(tags.items())), separators=(",", ":")) if tags else None


def content_deduped(queue: Queue, messages: Sequence[NewMessage]) -> Sequence[NewMessage]:
    """A FIFO queue with content-based deduplication gives each message that has no dedup id its
    body's SHA-256 (SQS's ``ContentBasedDeduplication``), whichever API sent it."""
    if not (queue.fifo and queue.attributes.content_dedup):
        return messages
    return [replace(m, dedup_id=hashlib.sha256(m.body.encode()).hexdigest()) if m.dedup_id is None else m
            for m in messages]


def dedup_key(queue: Queue, message: NewMessage) -> str | None:
    """The key under which a FIFO queue remembers a message's dedup id (None:
    not deduplicated): the id itself, or group and id with ``dedup_by_group``."""
    if not queue.fifo or message.dedup_id is None:
        return None
    if queue.attributes.dedup_by_group:
        return f"{message.group_id or ''}\x1f{message.dedup_id}"
    return message.dedup_id


def firsts(keys: Sequence[str | None]) -> list[int]:
    """The indices of a FIFO send batch's messages to store, given their dedup
    keys: those without one, and the first of each key."""
    seen: set[str] = set()
    out = []
    for i, key in enumerate(keys):
        if key is None or key not in seen:
            out.append(i)
            if key is not None:
                seen.add(key)
    return out


def in_place(stored: Mapping[int, Message], keys: Sequence[str | None],
             known: Mapping[str, tuple[int, str]]) -> list[Message]:
    """A FIFO send batch's result: each message as stored (``stored`` holds at
    least the first of each key), except that a key's messages all carry its
    original's ``id`` and ``message_id``: the one ``known`` from before (as
    ``(id, message_id)``), else the first stored in this batch."""
    originals = dict(known)
    result = []
    for i, key in enumerate(keys):
        if key is None:
            result.append(stored[i])
            continue
        m = stored.get(i) or stored[next(j for j in range(i) if keys[j] == key and j in stored)]
        original = originals.setdefault(key, (m.id, m.message_id))
        result.append(replace(m, id=original[0], message_id=original[1]))
    return result


def check_sizes(queue: Queue, messages: Sequence[NewMessage]) -> None:
    """Raise PayloadTooLarge if a body's UTF-8 length is over the queue's limit."""
    if not fit(queue, messages):
        raise PayloadTooLarge(f"message body is over the queue's limit of {queue.attributes.max_message_size} bytes")


def fit(queue: Queue, messages: Sequence[NewMessage]) -> bool:
    """Whether every body's UTF-8 length is within the queue's limit."""
    limit = queue.attributes.max_message_size
    return all(len(m.body) * 4 <= limit or len(m.body.encode()) <= limit for m in messages)


def delays(queue: Queue, messages: Sequence[NewMessage]) -> list[int]:
    """Each message's delay in seconds (:func:`delay`)."""
    return [delay(queue, m) for m in messages]


def delay(queue: Queue, message: NewMessage) -> int:
    """A message's delay in seconds: its own, else its queue's."""
    return queue.attributes.delay_seconds if message.delay_seconds is None else message.delay_seconds


Deleted = list[MessageNotFound | StaleToken | None]  # a batch delete's outcome per entry: None, deleted


def no_queue(ref: QueueRef) -> QueueNotFound:
    """What a lookup of a queue that is not there raises."""
    return QueueNotFound(f"queue {ref!r} does not exist")


def missing(message_id: int, found_in: int | None, queue_id: int | None = None) -> NoReturn:
    """A delete or visibility change matched nothing: say why."""
    raise refusal(message_id, found_in, queue_id)


def refusal(message_id: int, found_in: int | None, queue_id: int | None = None) -> MessageNotFound | StaleToken:
    """Why a delete or visibility change matched nothing, given the queue the message is in
    (None: no such message) and the queue the caller named, if any: no such message, a
    message of another queue (its token holds nothing in this one), or a stale token."""
    if found_in is None:
        return MessageNotFound(f"message {message_id} does not exist")
    return stale(message_id, elsewhere=queue_id is not None and found_in != queue_id)


def stale(message_id: int, elsewhere: bool = False) -> StaleToken:
    """A token that holds nothing here: not the message's current one, or (``elsewhere``)
    one for a message in a queue the caller may not touch, said alike: where it is is not told."""
    error = StaleToken(f"the token is not message {message_id}'s current receipt token")
    error.elsewhere = elsewhere
    return error


def check_target(name: str, a: QueueAttributes, target: Queue | None, before: str | None = None) -> None:
    """The queue ``name``'s dead-letter queue (``target``, looked up by ``a.redrive_target``)
    must exist and be of its kind (:func:`check_kind`). Checked when it is set, not again
    when other attributes change (``before``: the queue's own, now)."""
    if not a.redrive_target or a.redrive_target == before:
        return
    if target is None:
        raise InvalidParameter(f"redrive_target {a.redrive_target!r} is not an existing queue")
    check_kind("redrive_target", target, name)


def check_kind(role: str, target: Queue, source: str) -> None:
    """Messages go only to a queue of their own queue's kind (a dead-letter queue, a move's
    destination), as on SQS: a FIFO queue's messages keep their groups there, and a standard
    queue's have none to keep."""
    if target.fifo != source.endswith(FIFO_SUFFIX):
        kind = "a FIFO queue" if target.fifo else "a standard queue"
        raise InvalidParameter(f"{role} {target.name!r} is {kind}, and {source!r} is not: messages go"
                               " only to a queue of their own queue's kind")


def too_many_queues(name: str, count: int, cap: int, taken: bool) -> WonderQError:
    """What a create that found ``count`` >= ``cap`` queues raises: QueueExists if
    the name is taken (SQS answers a repeated CreateQueue with the queue), else
    OverLimit naming the cap and its flag."""
    if taken:
        return QueueExists(f"queue {name!r} already exists")
    return OverLimit(f"the database holds {count} queues, the most allowed (--max-queues or"
                     f" WONDERQ_MAX_QUEUES, now {cap}); delete one or raise the cap")


def uuid4s(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs, from one read of the OS's randomness."""
    raw = bytearray(os.urandom(16 * n))
    for i in range(6, 16 * n, 16):
        raw[i] = (raw[i] & 0x0F) | 0x40  # version 4
        raw[i + 2] = (raw[i + 2] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return [f"{h[j:j + 8]}-{h[j + 8:j + 12]}-{h[j + 12:j + 16]}-{h[j + 16:j + 20]}-{h[j + 20:j + 32]}"
            for j in range(0, 32 * n, 32)]


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


@dataclass(slots=True)
class Changes:
    """What a transaction changed beyond its rows: the wake-ups to deliver after
    the commit and the counters to write before it. Each backend's transaction
    carries one."""

    woken: Woken = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)

    def sent(self, queue_id: int, n: int, visible_now: int) -> None:
        self.woken.append((queue_id, visible_now or 1))  # 1: wake someone to re-time its wait
        self.tally.add(queue_id, messages=n, sent=n)

    def moved(self, queue_id: int, to: Mapping[int, int]) -> int:
        """Messages moved out of a queue, ``to[destination]`` to each; how many in all."""
        n = sum(to.values())
        self.tally.add(queue_id, messages=-n)
        for destination, k in sorted(to.items()):
            self.tally.add(destination, messages=k)
            self.woken.append((destination, k))
        return n


class Redrive:
    """Claimed messages past the queue's ``max_receive_count`` move to its
    dead-letter queue instead of being handed out, and as many are claimed
    again in their place, for at most REDRIVE_PASSES passes. A backend runs::

        redrive = Redrive(queue, dlq_id, timeout, changes)
        while over := redrive.over(claimed):
            move(over)                       # the backend's SQL
            claimed = claim(redrive.again(over))  # [] when again() is 0
        return redrive.kept
    """

    def __init__(self, queue: Queue, dlq_id: int, timeout: int, changes: Changes) -> None:
        self.queue_id, self.dlq_id = queue.id, dlq_id
        self.limit = queue.attributes.max_receive_count
        self.timeout = timeout
        self.changes = changes
        self.kept: list[Message] = []
        self.passes = 0

    def over(self, claimed: list[Message]) -> list[Message]:
        """Keep the claimed messages within the limit; return the others."""
        self.kept += [m for m in claimed if m.receive_count <= self.limit]
        return [m for m in claimed if m.receive_count > self.limit]

    def again(self, moved: list[Message]) -> int:
        """Count the moved messages; how many to claim in their place (0: stop).
        With a zero timeout a new claim would take back what was kept; after
        the last pass nothing may be claimed unseen."""
        n = len(moved)
        self.changes.woken.append((self.dlq_id, n))
        self.changes.tally.add(self.queue_id, messages=-n)
        self.changes.tally.add(self.dlq_id, messages=n)
        self.passes += 1
        return 0 if self.timeout == 0 or self.passes == REDRIVE_PASSES else n
