"""The REST API described as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Built from the constants the handlers check against (``settings`` limits, the
queue name pattern, ``wire`` field names, ``models.ATTRIBUTES`` and the error
tree), so a limit changed there changes here too; ``tests/broker/test_openapi.py``
checks the document with a validator and against ``RestApi.routes()``, and
``tests/system/test_schemathesis.py`` fuzzes a running broker with it.

Every parameter may come in the query string, a JSON object body or a form
body (a form only with an ``Authorization`` header); the document lists them
where a client would usually put them: in the query string of a GET or DELETE,
in the body (JSON or form) of a POST. A parameter is given once: repeated in the
query string or a form it is refused, and in both the query string and the body
only with the same value. Every operation but the health checks and
this document takes the ``bearer`` security scheme (an API key), needed once
any key exists.
"""

from __future__ import annotations

from functools import cache

from wonderq.broker import wire
from wonderq.broker.moves import MAX_RATE
from wonderq.broker.names import QUEUE_NAME
from wonderq.errors import BY_CODE, WonderQError
from wonderq.models import ATTRIBUTES, QueueAttributes
from wonderq.settings import (
    MAX_BATCH,
    MAX_DELAY,
    MAX_ID,
    MAX_PEEK,
    MAX_REQUEST_BYTES,
    MAX_VISIBILITY,
    MAX_WAIT,
    QUEUE_BOUNDS,
)

Schema = dict[str, object]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
METRICS_TYPE = "text/plain"
DEFAULTS = QueueAttributes()
BOUNDS = {name: (low, high) for name, low, high in QUEUE_BOUNDS}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def integer(low: int, high: int, default: int | None = None, description: str = "") -> Schema:
    schema: Schema = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    if description:
        schema["description"] = description
    return schema


def nullable(kind: str, **more: object) -> Schema:
    return {"type": [kind, "null"], **more}


NAME: Schema = {
    "type": "string", "pattern": f"^(?:{QUEUE_NAME.pattern})$",
    "description": "1-80 letters, digits, '-' and '_' (a '.fifo' suffix allowed), not all digits",
    "examples": ["jobs"],
}
QUEUE_ID = integer(1, MAX_ID)
TIME: Schema = {"type": "string", "format": "date-time", "description": "ISO 8601 in UTC, to the millisecond"}
COUNT: Schema = {"type": "integer", "minimum": 0}


def _attribute(name: str) -> Schema:
    if name == "redrive_target":
        return NAME | {"description": "the dead-letter queue's name (it must exist)"}
    low, high = BOUNDS[name]
    return integer(low, high, getattr(DEFAULTS, name))


def _queue() -> Schema:
    properties: dict[str, Schema] = {
        "id": QUEUE_ID, "name": {"type": "string"}, "created_at": TIME,
        **{name: _attribute(name) for name in ATTRIBUTES},
        "redrive_target": nullable("string"),
        "receive_wait_seconds": integer(0, MAX_WAIT),
        "fifo": {"type": "boolean"},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    return {"type": "object", "required": list(properties), "properties": properties}


def _stats() -> Schema:
    counts: dict[str, Schema] = {
        wire.MESSAGES: COUNT, wire.VISIBLE: COUNT, wire.IN_FLIGHT: COUNT, wire.DELAYED: COUNT,
        wire.OLDEST_AGE: nullable("number", minimum=0, description="seconds since the oldest message was sent"),
        "sent": COUNT, "received": COUNT, "deleted": COUNT, "expired": COUNT,
    }
    return {"allOf": [ref("Queue"), {"type": "object", "required": list(counts), "properties": counts}]}


def _message() -> Schema:
    properties: dict[str, Schema] = {
        "id": QUEUE_ID, "message_id": {"type": "string", "format": "uuid"}, "queue_id": QUEUE_ID,
        "body": {"type": "string"}, "created_at": TIME, wire.VISIBLE_AT: TIME,
        wire.TOKEN: nullable("string", description="needed to delete it or change its visibility"),
        "receive_count": COUNT, "first_received_at": nullable("string", format="date-time"),
    }
    return {"type": "object", "required": list(properties), "properties": properties}


def _error() -> Schema:
    codes = sorted(code for code, cls in BY_CODE.items() if cls is not WonderQError)
    return {
        "type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string", "enum": codes}, "message": {"type": "string"}},
        }},
    }


