"""The user app's listeners: each a loop that long-polls the broker's consume, prints
``Processing message: <body>`` for each message, deletes it with its reservation token,
and tells its lines to whichever ``/listen`` responses follow it (:func:`follow`).

A listener backs off while the broker fails, stops on a failure retrying cannot mend
(:func:`hopeless`: the queue is gone, the app's key refused), and on :meth:`Listener.stop`
abandons a long poll in progress and releases what it holds but has not processed
(visibility 0)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from wonderq.client import AsyncClient, Message, Queue
from wonderq.errors import BadRequest, Forbidden, NotFound, OverLimit, Unauthorized, Unavailable, WonderQError
from wonderq.models import QueueRef

log = logging.getLogger("wonderq.userapp")
ENDED = ("stopped", "failed")  # states of listeners that run no more: listed, not counted
STOP_TIMEOUT = 5.0  # seconds a stopping listener may take before it is cancelled
MAX_BACKOFF = 30.0  # seconds between receives while the broker fails
IDLE_PAUSE = 1.0  # seconds between empty receives when wait_time is 0
STREAM_BACKLOG = 10_000  # lines kept for a slow /listen reader; later ones are dropped

Lines = asyncio.Queue[bytes | None]  # a /listen stream's lines; None ends it


@dataclass(frozen=True, slots=True)
class ListenParams:
    """What a listener passes to each consume; None: the broker's default."""

    size: int
    wait_time: int
    visibility_timeout: int | None


