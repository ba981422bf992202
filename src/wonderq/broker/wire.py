"""The REST API's JSON: its field names where they differ from the model's (the seed's
wire vocabulary, mapped in this one place for both ends of the wire: the REST API that
writes them and the Python client that reads them), and the shapes built with them."""

from __future__ import annotations

import functools
import time

from wonderq.models import Message, Queue, QueueStats

JsonObject = dict[str, object]

# Message
TOKEN = "reservation_token"  # Message.token
VISIBLE_AT = "retrievable_at"  # Message.visible_at
# QueueStats
MESSAGES = "queue_size"  # QueueStats.messages
VISIBLE = "retrievable_size"  # QueueStats.visible
IN_FLIGHT = "in_flight_size"  # QueueStats.in_flight
DELAYED = "delayed_size"  # QueueStats.delayed
OLDEST_AGE = "oldest_message_age"  # seconds since QueueStats.oldest_created_at


def iso(ms: int | None) -> str | None:
    """``1764547200123`` -> ``"2025-12-01T00:00:00.123Z"``. Three per message consumed, so
    each second's text is formatted once (datetime's isoformat cost 6 % of a consume)."""
    if ms is None:
        return None
    second, milli = divmod(ms, 1000)
    return f"{utc_second(second)}.{milli:03d}Z"


@functools.lru_cache(maxsize=4096)
def utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def queue_json(queue: Queue) -> JsonObject:
    a = queue.attributes
    return {
        "id": queue.id, "name": queue.name, "created_at": iso(queue.created_at),
        "visibility_timeout": a.visibility_timeout, "delay_seconds": a.delay_seconds,
        "retention_seconds": a.retention_seconds, "max_message_size": a.max_message_size,
        "redrive_target": a.redrive_target, "max_receive_count": a.max_receive_count,
        "receive_wait_seconds": a.receive_wait_seconds, "fifo": queue.fifo, "tags": dict(queue.tags),
    }


def stats_json(s: QueueStats, now: int) -> JsonObject:
    oldest = None if s.oldest_created_at is None else max(0, now - s.oldest_created_at) / 1000
    return queue_json(s.queue) | {
        MESSAGES: s.messages, VISIBLE: s.visible,
        IN_FLIGHT: s.in_flight, DELAYED: s.delayed, OLDEST_AGE: oldest,
        "sent": s.sent, "received": s.received, "deleted": s.deleted, "expired": s.expired,
    }


def message_json(m: Message) -> JsonObject:
    return {
        "id": m.id, "message_id": m.message_id, "queue_id": m.queue_id, "body": m.body,
        "created_at": iso(m.created_at), VISIBLE_AT: iso(m.visible_at),
        TOKEN: m.token, "receive_count": m.receive_count,
        "first_received_at": iso(m.first_received_at),
    }


def peeked_json(m: Message, now: int) -> JsonObject:
    """A message seen without receiving it: its state instead of its token,
    which only the consumer holding it may use."""
    state = "visible" if m.visible_at <= now else ("in_flight" if m.token else "delayed")
    return message_json(m) | {TOKEN: None, "state": state}
