"""The broker's assembly: one backend, opened in the app's lifespan, its key ring
(loaded there, then reloaded about once a second), its metrics, and the wire
protocols mounted on one port, each calling the backend directly.

    create_app(settings) -> App([REST API, SQS JSON, SQS Query])
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from wonderq.backends import backend_for
from wonderq.backends.base import Backend
from wonderq.broker.caps import InFlightCap
from wonderq.broker.keys import KeyRing, check_exposure
from wonderq.broker.metrics import Metrics
from wonderq.broker.moves import MoveTasks
from wonderq.broker.rest import RestApi
from wonderq.broker.sqs import SqsApi
from wonderq.clock import Clock
from wonderq.edge.app import App
from wonderq.edge.guard import BrowserGuard
from wonderq.edge.routing import Api
from wonderq.settings import Settings


def create_app(settings: Settings, *, clock: Clock | None = None, backend: Backend | None = None,
               keys: KeyRing | None = None) -> App:
    """The broker as an ASGI app. ``clock``, ``backend`` and ``keys`` are for tests: by
    default the system clock, the backend that ``settings.db`` names and its key ring.
    Its startup refuses a non-loopback bind with authentication off
    (:func:`~wonderq.broker.keys.check_exposure`)."""
    clock = clock or Clock()
    db = backend or backend_for(settings, clock)
    ring = keys or KeyRing(db, settings)
    metrics = Metrics(clock)
    moves = MoveTasks(db, clock)  # message move tasks, started through either API
    in_flight = InFlightCap(db, settings.max_in_flight, clock)  # one count per queue for both APIs
    rest = Api(RestApi(db, metrics, clock, moves, ring, in_flight).routes())
    sqs = SqsApi(db, settings, clock, moves, in_flight, required=lambda: ring.required,  # REST keys guard SQS too
                 local=ring.check_local)
    apis = [rest, *sqs.apis()]
    metrics.track(route.endpoint for api in apis for route in api.routes)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        sqs.load_keys()  # the SigV4 credentials file, read once per process
        await db.open()
        watcher = None
        try:
            await ring.reload()
            check_exposure(ring, settings)
            watcher = asyncio.create_task(ring.watch())
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await moves.close()
            await db.close()

    return App(apis, lifespan, observe=metrics.observe, guard=BrowserGuard.for_settings(settings),
               max_pending_bytes=settings.max_pending_bytes)