class Listener:
    """One consumer loop started by ``GET /listen``: receive, print, delete, tell the streams."""

    def __init__(
        self, id: int, client: AsyncClient, queue: Queue, ref: QueueRef, params: ListenParams
    ) -> None:
        self.id, self.client, self.queue, self.ref, self.params = id, client, queue, ref, params
        self.started_at = datetime.now(UTC)
        self.state = "running"  # then stopping, stopped or failed
        self.error: str | None = None  # why it failed, or the broker's last error while retrying
        # receives: consumes answered; received: messages they held; processed: printed and
        # deleted; failed: printed but not deleted (they come back after their timeout)
        self.receives = self.received = self.processed = self.failed = 0
        self._streams: set[Lines] = set()
        self._stopping = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"wonderq-listener-{id}")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "queue": self.queue.name, "queue_id": self.queue.id, "state": self.state,
            "started_at": self.started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "params": asdict(self.params), "processed": self.processed, "failed": self.failed,
            "receives": self.receives, "received": self.received,
            "streams": len(self._streams), "error": self.error,
        }

    def subscribe(self) -> Lines:
        lines: Lines = asyncio.Queue(STREAM_BACKLOG)
        self._streams.add(lines)
        return lines

    def unsubscribe(self, lines: Lines) -> None:
        self._streams.discard(lines)

    def _tell(self, line: bytes | None) -> None:
        for lines in self._streams:
            if line is None and lines.full():
                lines.get_nowait()  # the end must get through
            with contextlib.suppress(asyncio.QueueFull):
                lines.put_nowait(line)

    async def stop(self) -> None:
        """Stop gracefully and wait for it (cancelling it after ``STOP_TIMEOUT``)."""
        self._stopping.set()
        if self.state == "running":
            self.state = "stopping"
        done, _ = await asyncio.wait({self.task}, timeout=STOP_TIMEOUT)
        if not done:
            log.warning("listener %d did not stop within %.0f s: cancelling it", self.id, STOP_TIMEOUT)
            self.task.cancel()
            await asyncio.wait({self.task})

    async def _run(self) -> None:
        params = self.params
        log.info("listener %d started on queue %s (size %d, wait_time %d s, visibility_timeout %s)", self.id,
                 self.queue.name, params.size, params.wait_time, "the queue's" if params.visibility_timeout is None
                 else f"{params.visibility_timeout} s")
        try:
            await self._loop()
        except WonderQError as exc:  # only those retrying will not help (_loop retries the others)
            self.state, self.error = "failed", refused(exc).message
        except Exception as exc:
            log.exception("listener %d failed", self.id)
            self.state, self.error = "failed", f"internal error: {exc}"
        finally:
            if self.state != "failed":
                self.state = "stopped"
            why = f": {self.error}" if self.state == "failed" else ""
            log.info("listener %d %s%s (processed %d)", self.id, self.state, why, self.processed)
            self._tell(f"listener {self.id} {self.state}{why}\n".encode())
            self._tell(None)

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                messages = await self._receive()
            except WonderQError as exc:  # unreachable or failing broker: back off and retry
                if hopeless(exc):
                    raise
                failures += 1
                self.error = exc.message
                delay = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1))
                log.warning("listener %d: receive failed (%s); retrying in %.1f s", self.id, exc, delay)
                await self._pause(delay)
                continue
            failures, self.error = 0, None
            await self._process_all(messages)
            if not messages and self.params.wait_time == 0:
                await self._pause(IDLE_PAUSE)

    async def _receive(self) -> list[Message]:
        """One consume; abandoned (nothing claimed) if the listener is stopped meanwhile."""
        p = self.params
        poll = asyncio.ensure_future(self.client.receive(
            self.ref, size=p.size, wait=p.wait_time, visibility_timeout=p.visibility_timeout
        ))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({poll, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not poll.done():
                poll.cancel()
                await asyncio.wait({poll})
        if poll.cancelled():
            return []
        messages = poll.result()
        self.receives += 1
        self.received += len(messages)
        return messages

    async def _process_all(self, messages: list[Message]) -> None:
        for index, message in enumerate(messages):
            if self._stopping.is_set():
                await self._release(messages[index:])
                return
            await self._process(message)

    async def _process(self, message: Message) -> None:
        print(f"Processing message: {message.body}", flush=True)
        try:
            await self.client.delete(message)
        except WonderQError as exc:
            self.failed += 1
            log.warning("listener %d processed message %d but could not delete it (%s):"
                        " it may be processed again", self.id, message.id, exc)
            return
        self.processed += 1
        self._tell(f"processed message {message.id}: {orjson.dumps(message.body).decode()}\n".encode())

    async def _release(self, messages: list[Message]) -> None:
        """Hand messages received but not processed back to the queue at once."""

        async def release(message: Message) -> None:
            try:
                await self.client.change_visibility(message, 0)
            except WonderQError as exc:
                log.warning("listener %d could not release message %d (%s): it will wait out"
                            " its visibility timeout", self.id, message.id, exc)

        await asyncio.gather(*(release(m) for m in messages))

    async def _pause(self, seconds: float) -> None:
        """Sleep, waking early when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


async def follow(listener: Listener, lines: Lines, gone: asyncio.Future[None]) -> AsyncIterator[bytes]:
    """A /listen response: the listener's name, then its lines until it stops or the client goes."""
    try:
        yield f"listener {listener.id} on queue {listener.queue.name}\n".encode()
        while not gone.done():
            get = asyncio.ensure_future(lines.get())
            either: list[asyncio.Future[Any]] = [get, gone]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                return
            line = get.result()
            if line is None:
                return
            yield line
    except asyncio.CancelledError:
        # Only the server cancels a request: at shutdown, once its graceful timeout has run
        # out on a stream still open. End the response instead of crashing the request; the
        # app's shutdown stops the listener next.
        yield b"the user app is shutting down\n"
    finally:
        listener.unsubscribe(lines)


def hopeless(exc: WonderQError) -> bool:
    """Retrying will not help: the queue is gone, or the broker refuses the app's key."""
    return isinstance(exc, NotFound | BadRequest | Unauthorized | Forbidden) and not isinstance(exc, OverLimit)


def refused(exc: WonderQError) -> WonderQError:
    """The broker's 401 (this app's key, not the caller's doing) as a 503 that says so."""
    if isinstance(exc, Unauthorized):
        return Unavailable(f"the broker refused the user app's API key (WONDERQ_API_KEY): {exc.message}")
    return exc
