"""SQS's errors: each a code, the legacy Query code, an HTTP status and who is at fault.

Both wire protocols render the same :class:`Fault`: over JSON as ``__type`` plus
the ``x-amzn-query-error: <legacy code>;Sender|Receiver`` header (the service
model is ``awsQueryCompatible``, so botocore maps the legacy code back to its
modelled exception); over Query as the legacy code in an XML ``<Error>``.

The edge raises :class:`SqsError` with a fault for what only SQS defines; the
core tree of :mod:`wonderq.errors` (raised by backends and by the shared
parameter checks) is mapped by :func:`fault_of`, and :func:`explain` gives the
faults SQS words its own way (:data:`SAID`) SQS's words instead of the core
error's (which may name internal ids)::

    WonderQError ─ SqsError(fault)      the faults below, raised by broker/sqs/
    QueueNotFound                       → QueueDoesNotExist
    QueueExists                         → QueueNameExists
    StaleToken, MessageNotFound         → ReceiptHandleIsInvalid
    BadRequest, InvalidParameter,
    PayloadTooLarge                     → InvalidParameterValue
    OverLimit                           → OverLimit
    Unsigned                            → MissingAuthenticationToken
    Forbidden                           → AccessDenied
    Unauthorized                        → MissingAuthenticationToken
    NotFound, MethodNotAllowed          → InvalidAction
    TooManyRequests                     → RequestThrottled
    RequestTimeout                      → RequestTimeout (408; botocore retries it)
    Unavailable                         → ServiceUnavailable
    anything else                       → InternalError
"""

from __future__ import annotations

from dataclasses import dataclass

from wonderq import errors
from wonderq.errors import WonderQError

LEGACY = "AWS.SimpleQueueService."


@dataclass(frozen=True, slots=True)
class Fault:
    code: str  # the modelled shape name: JSON's __type, boto3's exception class
    legacy: str  # the Query protocol's code, sent over JSON in x-amzn-query-error
    status: int = 400
    sender: bool = True  # the client's fault (Sender) or the service's (Receiver)


def fault(code: str, legacy: str | None = None, status: int = 400, sender: bool = True) -> Fault:
    return Fault(code, legacy or code, status, sender)


QUEUE_DOES_NOT_EXIST = fault("QueueDoesNotExist", LEGACY + "NonExistentQueue")
QUEUE_NAME_EXISTS = fault("QueueNameExists", "QueueAlreadyExists")
INVALID_PARAMETER_VALUE = fault("InvalidParameterValue")
MISSING_PARAMETER = fault("MissingParameter")
INVALID_ATTRIBUTE_NAME = fault("InvalidAttributeName")
INVALID_ATTRIBUTE_VALUE = fault("InvalidAttributeValue")
INVALID_MESSAGE_CONTENTS = fault("InvalidMessageContents")
RECEIPT_HANDLE_IS_INVALID = fault("ReceiptHandleIsInvalid", status=404)  # the Smithy model's status
PURGE_QUEUE_IN_PROGRESS = fault("PurgeQueueInProgress", LEGACY + "PurgeQueueInProgress", 403)
EMPTY_BATCH_REQUEST = fault("EmptyBatchRequest", LEGACY + "EmptyBatchRequest")
TOO_MANY_ENTRIES = fault("TooManyEntriesInBatchRequest", LEGACY + "TooManyEntriesInBatchRequest")
BATCH_IDS_NOT_DISTINCT = fault("BatchEntryIdsNotDistinct", LEGACY + "BatchEntryIdsNotDistinct")
INVALID_BATCH_ENTRY_ID = fault("InvalidBatchEntryId", LEGACY + "InvalidBatchEntryId")
BATCH_REQUEST_TOO_LONG = fault("BatchRequestTooLong", LEGACY + "BatchRequestTooLong")
RESOURCE_NOT_FOUND = fault("ResourceNotFoundException", status=404)
OVER_LIMIT = fault("OverLimit", status=403)
INVALID_ACTION = fault("InvalidAction")
UNKNOWN_OPERATION = fault("UnknownOperationException", "InvalidAction")
ACCESS_DENIED = fault("AccessDenied", status=403)
# authentication (signatures.py): AWS's common errors, with its statuses
MISSING_AUTHENTICATION_TOKEN = fault("MissingAuthenticationToken", status=403)
INCOMPLETE_SIGNATURE = fault("IncompleteSignature")
INVALID_CLIENT_TOKEN_ID = fault("InvalidClientTokenId", status=403)
SIGNATURE_DOES_NOT_MATCH = fault("SignatureDoesNotMatch", status=403)  # a skewed clock too, as SQS says
REQUEST_EXPIRED = fault("RequestExpired")  # a presigned URL past X-Amz-Expires
REQUEST_THROTTLED = fault("RequestThrottled", status=403)
REQUEST_TIMEOUT = fault("RequestTimeout", status=408)  # the body came too slowly (edge/limits.py)
SERVICE_UNAVAILABLE = fault("ServiceUnavailable", status=503, sender=False)
INTERNAL_ERROR = fault("InternalError", status=500, sender=False)


class SqsError(WonderQError):
    """An error as SQS defines it; ``fault`` says how it travels."""

    def __init__(self, fault: Fault, message: str) -> None:
        super().__init__(message)
        self.fault = fault
        self.status = fault.status


CORE: tuple[tuple[type[WonderQError], Fault], ...] = (  # most specific first
    (errors.QueueNotFound, QUEUE_DOES_NOT_EXIST),
    (errors.QueueExists, QUEUE_NAME_EXISTS),
    (errors.StaleToken, RECEIPT_HANDLE_IS_INVALID),
    (errors.MessageNotFound, RECEIPT_HANDLE_IS_INVALID),
    (errors.BadRequest, INVALID_PARAMETER_VALUE),
    (errors.PayloadTooLarge, INVALID_PARAMETER_VALUE),
    (errors.OverLimit, OVER_LIMIT),
    (errors.Unsigned, MISSING_AUTHENTICATION_TOKEN),
    (errors.Forbidden, ACCESS_DENIED),
    (errors.Unauthorized, MISSING_AUTHENTICATION_TOKEN),
    (errors.NotFound, INVALID_ACTION),
    (errors.MethodNotAllowed, INVALID_ACTION),
    (errors.TooManyRequests, REQUEST_THROTTLED),
    (errors.RequestTimeout, REQUEST_TIMEOUT),
    (errors.Unavailable, SERVICE_UNAVAILABLE),
)


# What SQS says for these, whatever the core error's own words (they name internal ids)
SAID = {QUEUE_DOES_NOT_EXIST: "The specified queue does not exist.",
        RECEIPT_HANDLE_IS_INVALID: "The receipt handle is no longer valid: the message was received again"
                                   " since, or deleted."}


def fault_of(exc: WonderQError) -> Fault:
    if isinstance(exc, SqsError):
        return exc.fault
    for kind, found in CORE:
        if isinstance(exc, kind):
            return found
    return INTERNAL_ERROR


def explain(exc: WonderQError) -> tuple[Fault, str]:
    """The fault an error travels as, and its message (SQS's own words where it has fixed ones)."""
    fault = fault_of(exc)
    return fault, exc.message if isinstance(exc, SqsError) else SAID.get(fault, exc.message)


def invalid(message: str) -> SqsError:
    return SqsError(INVALID_PARAMETER_VALUE, message)
