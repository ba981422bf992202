"""Errors shared by the broker, its storage backends and its clients.

Every error a client can cause maps to one HTTP status and one stable code, sent
as ``{"error": {"code": ..., "message": ...}}``::

    WonderQError                      500  internal_error
     ├── BadRequest                   400  bad_request
     │    └── InvalidParameter        400  invalid_parameter
     ├── Unauthorized                 401  unauthorized
     ├── Forbidden                    403  forbidden
     │    ├── OverLimit               403  over_limit
     │    └── Unsigned                403  forbidden   (a form with no Authorization header)
     ├── NotFound                     404  not_found
     │    ├── QueueNotFound           404  queue_not_found
     │    └── MessageNotFound         404  message_not_found
     ├── MethodNotAllowed             405  method_not_allowed
     ├── RequestTimeout               408  request_timeout
     ├── Conflict                     409  conflict
     │    ├── QueueExists             409  queue_exists
     │    └── StaleToken              409  stale_token
     ├── PayloadTooLarge              413  payload_too_large
     ├── TooManyRequests              429  too_many_requests
     ├── HeaderTooLarge               431  header_too_large
     └── Unavailable                  503  unavailable
          ├── TooManyConnections      503  too_many_connections
          └── BrokerUnreachable       (client side: no answer at all)

Each API at the edge renders these its own way (the REST API as the envelope
above); an error's ``headers`` go with it (``Allow`` on a 405, ``Retry-After``
on a 503). Clients raise the same classes, mapped back from the code in the envelope,
plus :class:`BrokerUnreachable` when the broker cannot be reached at all.
Backends raise these (they know whether a queue exists); the HTTP edge raises
the 400s while validating input. Anything else escaping a handler is a bug and
is answered with a bare 500 and logged, never with its traceback.
"""

from __future__ import annotations


class WonderQError(Exception):
    status = 500
    code = "internal_error"
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(self, message: str = "internal error") -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(WonderQError):
    status = 400
    code = "bad_request"


class InvalidParameter(BadRequest):
    code = "invalid_parameter"


class Unauthorized(WonderQError):
    """No key, or one that is unknown or revoked (a key without the scope is Forbidden)."""

    status = 401
    code = "unauthorized"
    headers = ((b"www-authenticate", b'Bearer realm="wonderq"'),)


class Forbidden(WonderQError):
    status = 403
    code = "forbidden"


class Unsigned(Forbidden):
    """A state change in a body any web page can send (a form, text) without an
    ``Authorization`` header. Its code is ``forbidden``; SQS says MissingAuthenticationToken."""


class OverLimit(Forbidden):
    """A cap was reached: the queues in a database, or the messages in flight in a queue."""

    code = "over_limit"


class NotFound(WonderQError):
    status = 404
    code = "not_found"


class QueueNotFound(NotFound):
    code = "queue_not_found"


class MessageNotFound(NotFound):
    code = "message_not_found"


class MethodNotAllowed(WonderQError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str = "method not allowed", allowed: list[str] | None = None) -> None:
        super().__init__(message)
        if allowed:
            self.headers = ((b"allow", ", ".join(allowed).encode()),)


class RequestTimeout(WonderQError):
    status = 408
    code = "request_timeout"


class Conflict(WonderQError):
    status = 409
    code = "conflict"


class QueueExists(Conflict):
    code = "queue_exists"


class StaleToken(Conflict):
    code = "stale_token"
    elsewhere = False  # the message is in another queue than the one named (backends/rules.refusal)


class PayloadTooLarge(WonderQError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(WonderQError):
    status = 429
    code = "too_many_requests"


class HeaderTooLarge(WonderQError):
    status = 431
    code = "header_too_large"


class Unavailable(WonderQError):
    status = 503
    code = "unavailable"


class TooManyConnections(Unavailable):
    code = "too_many_connections"


class BrokerUnreachable(Unavailable):
    code = "broker_unreachable"


BY_CODE: dict[str, type[WonderQError]] = {
    cls.code: cls
    for cls in (
        WonderQError, BadRequest, InvalidParameter, Unauthorized, Forbidden, OverLimit, NotFound, QueueNotFound,
        MessageNotFound, MethodNotAllowed, RequestTimeout, Conflict, QueueExists, StaleToken,
        PayloadTooLarge, TooManyRequests, HeaderTooLarge, Unavailable, TooManyConnections,
    )
}
