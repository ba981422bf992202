"""The Amazon SQS API on the broker's port, beside the REST API, on the same queues.

Two wire protocols, one module each (``awsjson``, ``query``), decode a request
into a :class:`~wonderq.broker.sqs.calls.Call` in the JSON protocol's shape
and encode the result; the actions (``queues``, ``permissions``, ``messages``,
``moves``) check it and call the backend directly. :data:`SqsApi.actions` is
the one table of SQS action names, with the scope each needs.

With a credentials file (``--sqs-credentials``), every request must carry an
AWS Signature Version 4 of one of its keys (``signatures``); the key's grant
must then have the action's scope and reach every queue the call names. Without
one, a Query sent as a GET may only read (an action of scope ``READ``) or act on a
receipt handle (:data:`BY_HANDLE`): any web page can aim an ``<img>`` at a GET, and
browsers older than ``Sec-Fetch-Site`` (which the guard checks) say nothing of where
it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import orjson

from wonderq.backends.base import Backend
from wonderq.broker.access import ADMIN, OPEN, READ, WRITE, Grant
from wonderq.broker.caps import InFlightCap
from wonderq.broker.moves import MoveTasks
from wonderq.broker.sqs import awsjson, permissions, query, signatures
from wonderq.broker.sqs.addresses import name_of_arn
from wonderq.broker.sqs.awsjson import Actions
from wonderq.broker.sqs.calls import Call
from wonderq.broker.sqs.faults import ACCESS_DENIED, SqsError
from wonderq.broker.sqs.messages import MessageActions
from wonderq.broker.sqs.moves import MoveActions
from wonderq.broker.sqs.queues import QueueActions
from wonderq.broker.sqs.signatures import Keys
from wonderq.clock import Clock
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response
from wonderq.edge.routing import Api, Route, form_field, header
from wonderq.settings import Settings

BY_NAME = ("CreateQueue", "GetQueueUrl")  # the actions that name their queue by QueueName
BY_ARN = ("StartMessageMoveTask", "ListMessageMoveTasks")  # by SourceArn (and DestinationArn)
NO_QUEUE = ("ListQueues", "CancelMessageMoveTask")  # ListQueues filters; a cancel checks its task's queues
# changes of state a GET may still ask for unsigned: each needs a receipt handle no web page can know
# (kombu's own requests, on a botocore that speaks Query, send them as GETs)
BY_HANDLE = ("DeleteMessage", "ChangeMessageVisibility")


class SqsApi:
    """``required`` says whether every request must be signed even with no credentials file
    (then none can be): authentication on elsewhere. With neither, any signature is accepted,
    from this machine's clients only (``local`` refuses the rest)."""

    def __init__(self, backend: Backend, settings: Settings, clock: Clock, moves: MoveTasks, in_flight: InFlightCap,
                 required: Callable[[], bool] = lambda: False,
                 local: Callable[[Request], None] = lambda _: None) -> None:
        self.settings = settings
        self.clock = clock
        self.required = required
        self.local = local  # with auth off: refuses what a proxy forwarded (KeyRing.check_local)
        self.keys: Keys = {}  # settings.sqs_credentials, read by load_keys() at start
        queues = QueueActions(backend, clock)
        messages = MessageActions(backend, queues, in_flight)
        tasks = MoveActions(moves)
        self.actions: Actions = {  # each SQS action, and the scope a key needs for it (broker/access.py)
            "CreateQueue": (queues.create_queue, ADMIN), "GetQueueUrl": (queues.get_queue_url, READ),
            "ListQueues": (queues.list_queues, READ), "DeleteQueue": (queues.delete_queue, ADMIN),
            "GetQueueAttributes": (queues.get_queue_attributes, READ),
            "SetQueueAttributes": (queues.set_queue_attributes, ADMIN), "PurgeQueue": (queues.purge_queue, ADMIN),
            "ListDeadLetterSourceQueues": (queues.list_dead_letter_source_queues, READ),
            "TagQueue": (queues.tag_queue, ADMIN), "UntagQueue": (queues.untag_queue, ADMIN),
            "ListQueueTags": (queues.list_queue_tags, READ),
            "AddPermission": (partial(permissions.add_permission, queues), ADMIN),
            "RemovePermission": (partial(permissions.remove_permission, queues), ADMIN),
            "SendMessage": (messages.send_message, WRITE), "SendMessageBatch": (messages.send_message_batch, WRITE),
            "ReceiveMessage": (messages.receive_message, WRITE), "DeleteMessage": (messages.delete_message, WRITE),
            "DeleteMessageBatch": (messages.delete_message_batch, WRITE),
            "ChangeMessageVisibility": (messages.change_message_visibility, WRITE),
            "ChangeMessageVisibilityBatch": (messages.change_message_visibility_batch, WRITE),
            "StartMessageMoveTask": (tasks.start_message_move_task, ADMIN),
            "CancelMessageMoveTask": (tasks.cancel_message_move_task, ADMIN),
            "ListMessageMoveTasks": (tasks.list_message_move_tasks, READ),
        }

    def load_keys(self) -> None:
        """Read the credentials file (once, at start: the broker's lifespan); CredentialsError if unusable."""
        path = self.settings.sqs_credentials
        self.keys = signatures.load_keys(path) if path else {}

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
        return await awsjson.handle(request, self.actions, partial(self.call, self.grant(request)))

    async def query(self, request: Request) -> Response:
        return await query.handle(request, self.actions, partial(self.call, self.grant(request)))

    def grant(self, request: Request) -> Grant:
        """What the request's signer may do: checked when there are keys or they are required."""
        if not self.keys and not self.required():
            self.local(request)
            return OPEN
        return signatures.verify(request, self.keys, self.settings.region, self.clock.now_ms())

    def call(self, grant: Grant, request: Request, action: str, payload: Mapping[str, object],
             valid_text: bool) -> Call:
        host = (request.header(b"host") or f"127.0.0.1:{self.settings.port}".encode()).decode("latin-1")
        call = Call(action, payload, host, self.settings.account_id, self.settings.region, request.disconnected,
                    request.args.get("queue"), grant, valid_text)
        scope = self.actions[action][1]
        if grant is OPEN and request.method == "GET" and scope != READ and action not in BY_HANDLE:
            raise SqsError(ACCESS_DENIED, f"{action} changes state, so it is not taken as a GET here unless"
                           " signatures are checked (--sqs-credentials): a web page can aim a GET at this"
                           " port. Send it as a POST")
        if grant is not OPEN:
            grant.check(scope)
            for queue in queues_of(call):
                grant.check(scope, queue)
        return call


def queues_of(call: Call) -> list[str]:
    """The queues a call names: its own, a move task's, a dead-letter target it sets."""
    if call.action in NO_QUEUE:
        return []
    if call.action in BY_ARN:
        return [name_of_arn(call.input[f], f) for f in ("SourceArn", "DestinationArn") if call.input.get(f)]
    return [call.required("QueueName") if call.action in BY_NAME else call.queue(), *redrive_target(call)]


def redrive_target(call: Call) -> list[str]:
    """The dead-letter queue a CreateQueue or SetQueueAttributes points its queue at."""
    attributes = call.input.get("Attributes")
    policy = attributes.get("RedrivePolicy") if isinstance(attributes, Mapping) else None
    if not isinstance(policy, str):
        return []
    try:
        return [name_of_arn(orjson.loads(policy)["deadLetterTargetArn"])]
    except (orjson.JSONDecodeError, KeyError, TypeError, SqsError):
        return []  # not a policy: the action says so
