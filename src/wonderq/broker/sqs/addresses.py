"""Queue URLs and ARNs: how the SQS API names a queue.

A queue URL is built from the request's ``Host``, so it works through any
name or proxy the client used: ``http://<host>/<account_id>/<name>``. An ARN
is ``arn:aws:sqs:<region>:<account_id>:<name>``. Reading either back keeps
only the name (any account or region is accepted, as one broker is one
account).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from wonderq.broker.names import QUEUE_NAME
from wonderq.broker.sqs.faults import QUEUE_DOES_NOT_EXIST, SqsError, invalid


def queue_url(host: str, account: str, name: str) -> str:
    return f"http://{host}/{account}/{name}"


def queue_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


@lru_cache(maxsize=4096)  # a client names its few queues over and over; urlsplit is slow
def name_of_url(url: str) -> str:
    """The queue name a queue URL (or a bare name) ends with."""
    path = urlsplit(url).path if "://" in url else url
    name = path.rstrip("/").rpartition("/")[2]
    if not QUEUE_NAME.fullmatch(name):
        raise SqsError(QUEUE_DOES_NOT_EXIST, "The specified queue does not exist.")
    return name


def name_of_arn(arn: object, field: str = "arn") -> str:
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"] or not QUEUE_NAME.fullmatch(parts[5]):
        raise invalid(f"Value {arn!r} for parameter {field} is invalid. Reason: not an SQS queue ARN.")
    return parts[5]
