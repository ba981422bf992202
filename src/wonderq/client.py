"""Python clients of the broker's HTTP API: :class:`Client` (blocking) and :class:`AsyncClient`.

Both have the same methods with the same names, arguments and results; the async
one's are coroutines. Each request is described once, by a builder below that
returns a :class:`Call` (method, path, parameters and how to parse the answer);
the two classes only differ in how they put a ``Call`` on the wire::

    from wonderq import Client

    with Client("http://127.0.0.1:3213") as wq:
        wq.create_queue("jobs", visibility_timeout=60)
        wq.send("jobs", "hello")
        for message in wq.receive("jobs", size=10, wait=20):
            ...
            wq.delete(message)  # with its reservation token

A queue is named by its name (``str``) or its id (``int``). Errors come back as
the classes of :mod:`wonderq.errors` (``QueueNotFound``, ``StaleToken``, ...),
mapped from the code in the broker's error envelope and carrying its message;
when no answer comes at all (connection refused, a timeout, a dropped
connection) the error is :class:`~wonderq.errors.BrokerUnreachable`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx

from wonderq import __version__
from wonderq.broker import wire
from wonderq.errors import BY_CODE, BrokerUnreachable, WonderQError
from wonderq.models import QueueRef
from wonderq.settings import DEFAULT_URL, MAX_BATCH, broker_url_problem

DEFAULT_TIMEOUT = 10.0
T = TypeVar("T")


# -- what the broker answers --


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


def parse_messages(data: list[dict[str, Any]]) -> list[Message]:
    return [parse_message(m) for m in data]


def parse_nothing(data: Any) -> None:
    return None


# -- requests, described once for both clients --


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] | None = None  # query string
    json: dict[str, Any] | None = None  # JSON object body
    wait: float = 0.0  # seconds the broker may hold the request (long polling) before answering

    def unparsed(self) -> Call[Any]:
        """The same request, answered with the broker's JSON as it came."""
        return replace(self, parse=_as_is)


def _as_is(data: Any) -> Any:
    return data


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _queue_param(queue: QueueRef) -> dict[str, Any]:
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
    return Call("GET", "/queues", lambda data: [parse_stats(s) for s in data])


def list_queues_call() -> Call[list[Queue]]:
    return Call("GET", "/queues", lambda data: [parse_queue(s) for s in data])


def delete_queue_call(queue: QueueRef) -> Call[None]:
    return Call("DELETE", f"/queues/{_queue_path(queue)}", parse_nothing)


def purge_call(queue: QueueRef) -> Call[int]:
    return Call("POST", f"/queues/{_queue_path(queue)}/purge", lambda data: int(data["purged"]))


def parse_moving(data: Mapping[str, Any]) -> Moving:
    return Moving(data["task"], data["to_move"])


def move_call(queue: QueueRef, destination: str | None) -> Call[Moving]:
    json = _present({"destination": destination})
    return Call("POST", f"/queues/{_queue_path(queue)}/move", parse_moving, json=json)


def send_call(queue: QueueRef, body: str, delay_seconds: int | None) -> Call[Sent]:
    json = _queue_param(queue) | _present({"body": body, "delay_seconds": delay_seconds})
    return Call("POST", "/messages", parse_sent, json=json)


BatchItem = str | tuple[str, int | None] | Mapping[str, Any]


def _batch_entry(item: BatchItem) -> dict[str, Any]:
    if isinstance(item, str):
        return {"body": item}
    if isinstance(item, tuple):
        body, delay = item
        return _present({"body": body, "delay_seconds": delay})
    return _present({"body": item["body"], "delay_seconds": item.get("delay_seconds")})


