"""Python clients of the broker's HTTP API: :class:`Client` (blocking) and :class:`AsyncClient`.

Both have the same methods with the same names, arguments and results; the async
one's are coroutines. Each request is described once, by a builder in
:mod:`.calls` that returns a :class:`Call` (method, path, parameters and how to
parse the answer, with :mod:`.answers`); the two classes only differ in how they
put a ``Call`` on the wire::

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

from collections.abc import Iterable
from types import TracebackType
from typing import Self, TypeVar

import httpx

from wonderq.client.answers import (
    Deleted,
    Message,
    Moving,
    Queue,
    QueueStats,
    Sent,
    error,
    error_of,
    parse_deleted,
    parse_message,
    parse_messages,
    parse_moving,
    parse_nothing,
    parse_queue,
    parse_sent,
    parse_stats,
    timestamp,
    unreachable,
)
from wonderq.client.base import DEFAULT_TIMEOUT, BaseClient
from wonderq.client.calls import (
    BatchItem,
    Call,
    DeleteItem,
    change_visibility_call,
    create_queue_call,
    delete_batch_calls,
    delete_call,
    delete_queue_call,
    get_queue_call,
    health_call,
    list_queues_call,
    move_call,
    peek_call,
    purge_call,
    receive_call,
    result,
    send_batch_calls,
    send_call,
    stats_call,
)
from wonderq.models import QueueRef
from wonderq.settings import DEFAULT_URL

T = TypeVar("T")
__all__ = [
    "DEFAULT_URL", "AsyncClient", "BatchItem", "Call", "Client", "DeleteItem", "Deleted", "Message", "Moving",
    "Queue", "QueueStats", "Sent", "change_visibility_call", "create_queue_call", "delete_batch_calls",
    "delete_call", "delete_queue_call", "error", "error_of", "get_queue_call", "health_call", "list_queues_call",
    "move_call", "parse_deleted", "parse_message", "parse_messages", "parse_moving", "parse_nothing", "parse_queue",
    "parse_sent", "parse_stats", "peek_call", "purge_call",
    "receive_call", "result", "send_batch_calls", "send_call", "stats_call", "timestamp", "unreachable",
]


class Client(BaseClient):
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
            response = self.http.send(self._request(self.http, call, api_key))
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


class AsyncClient(BaseClient):
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
            response = await self.http.send(self._request(self.http, call, api_key))
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
