"""How a request names a queue or a message, checked the same way by every
wire protocol: queue names as in SQS (with a ``.fifo`` suffix allowed), and
ids as positive 63-bit integers."""

from __future__ import annotations

import re
from collections.abc import Mapping

from wonderq.edge.params import integer, one_of
from wonderq.errors import InvalidParameter
from wonderq.models import QueueRef
from wonderq.settings import MAX_ID

QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}\.fifo|[A-Za-z0-9_-]{1,80}")


def queue_name(value: object, field_name: str = "name") -> str:
    """A queue's name; missing (None or blank) is ``required``, as any missing parameter."""
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        if value is None or value == "":
            raise InvalidParameter(f"{field_name} is required")
        raise InvalidParameter(
            f"{field_name} must be 1-80 characters of letters, digits, '-' and '_'"
            " (a '.fifo' suffix allowed)"
        )
    return value


def check_new(name: str) -> None:
    """A name a new queue may take, through any API: not all digits, which a path (REST's, the
    CLI's, the dashboard's) reads as a queue's id."""
    if name.isdigit():
        raise InvalidParameter("a queue name cannot be all digits: in paths it would read as a queue's id")


def queue_ref(params: Mapping[str, object]) -> QueueRef:
    """``queue_id`` (an integer) or ``queue_name``; exactly one is required."""
    given = one_of(params, "queue_id", "queue_name")
    if given == "queue_id":
        return integer(params, "queue_id", None, 1, MAX_ID)
    if given == "queue_name":
        return queue_name(params["queue_name"], "queue_name")
    raise InvalidParameter("queue_id or queue_name is required")


def path_queue(segment: str) -> QueueRef:
    """A path's ``{queue}``: all digits is an id, anything else a name."""
    return path_id(segment, "queue") if segment.isdigit() else queue_name(segment, "queue")


def path_id(segment: str, name: str) -> int:
    return integer({name: segment}, name, None, 1, MAX_ID)
