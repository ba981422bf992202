"""Prometheus metrics for the broker (``GET /metrics``).

The hot path only bumps in-process counters and a latency histogram (children
made once per route, so a request pays no label lookup). Per-queue figures —
visible, in flight, delayed, the oldest message's age, and the cumulative
sent/received/deleted/expired counts the database keeps — are read once per
scrape from ``Backend.stats()``, so they are exact across every broker and
worker on the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wonderq.backend import Message, QueueStats, now_ms

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30)


class QueueCollector(Collector):
    """Turns a stats snapshot into per-queue metric families at scrape time."""

    def __init__(self) -> None:
        self.snapshot: Sequence[QueueStats] = ()

    def collect(self) -> Iterator[Metric]:
        now = now_ms()
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


class Metrics:
    def __init__(self, routes: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        self.queues = QueueCollector()
        self.registry.register(self.queues)
        latency = Histogram(
            "wonderq_request_duration_seconds", "Time to answer a request", ["endpoint"],
            buckets=BUCKETS, registry=self.registry,
        )
        self.latency = {route: latency.labels(route) for route in [*routes, "other"]}
        self.sent = Counter("wonderq_messages_sent", "Messages sent via this process", registry=self.registry)
        self.received = Counter("wonderq_messages_received", "Messages handed out", registry=self.registry)
        self.redelivered = Counter(
            "wonderq_messages_redelivered", "Messages handed out again", registry=self.registry
        )
        self.deleted = Counter("wonderq_messages_deleted", "Messages deleted", registry=self.registry)

    def observe(self, route: str, seconds: float) -> None:
        self.latency.get(route, self.latency["other"]).observe(seconds)

    def delivered(self, messages: Sequence[Message]) -> None:
        if messages:
            self.received.inc(len(messages))
            again = sum(m.receive_count > 1 for m in messages)
            if again:
                self.redelivered.inc(again)

    def render(self, snapshot: Sequence[QueueStats]) -> bytes:
        self.queues.snapshot = snapshot
        return generate_latest(self.registry)