def send_batch_calls(queue: QueueRef, bodies: Iterable[BatchItem]) -> list[Call[list[Sent]]]:
    entries = [_batch_entry(item) for item in bodies]
    return [
        Call("POST", "/messages", lambda data: [parse_sent(m) for m in data["messages"]],
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


def _delete_entry(item: DeleteItem) -> dict[str, Any]:
    message_id, token = _message_ref(item, None) if not isinstance(item, tuple) else item
    return {"id": message_id} | _present({wire.TOKEN: token})


def delete_batch_calls(messages: Iterable[DeleteItem]) -> list[Call[list[Deleted]]]:
    entries = [_delete_entry(item) for item in messages]
    return [
        Call("POST", "/messages/delete", lambda data: [parse_deleted(d) for d in data["messages"]],
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


# -- answers and failures --


# The most general class of each status (BY_CODE lists parents before children).
_BY_STATUS = {cls.status: cls for cls in reversed(BY_CODE.values())}


def result(call: Call[T], response: httpx.Response) -> T:
    """Parse a success, or raise the error class named by the broker's envelope."""
    if response.is_success:
        try:
            data = response.json()
        except ValueError:
            raise WonderQError(f"the broker's answer is not JSON: {response.text[:200]!r}") from None
        return call.parse(data)
    raise error(response)


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


def trusting(ca_file: str) -> ssl.SSLContext:
    """Verification against the CA certificates in ``ca_file`` only (as ``curl --cacert``)."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except OSError as exc:  # ssl.SSLError too: no certificate in it
        why = exc.strerror if exc.strerror and not isinstance(exc, ssl.SSLError) else "no PEM certificate in it"
        raise ValueError(f"cannot use the CA file {ca_file} (WONDERQ_CA_FILE): {why}") from exc


def base_url(url: str | None) -> str:
    """``url``, else ``$WONDERQ_URL``, else the default, without a trailing slash; a ValueError
    naming it if it is no http:// or https:// URL with a host (nothing is sent to find out)."""
    given = url or os.environ.get("WONDERQ_URL") or DEFAULT_URL
    problem = broker_url_problem(given)
    if problem is None:
        try:
            httpx.URL(given)
        except httpx.InvalidURL as exc:
            problem = f"is not a valid URL: {exc}"
    if problem is not None:
        raise ValueError(f"{'the broker URL' if url else 'WONDERQ_URL'} {problem}")
    return given.rstrip("/")


class _Base:
    """What both clients share: the URL, the timeouts and the httpx settings."""

    def __init__(
        self, url: str | None, timeout: float, max_connections: int, api_key: str | None, ca_file: str | None
    ) -> None:
        self.url = base_url(url)
        self.timeout = timeout
        self.max_connections = max_connections
        self.api_key = api_key if api_key is not None else os.environ.get("WONDERQ_API_KEY") or None
        self.ca_file = ca_file if ca_file is not None else os.environ.get("WONDERQ_CA_FILE") or None

    def _httpx_options(self) -> dict[str, Any]:
        headers = {"user-agent": f"wonderq-python/{__version__}"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return {
            "base_url": self.url,
            "verify": trusting(self.ca_file) if self.ca_file else True,
            "timeout": httpx.Timeout(self.timeout),
            "limits": httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=20),
            "headers": headers,
        }

    def _request_options(self, call: Call[Any], api_key: str | None) -> dict[str, Any]:
        """A long poll's read timeout is its wait plus the usual timeout; ``api_key`` is this
        request's key instead of the client's."""
        options: dict[str, Any] = {"params": call.params, "json": call.json}
        if api_key:
            options["headers"] = {"authorization": f"Bearer {api_key}"}
        if call.wait:
            options["timeout"] = httpx.Timeout(self.timeout, read=call.wait + self.timeout)
        return options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class Client(_Base):
    """A blocking client over one pooled ``httpx.Client`` (kept in :attr:`http`).

    ``url`` defaults to ``$WONDERQ_URL``, else ``http://127.0.0.1:3213``; one that is not an
    ``http://`` or ``https://`` URL with a host is a ValueError here. ``api_key`` (sent
    as ``Authorization: Bearer …``) to ``$WONDERQ_API_KEY``, else none. An ``https://`` broker is
    verified against ``ca_file`` (PEM CA certificates; default ``$WONDERQ_CA_FILE``) if given,
    else against httpx's default (``$SSL_CERT_FILE``, or certifi's public CAs).
    ``timeout`` (seconds) bounds connecting, writing and reading; a receive's read
    may take its ``wait`` longer. At most ``max_connections`` requests are under way at once.
    Use it as a context manager or call :meth:`close`.
    """

    def __init__(
        self, url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT, max_connections: int = 100,
        api_key: str | None = None, ca_file: str | None = None,
    ) -> None:
        super().__init__(url, timeout, max_connections, api_key, ca_file)
        self.http = httpx.Client(**self._httpx_options())

    def call(self, call: Call[T], *, api_key: str | None = None) -> T:
        """Send one request described by a :class:`Call` (with ``api_key`` instead of the
        client's, if given); its parsed answer."""
        try:
            response = self.http.request(call.method, call.path, **self._request_options(call, api_key))
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        return result(call, response)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- queues --

    def create_queue(
        self, name: str, *, visibility_timeout: int | None = None, delay_seconds: int | None = None,
        retention_seconds: int | None = None, max_message_size: int | None = None,
        redrive_target: str | None = None, max_receive_count: int | None = None,
    ) -> Queue:
        """Create a queue; attributes left None take the broker's defaults. Raises QueueExists."""
        return self.call(create_queue_call(name, {
            "visibility_timeout": visibility_timeout, "delay_seconds": delay_seconds,
            "retention_seconds": retention_seconds, "max_message_size": max_message_size,
            "redrive_target": redrive_target, "max_receive_count": max_receive_count,
        }))

    def get_queue(self, queue: QueueRef) -> Queue:
        """The queue with this name or id. Raises QueueNotFound."""
        return self.call(get_queue_call(queue))

    def list_queues(self) -> list[Queue]:
        """Every queue, ordered by id."""
        return self.call(list_queues_call())

    def stats(self) -> list[QueueStats]:
        """Every queue with its message counts, ordered by id."""
        return self.call(stats_call())

    def delete_queue(self, queue: QueueRef) -> None:
        """Delete a queue and all its messages. Raises QueueNotFound."""
        self.call(delete_queue_call(queue))

    def purge(self, queue: QueueRef) -> int:
        """Delete every message of a queue; returns how many."""
        return self.call(purge_call(queue))

    def move_messages(self, queue: QueueRef, destination: str | None = None) -> Moving:
        """Start moving a dead-letter queue's messages back to their source queues
        (or to ``destination``); the move runs on in the broker."""
        return self.call(move_call(queue, destination))

    # -- messages --

    def send(self, queue: QueueRef, body: str, *, delay_seconds: int | None = None) -> Sent:
        """Send one message (``delay_seconds`` None: the queue's delay). Raises PayloadTooLarge."""
        return self.call(send_call(queue, body, delay_seconds))

    def send_batch(self, queue: QueueRef, bodies: Iterable[BatchItem]) -> list[Sent]:
        """Send many messages, in order: each a body, a ``(body, delay_seconds)`` pair or a
        ``{"body": ..., "delay_seconds": ...}`` mapping.

        They go in requests of at most 10. Each request is atomic (all its messages are
        stored or none), the batch as a whole is not: when a request fails, the ones before
        it have been stored and the ones after it are not sent.
        """
        return [sent for call in send_batch_calls(queue, bodies) for sent in self.call(call)]

    def receive(
        self, queue: QueueRef, *, size: int = 1, wait: int = 20, visibility_timeout: int | None = None
    ) -> list[Message]:
        """Receive up to ``size`` (1-10) messages, long polling up to ``wait`` (0-20) seconds for
        some. They stay hidden for ``visibility_timeout`` seconds (None: the queue's)."""
        return self.call(receive_call(queue, size, wait, visibility_timeout))

    def delete(self, message: Message | int, token: str | None = None) -> None:
        """Delete a message: a received Message (with its token) or an id (with ``token``, or none
        to delete unconditionally). Raises StaleToken if the token is not its current one."""
        self.call(delete_call(message, token))

    def delete_batch(self, messages: Iterable[DeleteItem]) -> list[Deleted]:
        """Delete many messages, each a received Message (with its token), an id (deleted
        unconditionally) or an ``(id, token)`` pair, in requests of at most 10.

        One entry per message, in order: deleted, or its error (MessageNotFound, StaleToken)
        in :attr:`Deleted.error`; a message that cannot be deleted does not fail the others.
        """
        return [d for call in delete_batch_calls(messages) for d in self.call(call)]

    def change_visibility(
        self, message: Message | int, visibility_timeout: int, token: str | None = None
    ) -> Message:
        """Hide a held message for ``visibility_timeout`` seconds from now (0 releases it)."""
        return self.call(change_visibility_call(message, visibility_timeout, token))

    def peek(self, queue: QueueRef, *, size: int = 10, after: int = 0) -> list[Message]:
        """Up to ``size`` messages with id > ``after``, in id order, without receiving them."""
        return self.call(peek_call(queue, size, after))

    # -- health --

    def ping(self) -> None:
        """Return if the broker process answers (GET /healthz), else raise."""
        self.call(health_call("/healthz"))

    def ready(self) -> None:
        """Return if the broker's database answers (GET /readyz), else raise Unavailable."""
        self.call(health_call("/readyz"))


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`: the same methods, as coroutines, over one
    pooled ``httpx.AsyncClient`` (kept in :attr:`http`). Close it with :meth:`aclose`
    or ``async with``."""

    def __init__(
        self, url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT, max_connections: int = 100,
        api_key: str | None = None, ca_file: str | None = None,
    ) -> None:
        super().__init__(url, timeout, max_connections, api_key, ca_file)
        self.http = httpx.AsyncClient(**self._httpx_options())

    async def call(self, call: Call[T], *, api_key: str | None = None) -> T:
        """Send one request described by a :class:`Call` (with ``api_key`` instead of the
        client's, if given); its parsed answer."""
        try:
            response = await self.http.request(call.method, call.path, **self._request_options(call, api_key))
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        return result(call, response)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    # -- queues --

    async def create_queue(
        self, name: str, *, visibility_timeout: int | None = None, delay_seconds: int | None = None,
        retention_seconds: int | None = None, max_message_size: int | None = None,
        redrive_target: str | None = None, max_receive_count: int | None = None,
    ) -> Queue:
        """Create a queue; attributes left None take the broker's defaults. Raises QueueExists."""
        return await self.call(create_queue_call(name, {
            "visibility_timeout": visibility_timeout, "delay_seconds": delay_seconds,
            "retention_seconds": retention_seconds, "max_message_size": max_message_size,
            "redrive_target": redrive_target, "max_receive_count": max_receive_count,
        }))

    async def get_queue(self, queue: QueueRef) -> Queue:
        """The queue with this name or id. Raises QueueNotFound."""
        return await self.call(get_queue_call(queue))

    async def list_queues(self) -> list[Queue]:
        """Every queue, ordered by id."""
        return await self.call(list_queues_call())

    async def stats(self) -> list[QueueStats]:
        """Every queue with its message counts, ordered by id."""
        return await self.call(stats_call())

    async def delete_queue(self, queue: QueueRef) -> None:
        """Delete a queue and all its messages. Raises QueueNotFound."""
        await self.call(delete_queue_call(queue))

    async def purge(self, queue: QueueRef) -> int:
        """Delete every message of a queue; returns how many."""
        return await self.call(purge_call(queue))

    async def move_messages(self, queue: QueueRef, destination: str | None = None) -> Moving:
        """Start moving a dead-letter queue's messages back to their source queues
        (or to ``destination``); the move runs on in the broker."""
        return await self.call(move_call(queue, destination))

    # -- messages --

    async def send(self, queue: QueueRef, body: str, *, delay_seconds: int | None = None) -> Sent:
        """Send one message (``delay_seconds`` None: the queue's delay). Raises PayloadTooLarge."""
        return await self.call(send_call(queue, body, delay_seconds))

    async def send_batch(self, queue: QueueRef, bodies: Iterable[BatchItem]) -> list[Sent]:
        """Send many messages in requests of at most 10, one after another; see
        :meth:`Client.send_batch` (each request is atomic, the whole batch is not)."""
        return [sent for call in send_batch_calls(queue, bodies) for sent in await self.call(call)]

    async def receive(
        self, queue: QueueRef, *, size: int = 1, wait: int = 20, visibility_timeout: int | None = None
    ) -> list[Message]:
        """Receive up to ``size`` (1-10) messages, long polling up to ``wait`` (0-20) seconds for
        some. They stay hidden for ``visibility_timeout`` seconds (None: the queue's)."""
        return await self.call(receive_call(queue, size, wait, visibility_timeout))

    async def delete(self, message: Message | int, token: str | None = None) -> None:
        """Delete a message: a received Message (with its token) or an id (with ``token``, or none
        to delete unconditionally). Raises StaleToken if the token is not its current one."""
        await self.call(delete_call(message, token))

    async def delete_batch(self, messages: Iterable[DeleteItem]) -> list[Deleted]:
        """Delete many messages in requests of at most 10, one after another; see
        :meth:`Client.delete_batch` (one entry per message, a failure fails no other)."""
        return [d for call in delete_batch_calls(messages) for d in await self.call(call)]

    async def change_visibility(
        self, message: Message | int, visibility_timeout: int, token: str | None = None
    ) -> Message:
        """Hide a held message for ``visibility_timeout`` seconds from now (0 releases it)."""
        return await self.call(change_visibility_call(message, visibility_timeout, token))

    async def peek(self, queue: QueueRef, *, size: int = 10, after: int = 0) -> list[Message]:
        """Up to ``size`` messages with id > ``after``, in id order, without receiving them."""
        return await self.call(peek_call(queue, size, after))

    # -- health --

    async def ping(self) -> None:
        """Return if the broker process answers (GET /healthz), else raise."""
        await self.call(health_call("/healthz"))

    async def ready(self) -> None:
        """Return if the broker's database answers (GET /readyz), else raise Unavailable."""
        await self.call(health_call("/readyz"))
