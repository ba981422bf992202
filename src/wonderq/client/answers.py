"""What the broker answers, as the clients return it: frozen models parsed from its JSON
by field name, and its error envelope mapped back to the classes of :mod:`wonderq.errors`
(:class:`~wonderq.errors.BrokerUnreachable` when no answer comes at all)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from wonderq.broker import wire
from wonderq.errors import BY_CODE, BrokerUnreachable, WonderQError


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


def parse_queue(data: Mapping[str, Any]) -> Queue:
    return Queue(
        id=data["id"], name=data["name"], created_at=timestamp(data["created_at"]),
        visibility_timeout=data["visibility_timeout"], delay_seconds=data["delay_seconds"],
        retention_seconds=data["retention_seconds"], max_message_size=data["max_message_size"],
        redrive_target=data["redrive_target"], max_receive_count=data["max_receive_count"],
        fifo=data.get("fifo", False), tags=data.get("tags") or {},
    )


def parse_stats(data: Mapping[str, Any]) -> QueueStats:
    age = data[wire.OLDEST_AGE]
    return QueueStats(
        queue=parse_queue(data), messages=data[wire.MESSAGES], visible=data[wire.VISIBLE],
        in_flight=data[wire.IN_FLIGHT], delayed=data[wire.DELAYED],
        oldest_message_age=None if age is None else float(age),
        sent=data.get("sent", 0), received=data.get("received", 0), deleted=data.get("deleted", 0),
        expired=data.get("expired", 0),
    )


def parse_message(data: Mapping[str, Any]) -> Message:
    first = data.get("first_received_at")
    return Message(
        id=data["id"], message_id=data["message_id"], queue_id=data["queue_id"], body=data["body"],
        created_at=timestamp(data["created_at"]), visible_at=timestamp(data[wire.VISIBLE_AT]),
        token=data.get(wire.TOKEN), receive_count=data["receive_count"],
        first_received_at=None if first is None else timestamp(first), state=data.get("state"),
    )


def parse_sent(data: Mapping[str, Any]) -> Sent:
    return Sent(id=data["id"], message_id=data["message_id"])


def parse_deleted(data: Mapping[str, Any]) -> Deleted:
    envelope = data.get("error")
    if not envelope:
        return Deleted(id=data["id"], deleted=bool(data["deleted"]))
    error = error_of(str(envelope["code"]), str(envelope["message"]))
    return Deleted(id=data["id"], deleted=bool(data["deleted"]), error=error)


def parse_moving(data: Mapping[str, Any]) -> Moving:
    return Moving(data["task"], data["to_move"])


def parse_messages(data: list[dict[str, Any]]) -> list[Message]:
    return [parse_message(m) for m in data]


def parse_nothing(data: Any) -> None:
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
