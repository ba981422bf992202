"""The Amazon SQS API on the broker's port, beside the REST API, on the same queues.

Two wire protocols, one module each (``awsjson``, ``query``), decode a request
into a :class:`~wonderq.broker.sqs.calls.Call` in the JSON protocol's shape
and encode the result; the actions (``queues``, ``permissions``, ``messages``,
``moves``) check it and call the backend directly. :data:`SqsApi.actions` is
the one table of SQS action names.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from wonderq.backends.base import Backend
from wonderq.broker.caps import InFlightCap
from wonderq.broker.moves import MoveTasks
from wonderq.broker.sqs import awsjson, permissions, query
from wonderq.broker.sqs.awsjson import Action
from wonderq.broker.sqs.calls import Call
from wonderq.broker.sqs.messages import MessageActions
from wonderq.broker.sqs.moves import MoveActions
from wonderq.broker.sqs.queues import QueueActions
from wonderq.clock import Clock
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response
from wonderq.edge.routing import Api, Route, form_field, header
from wonderq.settings import Settings


class SqsApi:
    def __init__(
        self, backend: Backend, settings: Settings, clock: Clock, moves: MoveTasks, in_flight: InFlightCap
    ) -> None:
        self.settings = settings
        queues = QueueActions(backend, clock)
        messages = MessageActions(backend, queues, in_flight)
        tasks = MoveActions(moves)
        self.actions: Mapping[str, Action] = {
            "CreateQueue": queues.create_queue, "GetQueueUrl": queues.get_queue_url,
            "ListQueues": queues.list_queues, "DeleteQueue": queues.delete_queue,
            "GetQueueAttributes": queues.get_queue_attributes, "SetQueueAttributes": queues.set_queue_attributes,
            "PurgeQueue": queues.purge_queue, "ListDeadLetterSourceQueues": queues.list_dead_letter_source_queues,
            "TagQueue": queues.tag_queue, "UntagQueue": queues.untag_queue, "ListQueueTags": queues.list_queue_tags,
            "AddPermission": partial(permissions.add_permission, queues),
            "RemovePermission": partial(permissions.remove_permission, queues),
            "SendMessage": messages.send_message, "SendMessageBatch": messages.send_message_batch,
            "ReceiveMessage": messages.receive_message, "DeleteMessage": messages.delete_message,
            "DeleteMessageBatch": messages.delete_message_batch,
            "ChangeMessageVisibility": messages.change_message_visibility,
            "ChangeMessageVisibilityBatch": messages.change_message_visibility_batch,
            "StartMessageMoveTask": tasks.start_message_move_task,
            "CancelMessageMoveTask": tasks.cancel_message_move_task,
            "ListMessageMoveTasks": tasks.list_message_move_tasks,
        }

    def apis(self) -> list[Api]:
        """The JSON protocol's route and the Query protocol's, each with its error format."""
        target, action = header("x-amz-target", awsjson.TARGET), form_field("Action")
        json_routes = [Route("POST", "/", self.json, when=target)]
        query_routes = [
            Route(method, path, self.query, when=action, changes_state=True)
            for method in ("POST", "GET") for path in ("/", "/{account}/{queue}")
        ]
        return [Api(json_routes, awsjson.render_error), Api(query_routes, query.render_error)]

    async def json(self, request: Request) -> Response:
        return await awsjson.handle(request, self.actions, self.call)

    async def query(self, request: Request) -> Response:
        return await query.handle(request, self.actions, self.call)

    def call(self, request: Request, action: str, payload: Mapping[str, object]) -> Call:
        host = (request.header(b"host") or f"127.0.0.1:{self.settings.port}".encode()).decode("latin-1")
        return Call(action, payload, host, self.settings.account_id, self.settings.region, request.disconnected,
                    request.args.get("queue"))