def _sent() -> Schema:
    return {"type": "object", "required": ["id", "message_id"],
            "properties": {"id": QUEUE_ID, "message_id": {"type": "string", "format": "uuid"}}}


def _deleted() -> Schema:
    entry = {"type": "object", "required": ["id", "deleted"], "properties": {
        "id": QUEUE_ID, "deleted": {"type": "boolean"},
        "error": {"$ref": "#/components/schemas/Error/properties/error"},
    }}
    return {"type": "object", "required": ["deleted", "messages"], "properties": {
        "deleted": COUNT, "messages": {"type": "array", "items": entry, "minItems": 1, "maxItems": MAX_BATCH}}}


def _schemas() -> dict[str, Schema]:
    return {
        "Queue": _queue(),
        "QueueStats": _stats(),
        "Message": _message(),
        "PeekedMessage": {"allOf": [ref("Message"), {
            "type": "object", "required": ["state"],
            "properties": {"state": {"enum": ["visible", "in_flight", "delayed"]}, wire.TOKEN: {"type": "null"}},
        }]},
        "Sent": _sent(),
        "SentBatch": {"type": "object", "required": ["ids", "messages"], "properties": {
            "ids": {"type": "array", "items": QUEUE_ID, "minItems": 1, "maxItems": MAX_BATCH},
            "messages": {"type": "array", "items": ref("Sent"), "minItems": 1, "maxItems": MAX_BATCH},
        }},
        "Success": {"type": "object", "required": ["success"], "properties": {"success": {"const": True}}},
        "Error": _error(),
    }


# -- parameters ---------------------------------------------------------------------

BODY: Schema = {"type": "string", "minLength": 1, "description": "UTF-8, up to the queue's max_message_size bytes;"
                " no NUL character"}
DELAY = integer(0, MAX_DELAY, description="seconds before it can be received (default: the queue's)")
TOKEN: Schema = {"type": "string", "minLength": 1,
                 "description": "the reservation_token of the receive that holds the message"}
QUEUE_REF = {
    "queue_id": QUEUE_ID | {"description": "the queue's id (or give queue_name)"},
    "queue_name": NAME | {"description": "the queue's name (or give queue_id)"},
}


