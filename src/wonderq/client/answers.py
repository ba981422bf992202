"""What the broker answers, as the clients return it: frozen models parsed from its JSON
by field name, and its error envelope mapped back to the classes of :mod:`wonderq.errors`
(:class:`~wonderq.errors.BrokerUnreachable` when no answer comes at all)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import httpx

from wonderq.broker import wire
from wonderq.errors import BY_CODE, BrokerUnreachable, WonderQError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Queue:
    id: int
    name: str
    created_at: datetime
    visibility_timeout: int  # seconds
    delay_seconds: int
    retention_seconds: int
    max_message_size: int  # bytes of UTF-8 body
    redrive_target: str | None  # dead-letter queue's name
    max_receive_count: int  # 0: never dead-lettered
    fifo: bool = False  # its name ends with .fifo: order per group, duplicates dropped
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: Queue
    messages: int  # all messages in the queue
    visible: int  # receivable now
    in_flight: int  # received, visibility timeout running
    delayed: int  # never received, delay running
    oldest_message_age: float | None  # seconds; None when empty
    sent: int = 0  # cumulative since the queue was created: rates come from differences
    received: int = 0
    deleted: int = 0
    expired: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    message_id: str  # UUID
    queue_id: int
    body: str
    created_at: datetime
    visible_at: datetime  # when it becomes receivable (again)
    token: str | None  # from the receive that returned it; None from peek
    receive_count: int
    first_received_at: datetime | None
    state: str | None = None  # from peek: "visible", "in_flight" or "delayed"

    @property
    def reservation_token(self) -> str | None:
        """The REST API's name for :attr:`token`."""
        return self.token

    @property
    def retrievable_at(self) -> datetime:
        """The REST API's name for :attr:`visible_at`."""
        return self.visible_at


@dataclass(frozen=True, slots=True)
class Moving:
    """A move task started: its id, and how many messages it found to move."""

    task: str
    to_move: int


@dataclass(frozen=True, slots=True)
class Sent:
    id: int
    message_id: str


@dataclass(frozen=True, slots=True)
class Deleted:
    """One entry of a batch delete: deleted, or the error that kept it
    (``MessageNotFound``, ``StaleToken``), raised for none of the others."""

    id: int
    deleted: bool
    error: WonderQError | None = None


def timestamp(value: str) -> datetime:
    """``2026-11-27T19:41:28.936Z`` -> an aware datetime in UTC."""
    return datetime.fromisoformat(value)


# -- the broker's JSON, checked field by field (a proxy's page or another server's answer
# -- is a WonderQError that says so, not a KeyError deep in a caller) --


def fields(data: object) -> Mapping[str, object]:
    if isinstance(data, dict):
        return data
    raise unexpected("an object", data)


def items(data: object, key: str | None = None) -> list[object]:
    """``data`` as a list, or its member ``key``'s."""
    value = fields(data).get(key) if key is not None else data
    if isinstance(value, list):
        return value
    raise unexpected(f"a list {key or ''}".rstrip(), value)


def get(data: Mapping[str, object], name: str, kind: type[T]) -> T:
    value = data.get(name)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise unexpected(f"{name!r} as {kind.__name__}", value)


def get_optional(data: Mapping[str, object], name: str, kind: type[T]) -> T | None:
    return None if data.get(name) is None else get(data, name, kind)


def get_time(data: Mapping[str, object], name: str) -> datetime:
    try:
        return timestamp(get(data, name, str))
    except ValueError:
        raise unexpected(f"{name!r} as an ISO 8601 time", data.get(name)) from None


def unexpected(wanted: str, got: object) -> WonderQError:
    return WonderQError(f"the answer is not a WonderQ broker's: wanted {wanted}, got {str(got)[:100]!r}")


def parse_queue(data: object) -> Queue:
    d = fields(data)
    tags = fields(d.get("tags") or {})
    return Queue(
        id=get(d, "id", int), name=get(d, "name", str), created_at=get_time(d, "created_at"),
        visibility_timeout=get(d, "visibility_timeout", int), delay_seconds=get(d, "delay_seconds", int),
        retention_seconds=get(d, "retention_seconds", int), max_message_size=get(d, "max_message_size", int),
        redrive_target=get_optional(d, "redrive_target", str), max_receive_count=get(d, "max_receive_count", int),
        fifo=bool(d.get("fifo", False)), tags={str(k): str(v) for k, v in tags.items()},
    )


