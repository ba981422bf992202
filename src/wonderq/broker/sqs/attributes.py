"""Queue attributes under SQS's names, mapped onto :class:`QueueAttributes` in
this one place: checked on CreateQueue and SetQueueAttributes, rendered by
GetQueueAttributes.

The attributes storage gives meaning to are fields; the rest (Policy, KMS,
server-side encryption, RedriveAllowPolicy, FifoThroughputLimit) are kept
verbatim in ``extras``, a JSON object, and handed back as given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import orjson

from wonderq.broker.sqs.addresses import name_of_arn
from wonderq.broker.sqs.faults import INVALID_ATTRIBUTE_NAME, INVALID_ATTRIBUTE_VALUE, SqsError
from wonderq.broker.sqs.message_attributes import valid_text
from wonderq.edge.params import natural
from wonderq.models import QueueAttributes, QueueStats
from wonderq.settings import MAX_RECEIVE_COUNT, MAX_WAIT, QUEUE_BOUNDS

# SQS name -> (field, low, high), for the attributes that are integers (the bounds are settings')
WIRE_NAMES = {"visibility_timeout": "VisibilityTimeout", "delay_seconds": "DelaySeconds",
              "retention_seconds": "MessageRetentionPeriod", "max_message_size": "MaximumMessageSize"}
NUMBERS = {WIRE_NAMES[field]: (field, low, high) for field, low, high in QUEUE_BOUNDS if field in WIRE_NAMES}
NUMBERS["ReceiveMessageWaitTimeSeconds"] = ("receive_wait_seconds", 0, MAX_WAIT)
KEPT = {  # kept in extras: name -> allowed values (None: any string)
    "Policy": None, "KmsMasterKeyId": None, "KmsDataKeyReusePeriodSeconds": None,
    "SqsManagedSseEnabled": ("true", "false"), "RedriveAllowPolicy": None,
}
FIFO_ONLY = {"ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}
THROUGHPUT = ("perQueue", "perMessageGroupId")
COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")
READ_ONLY = {*COUNTS, "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn"}
NAMES = {*NUMBERS, *KEPT, *FIFO_ONLY, *READ_ONLY, "RedrivePolicy", "FifoQueue"}


def bad_value(name: str, reason: str) -> SqsError:
    return SqsError(INVALID_ATTRIBUTE_VALUE, f"Invalid value for the parameter {name}. Reason: {reason}")


def apply(current: QueueAttributes, given: Mapping[str, object], fifo: bool, creating: bool) -> QueueAttributes:
    """``current`` with the ``given`` SQS attributes applied, each checked."""
    changes: dict[str, object] = {}
    stored = extras(current)
    for name, value in given.items():
        if name not in NAMES or name in READ_ONLY or (name == "FifoQueue" and not creating):
            raise SqsError(INVALID_ATTRIBUTE_NAME, f"Unknown or read-only attribute {name}.")
        if name in FIFO_ONLY and not fifo:
            raise SqsError(INVALID_ATTRIBUTE_NAME, f"Unknown Attribute {name}: only FIFO queues have it.")
        if not isinstance(value, str):
            raise bad_value(name, "attribute values are strings")
        if name in NUMBERS:
            field, low, high = NUMBERS[name]
            changes[field] = number(name, value, low, high)
        elif name == "RedrivePolicy":
            changes.update(redrive(value))
        elif name == "FifoQueue":
            if value.lower() != ("true" if fifo else "false"):
                raise bad_value(name, "a FIFO queue's name ends with .fifo, and only a FIFO queue's does")
        elif name == "ContentBasedDeduplication":
            changes["content_dedup"] = boolean(name, value)
        elif name == "DeduplicationScope":
            changes["dedup_by_group"] = choice(name, value, ("queue", "messageGroup")) == "messageGroup"
        elif name == "FifoThroughputLimit":
            stored[name] = choice(name, value, THROUGHPUT)
        elif value == "" and KEPT[name] is None:  # as SQS: an empty Policy (or the like) removes it
            stored.pop(name, None)
        else:
            stored[name] = kept(name, value)
    by_group = changes.get("dedup_by_group", current.dedup_by_group)
    asked = "FifoThroughputLimit" in given or "DeduplicationScope" in given  # a queue made before stays settable
    if asked and stored.get("FifoThroughputLimit") == "perMessageGroupId" and not by_group:
        raise bad_value("FifoThroughputLimit", "perMessageGroupId needs DeduplicationScope messageGroup.")
    changes["extras"] = orjson.dumps(stored).decode() if stored else None
    return dataclasses.replace(current, **changes)  # type: ignore[arg-type]


def number(name: str, value: str, low: int, high: int) -> int:
    n = natural(value.strip())
    if n is None or not low <= n <= high:
        raise bad_value(name, f"must be an integer from {low} to {high}.")
    return n


def boolean(name: str, value: str) -> bool:
    return choice(name, value.lower(), ("true", "false")) == "true"


def choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise bad_value(name, f"must be one of {', '.join(allowed)}.")
    return value


def kept(name: str, value: str) -> str:
    allowed = KEPT[name]
    if allowed is not None:
        return choice(name, value.lower(), allowed)
    if not valid_text(value):  # a Query client could not read it back
        raise bad_value(name, "it holds characters XML 1.0 does not allow.")
    if name == "Policy":
        document(name, value)
    elif name == "RedriveAllowPolicy":
        allow_policy(value)
    elif name == "KmsDataKeyReusePeriodSeconds":
        number(name, value, 60, 86_400)
    return value


def allow_policy(value: str) -> None:
    """RedriveAllowPolicy: ``redrivePermission`` allowAll, denyAll or byQueue, which names 1 to 10
    ``sourceQueueArns`` (and only byQueue names them)."""
    policy = document("RedriveAllowPolicy", value)
    permission = policy.get("redrivePermission")
    sources = policy.get("sourceQueueArns")
    if permission not in ("allowAll", "denyAll", "byQueue"):
        raise bad_value("RedriveAllowPolicy", "redrivePermission must be one of allowAll, denyAll, byQueue.")
    if permission == "byQueue" and not (isinstance(sources, list) and 1 <= len(sources) <= 10
                                        and all(isinstance(arn, str) for arn in sources)):
        raise bad_value("RedriveAllowPolicy", "byQueue needs sourceQueueArns: a list of 1 to 10 queue ARNs.")
    if permission != "byQueue" and sources is not None:
        raise bad_value("RedriveAllowPolicy", "sourceQueueArns is only for redrivePermission byQueue.")


def document(name: str, value: str) -> dict[str, object]:
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise bad_value(name, "not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise bad_value(name, "must be a JSON object.")
    return parsed


def redrive(value: str) -> dict[str, object]:
    """RedrivePolicy: ``{"deadLetterTargetArn": arn, "maxReceiveCount": n}``; empty removes it."""
    if value == "":
        return {"redrive_target": None, "max_receive_count": 0}
    policy = document("RedrivePolicy", value)
    count = policy.get("maxReceiveCount")
    n = natural(str(count)) if isinstance(count, int | str) else None
    if n is None or not 1 <= n <= MAX_RECEIVE_COUNT:
        raise bad_value("RedrivePolicy", f"maxReceiveCount must be an integer from 1 to {MAX_RECEIVE_COUNT}.")
    target = name_of_arn(policy.get("deadLetterTargetArn"), "deadLetterTargetArn")
    return {"redrive_target": target, "max_receive_count": n}


def extras(attributes: QueueAttributes) -> dict[str, str]:
    """The kept attributes; an empty one (stored by versions that kept ``Policy=""``) is none."""
    kept: dict[str, str] = orjson.loads(attributes.extras) if attributes.extras else {}
    return {name: value for name, value in kept.items() if value != ""}


def render(stats: QueueStats, arn: str, dlq_arn: str | None, names: Iterable[str]) -> dict[str, str]:
    """GetQueueAttributes: the attributes named (``All`` for every one)."""
    wanted = set(names)
    for name in wanted - {"All"}:
        if name not in NAMES:
            raise SqsError(INVALID_ATTRIBUTE_NAME, f"Unknown Attribute {name}.")
    queue, a = stats.queue, stats.queue.attributes
    values: dict[str, str] = {name: str(getattr(a, field)) for name, (field, _, _) in NUMBERS.items()}
    values |= {
        "ApproximateNumberOfMessages": str(stats.visible), "ApproximateNumberOfMessagesNotVisible":
        str(stats.in_flight), "ApproximateNumberOfMessagesDelayed": str(stats.delayed),
        "CreatedTimestamp": str(queue.created_at // 1000),
        "LastModifiedTimestamp": str((queue.modified_at or queue.created_at) // 1000), "QueueArn": arn,
        "SqsManagedSseEnabled": "false",
    }
    if a.redrive_target and dlq_arn:
        values["RedrivePolicy"] = orjson.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": a.max_receive_count}
        ).decode()
    if queue.fifo:
        values |= {
            "FifoQueue": "true", "ContentBasedDeduplication": str(a.content_dedup).lower(),
            "DeduplicationScope": "messageGroup" if a.dedup_by_group else "queue",
            "FifoThroughputLimit": "perQueue",
        }
    values |= extras(a)
    if "All" in wanted:
        return values
    return {name: values[name] for name in wanted if name in values}
