"""The SQS actions on messages: send, receive, delete and change visibility,
one at a time or in batches of up to ten.

A receipt handle is the message's ``token`` (which ends in its id), so a
handle is new on every receive and an older one is refused. The batch actions
check the request as a whole first (entries present, at most ten, distinct
ids, total size) and then each entry alone: a bad entry fails by itself, in
``Failed``, and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial

import orjson

from wonderq.backends.base import Backend
from wonderq.broker.caps import InFlightCap
from wonderq.broker.sqs import message_attributes as ma
from wonderq.broker.sqs.calls import Call, Shape, integer_of
from wonderq.broker.sqs.faults import (
    BATCH_IDS_NOT_DISTINCT,
    EMPTY_BATCH_REQUEST,
    INVALID_BATCH_ENTRY_ID,
    MISSING_PARAMETER,
    RECEIPT_HANDLE_IS_INVALID,
    TOO_MANY_ENTRIES,
    SqsError,
    explain,
    invalid,
)
from wonderq.broker.sqs.outgoing import (
    GROUP_ID,
    Outgoing,
    batch_too_long,
    bodies_too_long,
    outgoing,
    plain_batch,
    sequence_number,
    too_long,
    valid_ids,
)
from wonderq.broker.sqs.queues import QueueActions
from wonderq.clock import Clock
from wonderq.errors import MessageNotFound, PayloadTooLarge, StaleToken, WonderQError
from wonderq.models import FIFO_SUFFIX, Message, NewMessage, Queue, QueueRef, QueueStats
from wonderq.settings import MAX_BATCH, MAX_ID, MAX_MESSAGE_SIZE, MAX_VISIBILITY, MAX_WAIT

AT_CAP_WAIT = 1.0  # seconds a long poll of a queue at the in-flight cap waits before its empty answer
HANDLE = re.compile(r"[0-9a-f]{16}-([0-9]{1,19})")


def refused(outcome: MessageNotFound | StaleToken | None) -> StaleToken | None:
    """A delete's outcome as SQS tells it: deleting a message that is gone already succeeds, and
    so does a delete with an older handle, which deletes nothing (SQS's DeleteMessage: "the
    request succeeds, but the message will not be deleted"); a handle of another queue's message
    is invalid."""
    return outcome if isinstance(outcome, StaleToken) and outcome.elsewhere else None


def handle_of(value: object) -> tuple[int, str]:
    """A receipt handle's message id and token."""
    match = HANDLE.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match[1]) > MAX_ID:
        raise SqsError(RECEIPT_HANDLE_IS_INVALID, f"The input receipt handle {value!r} is not a valid receipt handle.")
    return int(match[1]), match[0]


class Attempts:
    """ReceiveRequestAttemptId: a receive retried with the same id, while the
    messages it got are still hidden (at most five minutes), gets the same
    messages and receipt handles again instead of new ones. Kept by this broker."""

    WINDOW = 300_000  # ms
    MAX = 10_000  # remembered at once; the oldest go first

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._results: dict[tuple[str, str], tuple[int, Shape]] = {}

    def get(self, queue: str, attempt: str) -> Shape | None:
        found = self._results.get((queue, attempt))
        return found[1] if found and found[0] > self.clock.now_ms() else None

    def put(self, queue: str, attempt: str, result: Shape, until: int) -> None:
        now = self.clock.now_ms()
        for key in [k for k, (expires, _) in self._results.items() if expires <= now]:
            del self._results[key]
        while len(self._results) >= self.MAX:
            del self._results[next(iter(self._results))]
        self._results[queue, attempt] = (min(until, now + self.WINDOW), result)


