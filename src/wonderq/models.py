"""What the broker stores and hands out, in one vocabulary for every layer.

Backends build these from database rows by column name (the SQL selects
columns named as the fields), so the order of columns in a statement does not
matter; SQLite's message statements, the hottest, select the fields in order.
The edge maps them to each wire protocol's names (the REST API's
``reservation_token`` is :attr:`Message.token`, its ``retrievable_at`` is
:attr:`Message.visible_at`). All times are integer milliseconds since the Unix
epoch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar, TypeVar

from wonderq.settings import DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_RETENTION, DEFAULT_VISIBILITY_TIMEOUT

QueueRef = int | str  # a queue's id, or its name
T = TypeVar("T")
Row = Mapping[str, object]  # sqlite3.Row and asyncpg.Record both look up columns by name


def column(row: Row, name: str, kind: type[T]) -> T:
    value = row[name]
    assert isinstance(value, kind), (name, value)
    return value


def optional(row: Row, name: str, kind: type[T]) -> T | None:
    value = row[name]
    assert value is None or isinstance(value, kind), (name, value)
    return value


@dataclass(frozen=True, slots=True)
class QueueAttributes:
    """Per-queue settings, with SQS's defaults."""

    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT  # seconds
    delay_seconds: int = 0
    retention_seconds: int = DEFAULT_RETENTION
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE  # bytes of UTF-8 body
    redrive_target: str | None = None  # dead-letter queue name
    max_receive_count: int = 0  # 0: never move to the dead-letter queue
    receive_wait_seconds: int = 0  # the long poll of a receive that names no wait (SQS's API)
    content_dedup: bool = False  # FIFO: a send without dedup_id uses its body's SHA-256 (set by the edge)
    dedup_by_group: bool = False  # FIFO: dedup ids are unique per message group, not per queue
    extras: str | None = None  # JSON object of further settings, kept verbatim (SQS's Policy, KMS, …)

    @classmethod
    def from_row(cls, row: Row) -> QueueAttributes:
        return cls(
            visibility_timeout=column(row, "visibility_timeout", int), delay_seconds=column(row, "delay_seconds", int),
            retention_seconds=column(row, "retention_seconds", int),
            max_message_size=column(row, "max_message_size", int),
            redrive_target=optional(row, "redrive_target", str),
            max_receive_count=column(row, "max_receive_count", int),
            receive_wait_seconds=column(row, "receive_wait_seconds", int),
            content_dedup=bool(column(row, "content_dedup", int)),
            dedup_by_group=bool(column(row, "dedup_by_group", int)),
            extras=optional(row, "extras", str),
        )


# The queue attributes of the REST API, the client, the CLI and the dashboard's form. The
# SQS API maps its own names onto every field of QueueAttributes (broker/sqs/attributes.py).
ATTRIBUTES: tuple[str, ...] = (
    "visibility_timeout", "delay_seconds", "retention_seconds", "max_message_size", "redrive_target",
    "max_receive_count",
)
FIFO_SUFFIX = ".fifo"  # a queue whose name ends so keeps order per group and drops duplicates


@dataclass(frozen=True, slots=True)
class Queue:
    id: int
    name: str
    created_at: int
    attributes: QueueAttributes = field(default_factory=QueueAttributes)
    modified_at: int = 0  # the last change of attributes (created_at until then)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def fifo(self) -> bool:
        return self.name.endswith(FIFO_SUFFIX)

    @classmethod
    def from_row(cls, row: Row) -> Queue:
        """The queue's columns; ``tags`` is a JSON object (text) or NULL."""
        tags = optional(row, "tags", str)
        return cls(
            column(row, "id", int), column(row, "name", str), column(row, "created_at", int),
            QueueAttributes.from_row(row), column(row, "modified_at", int), json.loads(tags) if tags else {},
        )


@dataclass(slots=True)  # not frozen: made for every message sent, and a frozen init costs 4 times more
class NewMessage:
    """A message to send; ``delay_seconds`` None means the queue's default."""

    body: str
    delay_seconds: int | None = None
    attributes: str | None = None  # JSON text, kept verbatim (SQS's MessageAttributes)
    group_id: str | None = None  # FIFO: order is kept per group
    dedup_id: str | None = None  # FIFO: a second send with this id within DEDUP_WINDOW is dropped
    system_attributes: str | None = None  # JSON text, kept verbatim (SQS's MessageSystemAttributes)


@dataclass(slots=True)  # not frozen: made for every message sent or received, and a frozen init costs 4 times more
class Message:
    id: int  # monotonic per database, never reused
    message_id: str  # UUID
    queue_id: int
    body: str
    created_at: int
    visible_at: int  # when it may next be handed out
    receive_count: int = 0
    first_received_at: int | None = None
    token: str | None = None  # receipt of the latest receive
    attributes: str | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    system_attributes: str | None = None
    origin: str | None = None  # the queue it was dead-lettered from, by name
    FIELDS: ClassVar[tuple[str, ...]]  # the names above, in order

    @classmethod
    def from_row(cls, row: Row) -> Message:
        return cls(
            column(row, "id", int), column(row, "message_id", str), column(row, "queue_id", int),
            column(row, "body", str), column(row, "created_at", int), column(row, "visible_at", int),
            column(row, "receive_count", int),
            optional(row, "first_received_at", int), optional(row, "token", str), optional(row, "attributes", str),
            optional(row, "group_id", str), optional(row, "dedup_id", str),
            optional(row, "system_attributes", str), optional(row, "origin", str),
        )


Message.FIELDS = tuple(f.name for f in fields(Message))


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
    def from_row(cls, row: Row) -> QueueStats:
        """A queue's columns plus ``messages``, ``in_flight``, ``delayed``,
        ``oldest_created_at`` and the four cumulative counters."""
        n = [optional(row, name, int) or 0 for name in COUNTS]
        messages, in_flight, delayed, sent, received, deleted, expired = n
        return cls(
            Queue.from_row(row), messages, max(0, messages - in_flight - delayed), in_flight, delayed,
            optional(row, "oldest_created_at", int), sent, received, deleted, expired,
        )


COUNTS = ("messages", "in_flight", "delayed", "sent", "received", "deleted", "expired")


@dataclass(frozen=True, slots=True)
class Claim:
    """What one non-waiting receive found."""

    messages: list[Message]
    queue_id: int
    next_visible_at: int | None = None  # earliest later visibility, if none now


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A REST API key as stored: never its secret, only the secret's SHA-256
    (``broker/keys.py`` makes and checks them). ``queues`` are names or
    ``prefix*`` patterns, none meaning every queue; stored as a comma list."""

    id: str  # public, in the token: wq_<id>_<secret>
    name: str
    scope: str  # read, write or admin (broker/access.py)
    queues: tuple[str, ...]
    secret_hash: str  # hex SHA-256 of the secret
    created_at: int
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_row(cls, row: Row) -> ApiKey:
        queues = column(row, "queues", str)
        return cls(
            column(row, "id", str), column(row, "name", str), column(row, "scope", str),
            tuple(q for q in queues.split(",") if q), column(row, "secret_hash", str),
            column(row, "created_at", int), optional(row, "revoked_at", int),
        )
