"""StartMessageMoveTask, CancelMessageMoveTask and ListMessageMoveTasks over
:class:`~wonderq.broker.moves.MoveTasks`: queues named by ARN, tasks by an
opaque handle (base64 of the task id and the source ARN), SQS's errors."""

from __future__ import annotations

import base64

import orjson

from wonderq.broker.access import ADMIN
from wonderq.broker.moves import MAX_RATE, MoveTask, MoveTasks
from wonderq.broker.sqs.addresses import name_of_arn
from wonderq.broker.sqs.calls import Call, Shape
from wonderq.broker.sqs.faults import RESOURCE_NOT_FOUND, SqsError
from wonderq.errors import NotFound, QueueNotFound


def shape(task: MoveTask, call: Call) -> Shape:
    out: Shape = {
        "Status": task.status, "SourceArn": call.arn(task.source), "StartedTimestamp": task.started_at,
        "ApproximateNumberOfMessagesMoved": task.moved, "ApproximateNumberOfMessagesToMove": task.to_move,
    }
    if task.status == "RUNNING":
        out["TaskHandle"] = handle(task, call)
    if task.destination:
        out["DestinationArn"] = call.arn(task.destination)
    if task.rate:
        out["MaxNumberOfMessagesPerSecond"] = task.rate
    if task.failure:
        out["FailureReason"] = task.failure
    return out


def handle(task: MoveTask, call: Call) -> str:
    return base64.b64encode(orjson.dumps({"taskId": task.id, "sourceArn": call.arn(task.source)})).decode()


def not_found() -> SqsError:
    return SqsError(RESOURCE_NOT_FOUND, "The resource that you specified for the SourceArn parameter doesn't exist.")


class MoveActions:
    def __init__(self, tasks: MoveTasks) -> None:
        self.tasks = tasks

    async def start_message_move_task(self, call: Call) -> Shape:
        source = name_of_arn(call.required("SourceArn"), "SourceArn")
        destination_arn = call.string("DestinationArn", required=False)
        destination = name_of_arn(destination_arn, "DestinationArn") if destination_arn else None
        rate = call.integer("MaxNumberOfMessagesPerSecond", 1, MAX_RATE)
        try:
            task = await self.tasks.start(source, destination, rate, call.grant)
        except QueueNotFound:
            raise not_found() from None
        return {"TaskHandle": handle(task, call)}

    async def cancel_message_move_task(self, call: Call) -> Shape:
        try:
            task_id = str(orjson.loads(base64.b64decode(call.required("TaskHandle"), validate=True))["taskId"])
        except (ValueError, KeyError, TypeError):  # binascii's and orjson's errors, non-ASCII text: ValueErrors
            task_id = ""
        for task in self.tasks.tasks:  # the key must reach the queues of the task it stops
            if task.id == task_id:
                call.grant.check(ADMIN, task.source)
                call.grant.check(ADMIN, task.destination)
        try:
            task = self.tasks.cancel(task_id)
        except NotFound:
            raise SqsError(RESOURCE_NOT_FOUND, "The specified task does not exist or is not running.") from None
        return {"ApproximateNumberOfMessagesMoved": task.moved}

    async def list_message_move_tasks(self, call: Call) -> Shape:
        source = name_of_arn(call.required("SourceArn"), "SourceArn")
        limit = call.integer("MaxResults", 1, 10) or 1
        try:
            await self.tasks.db.get_queue(source)
        except QueueNotFound:
            raise not_found() from None
        return {"Results": [shape(t, call) for t in self.tasks.of(source)[:limit]]}
