"""The SQS actions on queues: create, find, list, delete, attributes, purge,
dead-letter sources, tags and permissions. Each checks its input and calls
the backend directly; names follow the JSON protocol's members."""

from __future__ import annotations

import base64

from wonderq.backends.base import Backend
from wonderq.broker.names import QUEUE_NAME, check_new
from wonderq.broker.sqs import attributes
from wonderq.broker.sqs import message_attributes as ma
from wonderq.broker.sqs.calls import Call, Shape
from wonderq.broker.sqs.faults import (
    PURGE_QUEUE_IN_PROGRESS,
    QUEUE_DOES_NOT_EXIST,
    QUEUE_NAME_EXISTS,
    SqsError,
    invalid,
)
from wonderq.clock import Clock
from wonderq.errors import QueueExists, QueueNotFound
from wonderq.models import FIFO_SUFFIX, Queue, QueueAttributes

MAX_TAGS = 50
PURGE_INTERVAL = 60_000  # ms: SQS allows one purge of a queue a minute
MAX_LIST = 1000


class QueueActions:
    def __init__(self, backend: Backend, clock: Clock) -> None:
        self.db = backend
        self.clock = clock
        self._purged: dict[str, int] = {}  # queue name -> when this broker last purged it

    async def find(self, name: str) -> Queue:
        try:
            return await self.db.get_queue(name)
        except QueueNotFound:
            raise SqsError(QUEUE_DOES_NOT_EXIST, "The specified queue does not exist.") from None

    async def exists(self, name: str) -> bool:
        try:
            await self.db.get_queue(name)
        except QueueNotFound:
            return False
        return True

    async def create_queue(self, call: Call) -> Shape:
        name = call.required("QueueName")
        if not QUEUE_NAME.fullmatch(name):
            raise invalid("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
        if name.isdigit() and not await self.exists(name):  # one made before the rule still answers
            check_new(name)
        given = call.mapping("Attributes")
        fifo = name.endswith(FIFO_SUFFIX)
        if str(given.get("FifoQueue", "false")).lower() == "true" and not fifo:
            raise invalid("The name of a FIFO queue can only include alphanumeric characters, hyphens, or"
                          " underscores, must end with .fifo suffix and be 1 to 80 in length.")
        if fifo and str(given.get("FifoQueue", "false")).lower() != "true":  # as SQS: .fifo names only FIFO
            raise invalid("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
        wanted = attributes.apply(QueueAttributes(), given, fifo, creating=True)
        tags = tags_of(call.mapping("tags") or call.mapping("Tags"))  # checked before anything is made
        await self.check_redrive(call, name, wanted, fifo)
        try:
            queue = await self.db.create_queue(name, wanted)
        except QueueExists:
            queue = await self.find(name)
            have = attributes.apply(queue.attributes, given, fifo, creating=True)
            if have != attributes.apply(queue.attributes, {}, fifo, creating=True):  # as stored, read today
                raise SqsError(QUEUE_NAME_EXISTS, f"A queue already exists with the same name ({name})"
                               " and a different value for an attribute.") from None
            return {"QueueUrl": call.url(name)}
        if tags:
            await self.db.set_tags(queue.id, tags)
        return {"QueueUrl": call.url(name)}

    async def check_redrive(self, call: Call, name: str, a: QueueAttributes, fifo: bool) -> None:
        """The dead-letter queue exists, is of the same kind, and lets this queue send to it."""
        if not a.redrive_target:
            return
        try:
            dlq = await self.db.get_queue(a.redrive_target)
        except QueueNotFound:
            raise invalid(f"Value {call.arn(a.redrive_target)} for parameter RedrivePolicy is invalid."
                          " Reason: Dead letter target does not exist.") from None
        if dlq.fifo != fifo or dlq.name == name:
            raise invalid("Value for parameter RedrivePolicy is invalid. Reason: the dead-letter queue must be"
                          " another queue of the same type (FIFO or standard).")
        allow = attributes.extras(dlq.attributes).get("RedriveAllowPolicy")
        if allow and not allows(attributes.document("RedriveAllowPolicy", allow), call.arn(name)):
            raise invalid(f"Value for parameter RedrivePolicy is invalid. Reason: {dlq.name}'s"
                          f" RedriveAllowPolicy does not allow {name} as a source queue.")

    async def get_queue_url(self, call: Call) -> Shape:
        name = call.required("QueueName")
        if not QUEUE_NAME.fullmatch(name):
            raise SqsError(QUEUE_DOES_NOT_EXIST, "The specified queue does not exist.")
        await self.find(name)
        return {"QueueUrl": call.url(name)}

    async def list_queues(self, call: Call) -> Shape:
        prefix = call.string("QueueNamePrefix", required=False) or ""
        queues = await self.db.list_queues()
        names = [q.name for q in queues if q.name.startswith(prefix) and call.grant.covers(q.name)]
        return paged(call, "QueueUrls", names, keep_empty=False)

    async def delete_queue(self, call: Call) -> Shape:
        try:
            await self.db.delete_queue(call.queue())
        except QueueNotFound:
            raise SqsError(QUEUE_DOES_NOT_EXIST, "The specified queue does not exist.") from None
        return {}

    async def get_queue_attributes(self, call: Call) -> Shape:
        name = call.queue()
        names = call.attribute_names("AttributeNames")
        try:
            stats = await self.db.queue_stats(name)
        except QueueNotFound:
            raise SqsError(QUEUE_DOES_NOT_EXIST, "The specified queue does not exist.") from None
        target = stats.queue.attributes.redrive_target
        values = attributes.render(stats, call.arn(name), target and call.arn(target), names)
        return {"Attributes": values} if values else {}

    async def set_queue_attributes(self, call: Call) -> Shape:
        queue = await self.find(call.queue())
        changed = attributes.apply(queue.attributes, call.mapping("Attributes"), queue.fifo, creating=False)
        await self.check_redrive(call, queue.name, changed, queue.fifo)
        await self.db.set_attributes(queue.id, changed)
        return {}

    async def purge_queue(self, call: Call) -> Shape:
        queue = await self.find(call.queue())
        now, last = self.clock.now_ms(), self._purged.get(queue.name)
        if last is not None and now - last < PURGE_INTERVAL:
            raise SqsError(PURGE_QUEUE_IN_PROGRESS, f"Only one PurgeQueue operation on {queue.name} is allowed"
                           " every 60 seconds.")
        self._purged[queue.name] = now
        await self.db.purge(queue.id)
        return {}

    async def list_dead_letter_source_queues(self, call: Call) -> Shape:
        name = (await self.find(call.queue())).name
        queues = await self.db.list_queues()
        sources = [q.name for q in queues if q.attributes.redrive_target == name and call.grant.covers(q.name)]
        return paged(call, "queueUrls", sources)

    async def tag_queue(self, call: Call) -> Shape:
        queue = await self.find(call.queue())
        tags = {**queue.tags, **tags_of(call.mapping("Tags"))}
        if len(tags) > MAX_TAGS:
            raise invalid(f"Too many tags: a queue has at most {MAX_TAGS}.")
        await self.db.set_tags(queue.id, tags)
        return {}

    async def untag_queue(self, call: Call) -> Shape:
        queue = await self.find(call.queue())
        gone = set(call.names("TagKeys"))
        await self.db.set_tags(queue.id, {k: v for k, v in queue.tags.items() if k not in gone})
        return {}

    async def list_queue_tags(self, call: Call) -> Shape:
        queue = await self.find(call.queue())
        return {"Tags": dict(queue.tags)} if queue.tags else {}


def tags_of(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise invalid("Tags must be a map of keys to values.")
    if len(raw) > MAX_TAGS:
        raise invalid(f"Too many tags: a queue has at most {MAX_TAGS}.")
    for key, value in raw.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not isinstance(value, str) or len(value) > 256:
            raise invalid("Tag keys are 1-128 characters and tag values at most 256.")
        if not (ma.valid_text(key) and ma.valid_text(value)):
            raise invalid("Tag keys and values may hold only the characters XML 1.0 allows.")
    return dict(raw)


def paged(call: Call, key: str, names: list[str], keep_empty: bool = True) -> Shape:
    """One page of queue URLs in name order (MaxResults, NextToken: the last name, opaque)."""
    limit = call.integer("MaxResults", 1, MAX_LIST)
    after = token_name(call.string("NextToken", required=False))
    later = sorted(n for n in names if n > after)
    page = later[:limit or MAX_LIST]
    result: Shape = {key: [call.url(n) for n in page]} if page or keep_empty else {}
    if limit and len(later) > limit:
        result["NextToken"] = base64.urlsafe_b64encode(page[-1].encode()).decode()
    return result


def token_name(token: str | None) -> str:
    """The queue name a NextToken continues after."""
    if not token:
        return ""
    try:
        name = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError too
        name = ""
    if not QUEUE_NAME.fullmatch(name):  # not a token this broker gave out
        raise invalid("Invalid NextToken value.")
    return name


def allows(policy: dict[str, object], source_arn: str) -> bool:
    """A dead-letter queue's RedriveAllowPolicy lets ``source_arn`` send to it."""
    permission = policy.get("redrivePermission", "allowAll")
    if permission == "denyAll":
        return False
    if permission == "byQueue":
        sources = policy.get("sourceQueueArns") or []
        return isinstance(sources, list) and source_arn in sources
    return True
