"""The broker's assembly: one backend, opened in the app's lifespan, its metrics,
and the wire protocols mounted on one port, each calling the backend directly.

    create_app(settings) -> App([REST API, SQS JSON, SQS Query])
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from wonderq.backends import backend_for
from wonderq.backends.base import Backend
from wonderq.broker.caps import InFlightCap
from wonderq.broker.metrics import Metrics
from wonderq.broker.moves import MoveTasks
from wonderq.broker.rest import RestApi
from wonderq.broker.sqs import SqsApi
from wonderq.clock import Clock
from wonderq.edge.app import App
from wonderq.edge.guard import BrowserGuard
from wonderq.edge.routing import Api
from wonderq.settings import Settings


def create_app(settings: Settings, *, clock: Clock | None = None, backend: Backend | None = None) -> App:
    """The broker as an ASGI app. ``clock`` and ``backend`` are for tests: by default
    the system clock and the backend that ``settings.db`` names."""
    clock = clock or Clock()
    db = backend or backend_for(settings, clock)
    metrics = Metrics(clock)
    moves = MoveTasks(db, clock)  # message move tasks, started through either API
    in_flight = InFlightCap(db, settings.max_in_flight, clock)  # one count per queue for both APIs
    rest = Api(RestApi(db, metrics, clock, moves, in_flight).routes())
    sqs = SqsApi(db, settings, clock, moves, in_flight)
    apis = [rest, *sqs.apis()]
    metrics.track(route.endpoint for api in apis for route in api.routes)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await db.open()
        try:
            yield
        finally:
            await moves.close()
            await db.close()

    return App(apis, lifespan, observe=metrics.observe, guard=BrowserGuard.for_settings(settings),
               max_pending_bytes=settings.max_pending_bytes)