def query(name: str, schema: Schema, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def path(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


QUEUE_PATH = path("queue", {"type": "string", "pattern": f"^(?:[0-9]{{1,19}}|{QUEUE_NAME.pattern})$",
                            "examples": ["jobs", "1"]},
                  "the queue's id (all digits) or its name")
MESSAGE_PATH = path("message", QUEUE_ID, "the message's id")


def body(properties: dict[str, Schema], required: tuple[str, ...] = (), *, needed: bool = True,
         any_of: list[Schema] | None = None, json_only: tuple[str, ...] = ()) -> Schema:
    """A request body, as JSON or as a form: the same fields (a form's values are
    text), but for those in ``json_only``, which a form cannot express."""

    def schema(names: list[str]) -> Schema:
        out: Schema = {"type": "object", "properties": {name: properties[name] for name in names}}
        if required:
            out["required"] = list(required)
        if any_of:
            out["anyOf"] = any_of
        if json_only and names == list(properties):  # the JSON form: a body or a batch, not both
            out["allOf"] = [{"oneOf": [{"required": ["body"]}, {"required": list(json_only)}]}]
        elif json_only:
            out["required"] = ["body"]
        return out

    return {
        "required": needed,
        "description": "JSON object or form fields (a form only with an Authorization header); the query"
                       " string is read too: a parameter in both must have the same value in both",
        "content": {JSON: {"schema": schema(list(properties))},
                    FORM: {"schema": schema([name for name in properties if name not in json_only])}},
    }


def _send_body() -> Schema:
    one = {"type": "object", "required": ["body"], "properties": {"body": BODY, "delay_seconds": DELAY}}
    properties: dict[str, Schema] = {
        **QUEUE_REF, "body": BODY, "delay_seconds": DELAY,
        "messages": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": one,
                     "description": "a batch, stored in one transaction (JSON only; not with body)"},
    }
    refs: list[Schema] = [{"required": ["queue_id"]}, {"required": ["queue_name"]}]
    return body(properties, any_of=refs, json_only=("messages",))


# -- responses ----------------------------------------------------------------------

ERRORS = {
    400: "bad request: malformed JSON or form, a missing parameter, one that is not an integer or"
         " out of bounds, a bad queue name, one the operation does not take, one given twice (repeated,"
         " or with different values in the query string and the body), two that contradict each other",
    401: "authentication is on and the request has no API key, or an unknown or revoked one",
    403: "the key lacks the scope or does not reach the queue; refused by the door (a foreign Host,"
         " a state change from another origin, or a form or text/plain body without an Authorization header);"
         " or at a cap (over_limit: a create past --max-queues, a consume of a queue past --max-in-flight)",
    404: "no such queue or message",
    408: "the request's headers or body came too slowly",
    409: "the queue exists already, or the token is stale",
    413: f"the body is over the queue's max_message_size, or the request over {MAX_REQUEST_BYTES} bytes",
    431: "the request line and headers are over the broker's --max-header-bytes",
    503: "the database cannot be reached, or the broker is at a limit (Retry-After: 1)",
}
ALWAYS = (400, 403, 408, 413, 431, 503)  # any request may get these, from the edge
SECURED = 401  # any request needing a key may get this
OPEN: list[Schema] = []  # the security of an operation that needs no key


def errors(*statuses: int) -> dict[str, Schema]:
    return {str(status): {"$ref": f"#/components/responses/E{status}"} for status in sorted({*ALWAYS, *statuses})}


def ok(description: str, schema: Schema, *statuses: int, secured: bool = True) -> dict[str, Schema]:
    responses: dict[str, Schema] = {"200": {"description": description, "content": {JSON: {"schema": schema}}}}
    return responses | errors(*statuses, *((SECURED,) if secured else ()))


def head(op_id: str, summary: str) -> Schema:
    """A HEAD twin of a health check: the same status, no body."""
    return {"operationId": op_id, "summary": summary, "tags": ["health"], "security": OPEN,
            "responses": {"200": {"description": "healthy; no body"}, **errors()}}


def operation(op_id: str, summary: str, responses: dict[str, Schema], *, parameters: list[Schema] | None = None,
              request: Schema | None = None, tags: tuple[str, ...] = ("queues",)) -> Schema:
    op: Schema = {"operationId": op_id, "summary": summary, "tags": list(tags), "responses": responses}
    if SECURED not in (int(status) for status in responses):
        op["security"] = OPEN
    if parameters:
        op["parameters"] = parameters
    if request:
        op["requestBody"] = request
    return op


def _paths() -> dict[str, dict[str, Schema]]:
    create = {
        "name": NAME, **{name: _attribute(name) for name in ATTRIBUTES},
    }
    consume = [
        query("queue_id", QUEUE_REF["queue_id"]), query("queue_name", QUEUE_REF["queue_name"]),
        query("size", integer(1, MAX_BATCH, 1)),
        query("wait_time", integer(0, MAX_WAIT, MAX_WAIT, "seconds of long polling")),
        query("visibility_timeout", integer(0, MAX_VISIBILITY, description="default: the queue's")),
    ]
    return {
        "/queues": {
            "get": operation("listQueues", "Every queue with its counts", ok(
                "the queues, by id", {"type": "array", "items": ref("QueueStats")})),
            "post": operation("createQueue", "Create a queue", ok("the queue", ref("Queue"), 409),
                              request=body(create, ("name",))),
        },
        "/queues/find": {
            "get": operation("findQueue", "Find a queue by name or id", ok("the queue", ref("Queue"), 404),
                             parameters=[query("name", NAME), query("id", QUEUE_ID)]),
        },
        "/queues/{queue}": {
            "delete": operation("deleteQueue", "Delete a queue and its messages",
                                ok("deleted", ref("Success"), 404), parameters=[QUEUE_PATH]),
        },
        "/queues/{queue}/purge": {
            "post": operation("purgeQueue", "Delete every message of a queue", ok("purged", {
                "type": "object", "required": ["success", "purged"],
                "properties": {"success": {"const": True}, "purged": COUNT}}, 404), parameters=[QUEUE_PATH]),
        },
        "/queues/{queue}/move": {
            "post": operation("startMove", "Move a dead-letter queue's messages back (a move task)", ok("started", {
                "type": "object", "required": ["task", "status", "source", "destination", "to_move"],
                "properties": {"task": {"type": "string"}, "status": {"type": "string"}, "source": NAME,
                               "destination": nullable("string"), "to_move": COUNT}}, 404),
                parameters=[QUEUE_PATH], request=body({
                    "destination": NAME | {"description": "default: each message back to its origin"},
                    "rate": integer(1, MAX_RATE, description="messages a second (default: as fast as it goes)"),
                }, needed=False)),
        },
        "/queues/{queue}/messages": {
            "get": operation("peek", "A queue's messages, without receiving them", ok(
                "up to size messages with id > after, in id order; fewer once their bodies pass 8 MiB",
                {"type": "array", "items": ref("PeekedMessage")},
                404), parameters=[QUEUE_PATH, query("size", integer(1, MAX_PEEK, 10)),
                                  query("after", integer(0, MAX_ID, 0))]),
        },
        "/messages": {
            "post": operation("send", "Send a message, or a batch of up to MAX_BATCH", ok(
                "the id and message_id of each", {"anyOf": [ref("Sent"), ref("SentBatch")]}, 404),
                request=_send_body(), tags=("messages",)),
        },
        "/messages/consume": {
            "get": operation("consume", "Receive messages, waiting up to wait_time for some", ok(
                "the messages, each with a fresh reservation_token",
                {"type": "array", "items": ref("Message"), "maxItems": MAX_BATCH}, 404),
                parameters=consume, tags=("messages",)),
        },
        "/messages/delete": {
            "post": operation("deleteMessages", "Delete up to MAX_BATCH messages, each answered on its own", ok(
                "each entry in order: deleted, or the error that kept it", _deleted()), tags=("messages",),
                request={"required": True, "description": "a JSON object (a form cannot carry the list)",
                         "content": {JSON: {"schema": {"type": "object", "required": ["messages"], "properties": {
                             "messages": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": {
                                 "type": "object", "required": ["id"], "additionalProperties": False,
                                 "properties": {"id": QUEUE_ID, wire.TOKEN: TOKEN}}}}}}}}),
        },
        "/messages/{message}": {
            "delete": operation("deleteMessage", "Delete a message (with its token: only if it is current)",
                                ok("deleted", ref("Success"), 404, 409), tags=("messages",),
                                parameters=[MESSAGE_PATH, query(wire.TOKEN, TOKEN)]),
        },
        "/messages/{message}/visibility": {
            "post": operation("changeVisibility", "Change a held message's visibility timeout", ok(
                "the message", ref("Message"), 404, 409), tags=("messages",), parameters=[MESSAGE_PATH],
                request=body({wire.TOKEN: TOKEN, "visibility_timeout": integer(0, MAX_VISIBILITY)},
                             (wire.TOKEN, "visibility_timeout"))),
        },
        "/healthz": {"get": operation("healthz", "The process answers", ok("ok", {
            "type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}, secured=False),
            tags=("health",)),
            "head": head("healthzHead", "The process answers (a load balancer's check, no body)")},
        "/readyz": {"get": operation("readyz", "The database answers", ok("ready", {
            "type": "object", "required": ["status"], "properties": {"status": {"const": "ready"}}}, secured=False),
            tags=("health",)),
            "head": head("readyzHead", "The database answers (no body)")},
        "/metrics": {"get": operation("metrics", "Prometheus metrics", {
            "200": {"description": "the text exposition format", "content": {METRICS_TYPE: {"schema": {
                "type": "string"}}}},
            **errors(SECURED)}, tags=("health",))},
        "/openapi.json": {"get": operation("openapi", "This document", {
            "200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}},
            **errors()}, tags=("health",))},
    }


@cache
def document() -> Schema:
    """The OpenAPI 3.1 document (built once; the handler serves it as JSON)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "WonderQ REST API",
            "version": "1",
            "description": (
                "A durable, SQS-style message broker. Parameters go in the query string, a JSON object body"
                " or a form body; every response is JSON, every error the envelope"
                ' {"error": {"code", "message"}}. The same port also serves the Amazon SQS API'
                " (POST / with X-Amz-Target, or Action= in a form; AWS JSON and Query protocols),"
                " which this document does not describe: see docs/sqs.md. Once any API key exists"
                " (wonderq keys create), every operation but the health checks and this document needs"
                " one: Authorization: Bearer wq_<id>_<secret>."
            ),
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "wq_<id>_<secret>",
                "description": "an API key from `wonderq keys create`; a key has a scope (read, write, admin)"
                               " and may be limited to some queues (403 beyond them)",
            }},
            "schemas": _schemas(),
            "responses": {
                f"E{status}": {"description": text, "content": {JSON: {"schema": ref("Error")}}}
                for status, text in ERRORS.items()
            },
        },
    }
