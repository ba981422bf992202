"""ASGI apps served in the test process: no subprocess, no socket.

:class:`InProcess` runs an app's lifespan on an event loop of its own thread, and
hands out blocking ``httpx.Client``s whose requests go straight into the app
(through httpx's ASGI transport, on that loop). A handler that logs an error is
caught: :meth:`InProcess.errors` lists what was logged at ERROR or above.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from wonderq.edge.app import App

BASE_URL = "http://localhost"


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Transport(httpx.BaseTransport):
    """A blocking transport that runs each request on the app's loop."""

    def __init__(self, app: App, loop: asyncio.AbstractEventLoop) -> None:
        self.asgi = httpx.ASGITransport(app=app)
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()

        async def run() -> tuple[int, Any, bytes]:
            response = await self.asgi.handle_async_request(request)
            return response.status_code, response.headers, await response.aread()

        status, headers, body = asyncio.run_coroutine_threadsafe(run(), self.loop).result()
        return httpx.Response(status, headers=headers, content=body, request=request)


class InProcess:
    def __init__(self, app: App) -> None:
        self.app = app
        self.url = BASE_URL
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="asgi-app", daemon=True)
        self.recorder = _Recorder()

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the app's loop (a backend call, say) and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def __enter__(self) -> InProcess:
        logging.getLogger("wonderq").addHandler(self.recorder)
        self.thread.start()
        self.context = self.app.running()
        self.run(self.context.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.context.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            logging.getLogger("wonderq").removeHandler(self.recorder)

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(transport=_Transport(self.app, self.loop), base_url=self.url, timeout=timeout)

    def errors(self) -> list[str]:
        return [self.recorder.format(r) for r in self.recorder.records]


@contextmanager
def serving(app: App) -> Iterator[InProcess]:
    with InProcess(app) as running:
        yield running
        assert not running.errors(), running.errors()  # no request may have crashed a handler
