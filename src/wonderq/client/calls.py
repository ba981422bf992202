"""Each request to the broker described once, for both clients: a :class:`Call` holds the
method, the path, the parameters and how to parse the answer (:mod:`.answers`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import quote

import httpx

from wonderq.broker import wire
from wonderq.client.answers import (
    Deleted,
    Message,
    Moving,
    Queue,
    QueueStats,
    Sent,
    error,
    fields,
    get,
    items,
    parse_deleted,
    parse_message,
    parse_messages,
    parse_moving,
    parse_nothing,
    parse_queue,
    parse_sent,
    parse_stats,
)
from wonderq.errors import WonderQError
from wonderq.models import QueueRef
from wonderq.settings import MAX_BATCH

T = TypeVar("T")
Param = str | int | float  # a query parameter's value



@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[object], T]  # the decoded JSON, checked as it is read (answers.fields, …)
    params: Mapping[str, Param] | None = None  # query string
    json: Mapping[str, object] | None = None  # JSON object body
    wait: float = 0.0  # seconds the broker may hold the request (long polling) before answering

    def unparsed(self) -> Call[object]:
        """The same request, answered with the broker's JSON as it came."""
        return Call(self.method, self.path, _as_is, self.params, self.json, self.wait)


def _as_is(data: object) -> object:
    return data


P = TypeVar("P")


def _present(values: Mapping[str, P | None]) -> dict[str, P]:
    return {k: v for k, v in values.items() if v is not None}


def _queue_param(queue: QueueRef) -> dict[str, Param]:
    """An id is sent as ``queue_id``, a name as ``queue_name``."""
    return {"queue_id": queue} if isinstance(queue, int) else {"queue_name": queue}


def _queue_path(queue: QueueRef) -> str:
    return str(queue) if isinstance(queue, int) else quote(queue, safe="")


def _message_ref(message: Message | int, token: str | None) -> tuple[int, str | None]:
    """A Message carries its own reservation token; an explicit ``token`` wins."""
    if isinstance(message, Message):
        return message.id, token if token is not None else message.token
    return message, token


def create_queue_call(name: str, attributes: Mapping[str, int | str | None]) -> Call[Queue]:
    return Call("POST", "/queues", parse_queue, json=_present({"name": name, **attributes}))


def get_queue_call(queue: QueueRef) -> Call[Queue]:
    params = {"id": queue} if isinstance(queue, int) else {"name": queue}
    return Call("GET", "/queues/find", parse_queue, params=params)


def stats_call() -> Call[list[QueueStats]]:
    return Call("GET", "/queues", lambda data: [parse_stats(s) for s in items(data)])


def list_queues_call() -> Call[list[Queue]]:
    return Call("GET", "/queues", lambda data: [parse_queue(s) for s in items(data)])


def delete_queue_call(queue: QueueRef) -> Call[None]:
    return Call("DELETE", f"/queues/{_queue_path(queue)}", parse_nothing)


def purge_call(queue: QueueRef) -> Call[int]:
    return Call("POST", f"/queues/{_queue_path(queue)}/purge", lambda data: get(fields(data), "purged", int))


def move_call(queue: QueueRef, destination: str | None) -> Call[Moving]:
    json = _present({"destination": destination})
    return Call("POST", f"/queues/{_queue_path(queue)}/move", parse_moving, json=json)


def send_call(queue: QueueRef, body: str, delay_seconds: int | None) -> Call[Sent]:
    json = _queue_param(queue) | _present({"body": body, "delay_seconds": delay_seconds})
    return Call("POST", "/messages", parse_sent, json=json)


BatchItem = str | tuple[str, int | None] | Mapping[str, str | int | None]  # a body; with its delay


def _batch_entry(item: BatchItem) -> dict[str, str | int]:
    if isinstance(item, str):
        return {"body": item}
    if isinstance(item, tuple):
        body, delay = item
        return _present({"body": body, "delay_seconds": delay})
    return _present({"body": item["body"], "delay_seconds": item.get("delay_seconds")})


def send_batch_calls(queue: QueueRef, bodies: Iterable[BatchItem]) -> list[Call[list[Sent]]]:
    entries = [_batch_entry(item) for item in bodies]
    return [
        Call("POST", "/messages", lambda data: [parse_sent(m) for m in items(data, "messages")],
             json=_queue_param(queue) | {"messages": entries[i:i + MAX_BATCH]})
        for i in range(0, len(entries), MAX_BATCH)
    ]


def receive_call(
    queue: QueueRef, size: int, wait: int, visibility_timeout: int | None
) -> Call[list[Message]]:
    params = _queue_param(queue) | _present(
        {"size": size, "wait_time": wait, "visibility_timeout": visibility_timeout}
    )
    return Call("GET", "/messages/consume", parse_messages, params=params, wait=wait)


def delete_call(message: Message | int, token: str | None) -> Call[None]:
    message_id, token = _message_ref(message, token)
    params = _present({wire.TOKEN: token})
    return Call("DELETE", f"/messages/{message_id}", parse_nothing, params=params)


DeleteItem = Message | int | tuple[int, str | None]


def _delete_entry(item: DeleteItem) -> dict[str, str | int]:
    message_id, token = _message_ref(item, None) if not isinstance(item, tuple) else item
    return {"id": message_id} | _present({wire.TOKEN: token})


def delete_batch_calls(messages: Iterable[DeleteItem]) -> list[Call[list[Deleted]]]:
    entries = [_delete_entry(item) for item in messages]
    return [
        Call("POST", "/messages/delete", lambda data: [parse_deleted(d) for d in items(data, "messages")],
             json={"messages": entries[i:i + MAX_BATCH]})
        for i in range(0, len(entries), MAX_BATCH)
    ]


def change_visibility_call(
    message: Message | int, visibility_timeout: int, token: str | None
) -> Call[Message]:
    message_id, token = _message_ref(message, token)
    json = _present({wire.TOKEN: token, "visibility_timeout": visibility_timeout})
    return Call("POST", f"/messages/{message_id}/visibility", parse_message, json=json)


def peek_call(queue: QueueRef, size: int, after: int) -> Call[list[Message]]:
    params = {"size": size, "after": after}
    return Call("GET", f"/queues/{_queue_path(queue)}/messages", parse_messages, params=params)


def health_call(path: str) -> Call[None]:
    return Call("GET", path, parse_nothing)


def result(call: Call[T], response: httpx.Response) -> T:
    """Parse a success, or raise the error class named by the broker's envelope."""
    if response.is_success:
        try:
            data = response.json()
        except ValueError:
            raise WonderQError(f"the broker's answer is not JSON: {response.text[:200]!r}") from None
        return call.parse(data)
    raise error(response)
