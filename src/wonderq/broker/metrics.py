"""Prometheus metrics for the broker (``GET /metrics``).

The hot path only adds to plain numbers: in-process counters and per-endpoint
latency buckets, all touched by the event loop's one thread, so they need no
locks (prometheus_client's own Counter and Histogram take one per update). Per-queue figures —
visible, in flight, delayed, the oldest message's age, and the cumulative
sent/received/deleted/expired counts the database keeps — are read once per
scrape from ``Backend.stats()``, so they are exact across every broker and
worker on the database.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from wonderq.clock import Clock
from wonderq.models import Message, QueueStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30)


class QueueCollector(Collector):
    """Turns a stats snapshot into per-queue metric families at scrape time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.snapshot: Sequence[QueueStats] = ()

    def collect(self) -> Iterator[Metric]:
        now = self.clock.now_ms()
        gauges = {
            name: GaugeMetricFamily(f"wonderq_queue_{name}", help_, labels=["queue"])
            for name, help_ in (
                ("messages", "Messages in the queue"),
                ("visible", "Messages that can be received now"),
                ("in_flight", "Messages received and not yet deleted, timeout running"),
                ("delayed", "Messages not yet visible because of their delay"),
                ("oldest_message_age_seconds", "Age of the oldest message"),
            )
        }
        counters = {
            name: CounterMetricFamily(f"wonderq_queue_messages_{name}", f"Messages {name}", labels=["queue"])
            for name in ("sent", "received", "deleted", "expired")
        }
        for s in self.snapshot:
            label = [s.queue.name]
            for name in ("messages", "visible", "in_flight", "delayed"):
                gauges[name].add_metric(label, getattr(s, name))
            age = 0.0 if s.oldest_created_at is None else max(0, now - s.oldest_created_at) / 1000
            gauges["oldest_message_age_seconds"].add_metric(label, age)
            for name in counters:
                counters[name].add_metric(label, getattr(s, name))
        yield from gauges.values()
        yield from counters.values()


class Metrics(Collector):
    def __init__(self, clock: Clock) -> None:
        self.registry = CollectorRegistry()
        self.queues = QueueCollector(clock)
        self.registry.register(self.queues)
        self.registry.register(self)
        # per endpoint: a count per bucket (the last for +Inf), then the sum of seconds
        self.latency: dict[str, list[float]] = {"other": [0] * (len(BUCKETS) + 2)}
        self.sent = self.received = self.redelivered = self.deleted = 0

    def track(self, endpoints: Iterable[str]) -> None:
        """Report these endpoints' latency, from zero, even before their first request."""
        for endpoint in endpoints:
            self.latency.setdefault(endpoint, [0] * (len(BUCKETS) + 2))

    def observe(self, route: str, seconds: float) -> None:
        counts = self.latency.get(route) or self.latency["other"]
        counts[bisect_left(BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def delivered(self, messages: Sequence[Message]) -> None:
        self.received += len(messages)
        self.redelivered += sum(m.receive_count > 1 for m in messages)

    def collect(self) -> Iterator[Metric]:
        for name, help_ in (
            ("sent", "Messages sent via this process"), ("received", "Messages handed out"),
            ("redelivered", "Messages handed out again"), ("deleted", "Messages deleted"),
        ):
            yield CounterMetricFamily(f"wonderq_messages_{name}", help_, value=getattr(self, name))
        family = HistogramMetricFamily(
            "wonderq_request_duration_seconds", "Time to answer a request", labels=["endpoint"]
        )
        for route, counts in self.latency.items():
            cumulative = list(accumulate(counts[:-1]))
            bounds = [str(b) for b in BUCKETS] + ["+Inf"]
            family.add_metric([route], list(zip(bounds, cumulative, strict=True)), counts[-1])
        yield family

    def render(self, snapshot: Sequence[QueueStats]) -> bytes:
        self.queues.snapshot = snapshot
        return generate_latest(self.registry)
