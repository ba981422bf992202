"""The AWS JSON 1.0 protocol: ``POST /`` with ``X-Amz-Target: AmazonSQS.<Action>``
and a JSON body; answered in JSON (``application/x-amz-json-1.0``).

Errors carry ``__type`` and ``message``, and the legacy Query code in
``x-amzn-query-error: <code>;Sender|Receiver``, which boto3 (since botocore
1.34.90) and the other current SDKs read to raise the modelled exception.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable, Mapping

import orjson

from wonderq.broker.sqs.calls import Call, Shape
from wonderq.broker.sqs.faults import UNKNOWN_OPERATION, SqsError, explain, invalid
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response
from wonderq.errors import WonderQError

TARGET = "AmazonSQS."
CONTENT_TYPE = b"application/x-amz-json-1.0"
Action = Callable[[Call], Awaitable[Shape]]
Actions = Mapping[str, tuple[Action, str]]  # SQS's action name -> (the action, the scope it needs)
Context = Callable[[Request, str, Mapping[str, object], bool], Call]  # (..., its strings are valid text)


_RANDOM = os.urandom(10).hex()
_PREFIX = f"{_RANDOM[:8]}-{_RANDOM[8:12]}-{_RANDOM[12:16]}-{_RANDOM[16:20]}-".encode()
_COUNTER = itertools.count()


def request_id() -> tuple[bytes, bytes]:
    """``x-amzn-RequestId``: shaped as a UUID, unique per process start and request."""
    return (b"x-amzn-requestid", _PREFIX + b"%012x" % (next(_COUNTER) & 0xFFFF_FFFF_FFFF))


def action_of(request: Request) -> str:
    target = request.header(b"x-amz-target") or b""
    return target.decode("latin-1").removeprefix(TARGET)


async def handle(request: Request, actions: Actions, context: Context) -> Response:
    name = action_of(request)
    if name not in actions:
        raise SqsError(UNKNOWN_OPERATION, f"The action {name} is not valid for this endpoint.")
    body = request.body
    try:
        payload = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise invalid("The request body must be a JSON object.")
    result = await actions[name][0](context(request, name, payload, valid_text(body)))
    return Response(orjson.dumps(result), 200, CONTENT_TYPE, (request_id(),))


def valid_text(body: bytes) -> bool:
    """Whether every string in this JSON body holds only characters SQS allows (XML 1.0's),
    from two scans of the bytes for one byte each. The refused characters are the ASCII
    controls, which JSON text holds only escaped (after a backslash); the surrogates, which
    valid UTF-8 (all that orjson reads) holds not at all; and U+FFFE and U+FFFF, whose UTF-8
    begins with 0xEF. (A search for two bytes, an escape's, costs 25 times one for a byte; and
    ``bytes in bytes`` first tries its operand as an int, raising and formatting a TypeError,
    so find() it is.) False only means the actions check each string themselves."""
    return body.find(b"\\") < 0 and body.find(b"\xef") < 0


def render_error(exc: WonderQError) -> Response:
    fault, message = explain(exc)
    body = orjson.dumps({"__type": f"com.amazonaws.sqs#{fault.code}", "message": message})
    query_error = f"{fault.legacy};{'Sender' if fault.sender else 'Receiver'}".encode()
    headers = (request_id(), (b"x-amzn-query-error", query_error), *exc.headers)
    return Response(body, fault.status, CONTENT_TYPE, headers)
