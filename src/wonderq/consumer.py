"""A worker loop over :class:`~wonderq.client.AsyncClient`: receive, handle, delete.

::

    from wonderq import Consumer

    def handle(message):          # or ``async def``; a sync handler runs in a thread
        print(message.body)       # return: the message is deleted; raise: it is redelivered

    Consumer("jobs", handle, concurrency=8).run_forever()   # until SIGINT or SIGTERM

How it behaves:

- **Receiving.** It long-polls for up to ``size`` messages whenever a handler slot is
  free and the previous batch has been started, so it holds at most
  ``concurrency + size - 1`` messages at once (running plus prefetched).
- **Heartbeat.** Every held message, prefetched or running, has its visibility
  extended back to ``visibility_timeout`` every ``heartbeat`` seconds (default:
  half the timeout), so a slow handler keeps its message. A heartbeat that finds
  the message lost (its token stale: it timed out and someone else received it)
  logs a warning; a prefetched message lost that way is skipped.
- **Success.** The message is deleted with its reservation token.
- **Failure.** The exception is logged and, by default, the message is left
  alone: it becomes receivable again when its current visibility timeout runs out
  (at most ``visibility_timeout`` seconds later), with ``receive_count`` + 1. With
  ``retry_delay=S`` its visibility is set to S seconds instead (a change of
  visibility with its token), so a failed message comes back sooner, or later,
  than the timeout. ``retry_delay=0`` retries at once, which a handler that keeps
  failing turns into a hot loop; a queue's ``max_receive_count`` moves a message
  that keeps failing to its dead-letter queue.
- **Graceful stop** (:meth:`Consumer.stop`, or SIGINT/SIGTERM under
  :meth:`Consumer.run_forever`): no more receives (a long poll in progress is
  abandoned), messages received but not started are released at once
  (visibility 0), handlers already running finish and their messages are deleted.
  Under :meth:`run_forever` the first signal says (a warning on the log, shown
  even where logging is not configured) how many handlers it waits for and on
  which messages. A second signal stops at once: the running handlers are
  cancelled (a sync handler's thread is left to finish on its own, and does not
  keep the process from exiting), and their messages wait out their timeout. An
  abandoned long poll that the broker had just answered leaves its messages to
  their visibility timeout.
- **Broker trouble.** An unreachable or failing broker is logged and retried with
  back-off; errors in the consumer's own configuration (an unknown queue, a
  parameter out of bounds) end :meth:`Consumer.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from wonderq.client import AsyncClient, Message
from wonderq.errors import BadRequest, Conflict, NotFound, WonderQError
from wonderq.models import QueueRef
from wonderq.settings import MAX_VISIBILITY

log = logging.getLogger("wonderq.consumer")

Handler = Callable[[Message], object]  # sync, or returning an awaitable (async def)

MAX_BACKOFF = 30.0


@dataclass(eq=False)
class _Held:
    """A message this consumer holds, and the task keeping it invisible."""

    message: Message
    heartbeat: asyncio.Task[None] | None = None
    lost: bool = False  # the heartbeat found its token stale


class Consumer:
    """Receives messages from ``queue`` and runs ``handler`` on each, at most
    ``concurrency`` at a time. See the module's documentation for its behaviour.

    ``client`` is an :class:`AsyncClient` (left open at the end), a broker URL, or
    None for ``$WONDERQ_URL`` / the default URL (a client it opens and closes itself).
    Counters: :attr:`processed` (handlers that returned) and :attr:`failed` (raised).
    """

    def __init__(
        self,
        queue: QueueRef,
        handler: Handler,
        *,
        client: AsyncClient | str | None = None,
        concurrency: int = 4,
        size: int = 10,
        wait: int = 20,
        visibility_timeout: int = 30,
        heartbeat: float | None = None,
        retry_delay: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if visibility_timeout < 1:
            raise ValueError("visibility_timeout must be at least 1 second")
        heartbeat = visibility_timeout / 2 if heartbeat is None else heartbeat
        if not 0 < heartbeat < visibility_timeout:
            raise ValueError("heartbeat must be between 0 and visibility_timeout seconds")
        if retry_delay is not None and not 0 <= retry_delay <= MAX_VISIBILITY:
            raise ValueError(f"retry_delay must be 0-{MAX_VISIBILITY} seconds")
        self.queue = queue
        self.handler = handler
        self.client = client
        self.concurrency = concurrency
        self.size = size
        self.wait = wait
        self.visibility_timeout = visibility_timeout
        self.heartbeat = heartbeat
        self.retry_delay = retry_delay
        self.processed = 0
        self.failed = 0
        self._is_async = _is_async(handler)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._changed: asyncio.Event | None = None  # a handler finished, or stop()
        self._poll: asyncio.Future[list[Message]] | None = None
        self._handling: set[int] = set()  # ids of the messages whose handlers run

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Stop gracefully (see the module's documentation). Safe from any thread;
        before :meth:`run` starts, it makes ``run`` return at once."""
        loop = self._loop
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if loop is not None and current is not loop:
            loop.call_soon_threadsafe(self._stop)
        else:
            self._stop()

    def _stop(self) -> None:
        self._stopping = True
        if self._changed is not None:
            self._changed.set()
        if self._poll is not None:
            self._poll.cancel()

    def run_forever(self) -> None:
        """Run in a new event loop until SIGINT or SIGTERM (a second one cancels the
        running handlers), then return."""
        asyncio.run(self._run_with_signals())

    async def _run_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal() -> None:
            if self._stopping:
                log.warning("stopping now: the running handlers are cancelled; their messages"
                            " come back after their visibility timeout")
                task.cancel()
                return
            self.stop()
            if self._handling:
                ids = ", ".join(map(str, sorted(self._handling)))
                log.warning("stopping: waiting for %d running handler(s) to finish (message %s);"
                            " press Ctrl-C again to stop now", len(self._handling), ids)
            else:
                log.warning("stopping")

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # Windows; not the main thread
                pass
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self.run()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def run(self) -> None:
        """Consume until :meth:`stop`; return when the stop is complete."""
        if self._loop is not None:
            raise RuntimeError("this consumer is already running")
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        own = not isinstance(self.client, AsyncClient)
        client = self.client if isinstance(self.client, AsyncClient) else AsyncClient(self.client)
        prefetched: deque[_Held] = deque()
        running: set[asyncio.Task[None]] = set()
        try:
            await self._dispatch(client, prefetched, running)
        except asyncio.CancelledError:  # a hard stop: the running handlers are cancelled too
            for task in running:
                task.cancel()
            raise
        finally:
            self._stopping = True
            try:
                await self._release(client, prefetched)
                await asyncio.gather(*running, return_exceptions=True)
            finally:
                if own:
                    await client.aclose()
                self._loop = self._changed = None
                self._stopping = False

    async def _dispatch(
        self, client: AsyncClient, prefetched: deque[_Held], running: set[asyncio.Task[None]]
    ) -> None:
        changed = self._changed
        assert changed is not None
        failures = 0
        while not self._stopping:
            if len(running) >= self.concurrency:
                changed.clear()
                await changed.wait()
            elif prefetched:
                held = prefetched.popleft()
                if held.lost:
                    continue
                task = asyncio.create_task(self._handle(client, held))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: changed.set())
            else:
                try:
                    messages = await self._receive(client)
                except (NotFound, BadRequest):
                    raise  # the queue or the consumer's parameters are wrong: retrying will not help
                except WonderQError as exc:
                    failures += 1
                    delay = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1))
                    log.warning("receive from %r failed (%s); retrying in %.1f s", self.queue, exc, delay)
                    await self._sleep(delay)
                    continue
                failures = 0
                for message in messages:
                    held = _Held(message)
                    held.heartbeat = asyncio.create_task(self._keep_invisible(client, held))
                    prefetched.append(held)

    async def _receive(self, client: AsyncClient) -> list[Message]:
        """One long poll, abandoned (returning nothing) if :meth:`stop` is called meanwhile."""
        poll = client.receive(
            self.queue, size=self.size, wait=self.wait, visibility_timeout=self.visibility_timeout
        )
        self._poll = asyncio.ensure_future(poll)
        try:
            return await self._poll
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._stopping and current is not None and not current.cancelling():
                return []  # stop() cancelled the poll, not someone cancelling run()
            raise
        finally:
            self._poll = None

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early on stop()."""
        assert self._changed is not None
        if self._stopping:
            return
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def _keep_invisible(self, client: AsyncClient, held: _Held) -> None:
        """The heartbeat: push the message's visibility back while it is held."""
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await client.change_visibility(held.message, self.visibility_timeout)
            except (NotFound, Conflict) as exc:
                held.lost = True
                log.warning("message %d was lost (%s): another consumer may handle it too",
                            held.message.id, exc)
                return
            except WonderQError as exc:
                log.warning("could not extend the visibility of message %d (%s); will retry",
                            held.message.id, exc)

    async def _handle(self, client: AsyncClient, held: _Held) -> None:
        message = held.message
        self._handling.add(message.id)
        try:
            try:
                outcome = self.handler(message) if self._is_async else await _in_thread(self.handler, message)
                if inspect.isawaitable(outcome):
                    await outcome
            finally:
                self._handling.discard(message.id)
                await _cancel(held.heartbeat)
        except Exception:
            self.failed += 1
            await self._retry(client, message)
            return
        self.processed += 1
        try:
            await client.delete(message)
        except WonderQError as exc:
            log.warning("handled message %d but could not delete it (%s): it may be handled again",
                        message.id, exc)

    async def _retry(self, client: AsyncClient, message: Message) -> None:
        """After a failed handler: log it, and with ``retry_delay`` set the message's visibility."""
        when = "after its visibility timeout" if self.retry_delay is None else f"in {self.retry_delay} s"
        log.exception("handler failed on message %d (receive %d); it will be redelivered %s",
                      message.id, message.receive_count, when)
        if self.retry_delay is None:
            return
        try:
            await client.change_visibility(message, self.retry_delay)
        except WonderQError as exc:
            log.warning("could not delay the retry of message %d (%s): it waits out its timeout",
                        message.id, exc)

    async def _release(self, client: AsyncClient, prefetched: deque[_Held]) -> None:
        """Hand back the messages received but not started (visibility 0)."""
        held = list(prefetched)
        prefetched.clear()
        for h in held:
            await _cancel(h.heartbeat)

        async def release(h: _Held) -> None:
            try:
                await client.change_visibility(h.message, 0)
            except WonderQError as exc:
                log.warning("could not release message %d (%s): it will wait out its timeout",
                            h.message.id, exc)

        await asyncio.gather(*(release(h) for h in held if not h.lost))


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a task and wait for it to end (without swallowing our own cancellation)."""
    if task is None or task.done():
        return
    task.cancel()
    await asyncio.wait([task])


async def _in_thread(handler: Handler, message: Message) -> object:
    """Run a sync handler in a daemon thread of its own: a hard stop does not wait for it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[object] = loop.create_future()

    def settle(result: object, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        result, error = None, None
        try:
            result = handler(message)
        except BaseException as exc:  # handed to the awaiting task, which logs it
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: a hard stop did not wait
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=f"wonderq-handler-{message.id}", daemon=True).start()
    return await done


def _is_async(handler: Handler) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - objects with an async __call__
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)