class MessageActions:
    def __init__(self, backend: Backend, queues: QueueActions, in_flight: InFlightCap) -> None:
        self.db = backend
        self.queues = queues
        self.in_flight = in_flight
        self.attempts = Attempts(queues.clock)
        self.digests = ma.BodyDigests()

    async def send_message(self, call: Call) -> Shape:
        name = call.queue()
        fifo = name.endswith(FIFO_SUFFIX)
        needs_queue = fifo or "MessageAttributes" in call.input  # the rest the backend checks itself
        queue = await self.queues.find(name) if needs_queue else None
        out = outgoing(call.input, queue, fifo, call.valid_text)
        ticket = self.digests.ask(out.encoded)  # taken with other sends' while the write is under way
        try:
            sent = await self.db.send(queue.id if queue else name, out.new)
        except PayloadTooLarge:  # over the queue's own limit, which the backend found: in SQS's words
            limit = (await self.queues.find(name)).attributes.max_message_size
            raise too_long(limit) from None
        return out.result(sent, self.digests.digest(ticket))

    async def send_message_batch(self, call: Call) -> Shape:
        """Checked against SQS's own limits first, with no lookup: only a FIFO
        queue, a batch with message attributes, or one the backend finds over
        the queue's own size limit, is looked up, to check each entry against
        what the queue allows (so a bad entry still fails alone)."""
        name = call.queue()
        fifo = name.endswith(FIFO_SUFFIX)
        if not fifo and call.valid_text and (plain := plain_batch(call.input.get("Entries"))) is not None:
            with contextlib.suppress(PayloadTooLarge):  # over the queue's own limit: see below
                return await self.send_plain(name, *plain)
        entries = batch_entries(call)
        attributed = any(["MessageAttributes" in entry for _, entry in entries])  # their bytes count too
        queue = await self.queues.find(name) if fifo or attributed else None
        try:
            return await self.send_checked(name, entries, queue, call.valid_text)
        except PayloadTooLarge:
            return await self.send_checked(name, entries, await self.queues.find(name), call.valid_text)

    async def send_plain(self, name: str, ids: list[str], news: list[NewMessage], digests: list[str]) -> Shape:
        sent = await self.db.send_batch(name, news)
        ok: list[Shape] = [{"Id": entry_id, "MessageId": m.message_id, "MD5OfMessageBody": digest}
                           for entry_id, m, digest in zip(ids, sent, digests, strict=True)]
        return {"Successful": ok, "Failed": []}

    async def send_checked(self, name: str, entries: list[tuple[str, Mapping[str, object]]],
                           queue: Queue | None, valid_text: bool) -> Shape:
        fifo = name.endswith(FIFO_SUFFIX)
        if bodies_too_long(entries):
            raise batch_too_long()
        checked: list[tuple[str, Outgoing]] = []
        failed: list[Shape] = []
        size = 0
        for entry_id, entry in entries:
            try:
                out = outgoing(entry, queue, fifo, valid_text)
            except WonderQError as exc:
                failed.append(failure(entry_id, exc))
                continue
            checked.append((entry_id, out))
            size += out.size
        if size > MAX_MESSAGE_SIZE:
            raise batch_too_long()
        ref = queue.id if queue else name
        sent = await self.db.send_batch(ref, [o.new for _, o in checked]) if checked else []
        digests = ma.md5_bodies([o.encoded for _, o in checked])
        ok = [o.result(m, d, i) for (i, o), m, d in zip(checked, sent, digests, strict=True)]
        return {"Successful": ok, "Failed": failed}

    async def receive_message(self, call: Call) -> Shape:
        name = call.queue()
        size = call.integer("MaxNumberOfMessages", 1, MAX_BATCH) or 1
        visibility = call.integer("VisibilityTimeout", 0, MAX_VISIBILITY)
        wait = call.integer("WaitTimeSeconds", 0, MAX_WAIT)
        if wait is None:
            wait = (await self.queues.find(name)).attributes.receive_wait_seconds
        wanted = Received(call, call.attribute_names("AttributeNames") + call.attribute_names(
            "MessageSystemAttributeNames"), call.attribute_names("MessageAttributeNames"))
        attempt = call.string("ReceiveRequestAttemptId", required=False)
        if attempt is not None and not GROUP_ID.fullmatch(attempt):
            raise invalid("Value for parameter ReceiveRequestAttemptId is invalid: 1 to 128 printable characters.")
        if not name.endswith(FIFO_SUFFIX):
            attempt = None  # SQS reads it on FIFO queues only
        if attempt is not None and (repeated := self.attempts.get(name, attempt)) is not None:
            return repeated
        if (full := await self.in_flight.full(name)) is not None:
            return await self.at_cap(full, wait)
        messages = await self.db.receive(name, size, visibility, wait, call.disconnected())
        self.in_flight.took(name, len(messages))
        if not messages:
            return {}
        digests = ma.md5_bodies([m.body.encode() for m in messages])
        result: Shape = {"Messages": [wanted.render(m, d) for m, d in zip(messages, digests, strict=True)]}
        if attempt is not None:
            until = min(m.visible_at for m in messages)
            self.attempts.put(name, attempt, result, until)
        return result

    async def at_cap(self, full: QueueStats, wait: int) -> Shape:
        """A receive of a queue at the in-flight cap, as AWS documents it: a short
        poll of a standard queue gets OverLimit; a long poll, or any receive of a FIFO
        queue, no error and no messages. A long poll answers after a second (or its
        wait, if shorter), so its consumer asks again and gets messages within about
        a second of the count falling under the cap."""
        if wait == 0 and not full.queue.fifo:
            raise self.in_flight.refused(full)
        await asyncio.sleep(min(wait, AT_CAP_WAIT))
        return {}

    async def delete_message(self, call: Call) -> Shape:
        """Only a message of the queue named: a handle of another queue is invalid here, as on SQS."""
        queue = call.queue()
        (outcome,) = await self.db.delete_batch([handle_of(call.input.get("ReceiptHandle"))], queue)
        if (error := refused(outcome)) is not None:
            raise error
        return {}

    async def change_message_visibility(self, call: Call) -> Shape:
        await self.change_visibility(call.queue(), call.input)
        return {}

    async def change_visibility(self, queue: QueueRef, entry: Mapping[str, object]) -> None:
        message_id, token = handle_of(entry.get("ReceiptHandle"))
        timeout = integer_of(entry, "VisibilityTimeout", 0, MAX_VISIBILITY)
        if timeout is None:
            raise SqsError(MISSING_PARAMETER, "The request must contain the parameter VisibilityTimeout.")
        await self.db.change_visibility(message_id, token, timeout, queue)

    async def delete_message_batch(self, call: Call) -> Shape:
        """One write for the batch."""
        queue = await self.queues.find(call.queue())
        handles: dict[str, tuple[int, str]] = {}
        failed: list[Shape] = []
        for entry_id, entry in batch_entries(call):
            try:
                handles[entry_id] = handle_of(entry.get("ReceiptHandle"))
            except WonderQError as exc:
                failed.append(failure(entry_id, exc))
        outcomes = await self.db.delete_batch(list(handles.values()), queue.id) if handles else []
        ok: list[Shape] = []
        for entry_id, outcome in zip(handles, outcomes, strict=True):
            if (error := refused(outcome)) is None:
                ok.append({"Id": entry_id})
            else:
                failed.append(failure(entry_id, error))
        return {"Successful": ok, "Failed": failed}

    async def change_message_visibility_batch(self, call: Call) -> Shape:
        queue = await self.queues.find(call.queue())
        return await each(batch_entries(call), partial(self.change_visibility, queue.id))


