"""One SQS request as the actions see it, whichever protocol carried it: the
action's input in the JSON protocol's shape (the Query protocol's flattened
form is reshaped to it first), and the checks every action uses to read it.

Numbers arrive as JSON numbers or as Query strings; both are accepted. A
missing required member is ``MissingParameter``; a wrong one is
``InvalidParameterValue``, naming the member.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from wonderq.broker.access import OPEN, Grant
from wonderq.broker.sqs.addresses import name_of_url, queue_arn, queue_url
from wonderq.broker.sqs.faults import MISSING_PARAMETER, SqsError, invalid
from wonderq.edge.params import INTEGER

Shape = dict[str, object]


@dataclass(slots=True)  # not frozen: made for every request, and a frozen init costs 4 times more
class Call:
    action: str
    input: Mapping[str, object]
    host: str  # the request's Host: queue URLs are built from it
    account: str
    region: str
    disconnected: Callable[[], Awaitable[None]]
    path_queue: str | None = None  # Query's POST /<account>/<queue>
    grant: Grant = OPEN  # what the signing key may do (checked before the action runs)
    valid_text: bool = False  # the protocol vouches that every string holds only characters SQS allows

    def queue(self) -> str:
        """The name of the queue the call is about (QueueUrl, or the Query path)."""
        url = self.input.get("QueueUrl")
        if url is None and self.path_queue is not None:
            return name_of_url(self.path_queue)
        if url is None or url == "":
            raise SqsError(MISSING_PARAMETER, "The request must contain the parameter QueueUrl.")
        if not isinstance(url, str):
            raise invalid("Value for parameter QueueUrl must be a string.")
        return name_of_url(url)

    def url(self, name: str) -> str:
        return queue_url(self.host, self.account, name)

    def arn(self, name: str) -> str:
        return queue_arn(self.region, self.account, name)

    def string(self, name: str, required: bool = True) -> str | None:
        value = self.input.get(name)
        if value is None:
            if required:
                raise SqsError(MISSING_PARAMETER, f"The request must contain the parameter {name}.")
            return None
        if not isinstance(value, str):
            raise invalid(f"Value for parameter {name} must be a string.")
        return value

    def required(self, name: str) -> str:
        value = self.string(name)
        assert value is not None
        return value

    def integer(self, name: str, low: int, high: int) -> int | None:
        return integer_of(self.input, name, low, high)

    def names(self, name: str) -> list[str]:
        """A list of strings (AttributeNames, TagKeys, …); absent is empty."""
        return strings(self.input.get(name, []), name)

    def attribute_names(self, name: str) -> list[str]:
        """AttributeNames and their kin: ``All`` in any case is ``All`` (kombu sends ``ALL``,
        which SQS takes)."""
        return ["All" if n.lower() == "all" else n for n in self.names(name)]

    def mapping(self, name: str) -> Mapping[str, object]:
        value = self.input.get(name, {})
        if not isinstance(value, Mapping):
            raise invalid(f"Value for parameter {name} must be a map.")
        return value

    def entries(self, name: str = "Entries") -> list[Mapping[str, object]]:
        value = self.input.get(name, [])
        # both protocols decode entries to dicts; a list, not a generator, is the quicker check
        if not isinstance(value, list) or not all([isinstance(e, dict) for e in value]):
            raise invalid(f"Value for parameter {name} must be a list of entries.")
        return value


def integer_of(values: Mapping[str, object], name: str, low: int, high: int) -> int | None:
    """An integer member within bounds, None when absent."""
    value = values.get(name)
    if value is None:
        return None
    if isinstance(value, str) and INTEGER.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"Value {value!r} for parameter {name} is invalid. Reason: must be an integer.")
    if not low <= value <= high:
        raise invalid(f"Value {value} for parameter {name} is invalid. Reason: must be between {low} and {high}.")
    return value


def strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"Value for parameter {name} must be a list of strings.")
    return value
