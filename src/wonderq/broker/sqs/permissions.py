"""AddPermission and RemovePermission, kept as the queue's ``Policy`` attribute:
one IAM policy document whose statements are the labels added. WonderQ keeps
and returns the policy; it does not enforce it (auth is the door's part)."""

from __future__ import annotations

import dataclasses

import orjson

from wonderq.broker.sqs import attributes
from wonderq.broker.sqs.calls import Call, Shape
from wonderq.broker.sqs.faults import invalid
from wonderq.broker.sqs.queues import QueueActions
from wonderq.models import QueueAttributes

LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
ACTIONS = {"*", "SendMessage", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility",
           "GetQueueAttributes", "GetQueueUrl", "ListDeadLetterSourceQueues", "PurgeQueue",
           "ListQueueTags"}


async def add_permission(queues: QueueActions, call: Call) -> Shape:
    queue = await queues.find(call.queue())
    label = call.required("Label")
    if not label or len(label) > 80 or not set(label) <= LABEL_CHARS:
        raise invalid("Label can only include alphanumeric characters, hyphens, or underscores (1 to 80).")
    accounts, actions = call.names("AWSAccountIds"), call.names("Actions")
    if not accounts or not actions or not set(actions) <= ACTIONS:
        raise invalid(f"AWSAccountIds and Actions are required; Actions are among {', '.join(sorted(ACTIONS))}.")
    arn = call.arn(queue.name)
    policy = current(queue.attributes) or {"Version": "2012-10-17", "Id": f"{arn}/SQSDefaultPolicy", "Statement": []}
    statements = statements_of(policy)
    if any(s.get("Sid") == label for s in statements):
        raise invalid(f"Value {label} for parameter Label is invalid. Reason: Already exists.")
    statements.append({
        "Sid": label, "Effect": "Allow",
        "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
        "Action": [f"SQS:{a}" for a in actions], "Resource": arn,
    })
    await store(queues, queue.id, queue.attributes, policy | {"Statement": statements})
    return {}


async def remove_permission(queues: QueueActions, call: Call) -> Shape:
    queue = await queues.find(call.queue())
    label = call.required("Label")
    policy = current(queue.attributes) or {}
    statements = statements_of(policy)
    kept = [s for s in statements if s.get("Sid") != label]
    if len(kept) == len(statements):
        raise invalid(f"Value {label} for parameter Label is invalid. Reason: can't find label.")
    await store(queues, queue.id, queue.attributes, policy | {"Statement": kept} if kept else None)
    return {}


def current(a: QueueAttributes) -> dict[str, object] | None:
    text = attributes.extras(a).get("Policy")
    return attributes.document("Policy", text) if text else None


def statements_of(policy: dict[str, object]) -> list[dict[str, object]]:
    found = policy.get("Statement", [])
    return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []


async def store(
    queues: QueueActions, queue_id: int, a: QueueAttributes, policy: dict[str, object] | None
) -> None:
    extras = attributes.extras(a)
    if policy is None:
        extras.pop("Policy", None)
    else:
        extras["Policy"] = orjson.dumps(policy).decode()
    text = orjson.dumps(extras).decode() if extras else None
    await queues.db.set_attributes(queue_id, dataclasses.replace(a, extras=text))