class Received:
    """How a receive renders each message: the system and message attributes asked for."""

    SYSTEM = ("SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp",
              "SequenceNumber", "MessageDeduplicationId", "MessageGroupId", "AWSTraceHeader",
              "DeadLetterQueueSourceArn")

    def __init__(self, call: Call, system: list[str], names: list[str]) -> None:
        self.call = call
        self.system = set(self.SYSTEM) if "All" in system else set(system) & set(self.SYSTEM)
        self.names = names

    def render(self, m: Message, digest: str) -> Shape:
        """``digest``: the body's MD5, taken for the whole receive at once (:func:`ma.md5_bodies`)."""
        out: Shape = {"MessageId": m.message_id, "ReceiptHandle": m.token, "MD5OfBody": digest, "Body": m.body}
        if self.system:
            values = self.system_values(m)
            out["Attributes"] = {k: v for k, v in values.items() if k in self.system and v is not None}
        if self.names and m.attributes:
            chosen = ma.select(orjson.loads(m.attributes), self.names)
            if chosen:
                out["MD5OfMessageAttributes"] = ma.md5_attributes(chosen)
                out["MessageAttributes"] = chosen
        return out

    def system_values(self, m: Message) -> dict[str, str | None]:
        trace = orjson.loads(m.system_attributes).get("AWSTraceHeader") if m.system_attributes else None
        fifo = m.dedup_id is not None
        return {
            "SenderId": self.call.account, "SentTimestamp": str(m.created_at),
            "ApproximateReceiveCount": str(m.receive_count),
            "ApproximateFirstReceiveTimestamp": str(m.first_received_at or m.created_at),
            "SequenceNumber": sequence_number(m) if fifo else None,
            "MessageDeduplicationId": m.dedup_id, "MessageGroupId": m.group_id,
            "AWSTraceHeader": trace.get("StringValue") if trace else None,  # older brokers took any type
            "DeadLetterQueueSourceArn": self.call.arn(m.origin) if m.origin else None,
        }


def batch_entries(call: Call) -> list[tuple[str, Mapping[str, object]]]:
    """The whole-request checks of a batch: entries, at most ten, ids valid and distinct."""
    entries = call.entries()
    if not entries:
        raise SqsError(EMPTY_BATCH_REQUEST, "There should be at least one entry in the request.")
    if len(entries) > MAX_BATCH:
        raise SqsError(TOO_MANY_ENTRIES, f"Maximum number of entries per request are {MAX_BATCH}."
                       f" You have sent {len(entries)}.")
    ids = [i for e in entries if isinstance(i := e.get("Id"), str)]
    if len(ids) != len(entries) or not valid_ids(ids):
        raise SqsError(INVALID_BATCH_ENTRY_ID, "A batch entry id can only contain alphanumeric characters,"
                       " hyphens and underscores. It can be at most 80 letters long.")
    if len(set(ids)) != len(ids):
        raise SqsError(BATCH_IDS_NOT_DISTINCT, "Two or more batch entries in the request have the same Id.")
    return list(zip(ids, entries, strict=True))


async def each(
    entries: Sequence[tuple[str, Mapping[str, object]]], act: Callable[[Mapping[str, object]], Awaitable[None]]
) -> Shape:
    """Run ``act`` on every entry at once (group commit joins them); per-entry results."""
    outcomes = await asyncio.gather(*(act(e) for _, e in entries), return_exceptions=True)
    ok: list[Shape] = []
    failed: list[Shape] = []
    for (entry_id, _), outcome in zip(entries, outcomes, strict=True):
        if isinstance(outcome, WonderQError):
            failed.append(failure(entry_id, outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            ok.append({"Id": entry_id})
    return {"Successful": ok, "Failed": failed}


def failure(entry_id: str, exc: WonderQError) -> Shape:
    fault, message = explain(exc)
    return {"Id": entry_id, "SenderFault": fault.sender, "Code": fault.legacy, "Message": message}