def parse_stats(data: object) -> QueueStats:
    d = fields(data)
    age = d.get(wire.OLDEST_AGE)
    if age is not None and (not isinstance(age, int | float) or isinstance(age, bool)):
        raise unexpected(f"{wire.OLDEST_AGE!r} as a number", age)
    return QueueStats(
        queue=parse_queue(d), messages=get(d, wire.MESSAGES, int), visible=get(d, wire.VISIBLE, int),
        in_flight=get(d, wire.IN_FLIGHT, int), delayed=get(d, wire.DELAYED, int),
        oldest_message_age=None if age is None else float(age),
        sent=get_optional(d, "sent", int) or 0, received=get_optional(d, "received", int) or 0,
        deleted=get_optional(d, "deleted", int) or 0, expired=get_optional(d, "expired", int) or 0,
    )


def parse_message(data: object) -> Message:
    d = fields(data)
    return Message(
        id=get(d, "id", int), message_id=get(d, "message_id", str), queue_id=get(d, "queue_id", int),
        body=get(d, "body", str), created_at=get_time(d, "created_at"), visible_at=get_time(d, wire.VISIBLE_AT),
        token=get_optional(d, wire.TOKEN, str), receive_count=get(d, "receive_count", int),
        first_received_at=get_time(d, "first_received_at") if d.get("first_received_at") is not None else None,
        state=get_optional(d, "state", str),
    )


def parse_sent(data: object) -> Sent:
    d = fields(data)
    return Sent(id=get(d, "id", int), message_id=get(d, "message_id", str))


def parse_deleted(data: object) -> Deleted:
    d = fields(data)
    envelope = d.get("error")
    error = error_of(str(fields(envelope).get("code")), str(fields(envelope).get("message"))) if envelope else None
    return Deleted(id=get(d, "id", int), deleted=bool(d.get("deleted")), error=error)


def parse_moving(data: object) -> Moving:
    d = fields(data)
    return Moving(get(d, "task", str), get(d, "to_move", int))


def parse_messages(data: object) -> list[Message]:
    return [parse_message(m) for m in items(data)]


def parse_nothing(data: object) -> None:
    return None


# -- failures --


# The most general class of each status (BY_CODE lists parents before children).
_BY_STATUS = {cls.status: cls for cls in reversed(BY_CODE.values())}


def error(response: httpx.Response) -> WonderQError:
    """The :mod:`wonderq.errors` class for an error response, with the broker's message.

    An unknown code keeps its code on the instance; an answer without the envelope
    (say, a proxy's HTML page) is mapped by its HTTP status.
    """
    try:
        envelope = response.json()["error"]
        code, message = str(envelope["code"]), str(envelope["message"])
    except (ValueError, KeyError, TypeError):
        cls = _BY_STATUS.get(response.status_code, WonderQError)
        text = response.text.strip()[:200] or response.reason_phrase
        return cls(f"HTTP {response.status_code} from {response.request.url}: {text}")
    return error_of(code, message)


def error_of(code: str, message: str) -> WonderQError:
    """The class named by an error envelope's code; an unknown code is kept on the instance."""
    exc = BY_CODE.get(code, WonderQError)(message)
    if exc.code != code:
        exc.code = code
    return exc


def unreachable(url: str, exc: httpx.TransportError) -> BrokerUnreachable:
    what = type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        trust = "; trust its certificate's CA with WONDERQ_CA_FILE=<ca.pem>" if "CERTIFICATE_VERIFY" in str(exc) else ""
        return BrokerUnreachable(f"cannot connect to the WonderQ broker at {url} ({what}: {exc}){trust}")
    return BrokerUnreachable(
        f"no answer from the WonderQ broker at {url} ({what}: {exc});"
        " the request may or may not have taken effect"
    )
