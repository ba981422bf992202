"""A message on its way in through SendMessage or SendMessageBatch: each checked as SQS
checks it (body, size, delay, attributes, FIFO ids) into an :class:`Outgoing`, the common
batch of bodies alone in one loop (:func:`plain_batch`), and what its answer carries."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from wonderq.broker.sqs import message_attributes as ma
from wonderq.broker.sqs.calls import Shape, integer_of
from wonderq.broker.sqs.faults import (
    BATCH_REQUEST_TOO_LONG,
    INVALID_MESSAGE_CONTENTS,
    MISSING_PARAMETER,
    SqsError,
    invalid,
)
from wonderq.models import Message, NewMessage, Queue
from wonderq.settings import MAX_BATCH, MAX_DELAY, MAX_MESSAGE_SIZE

ENTRY_IDS = re.compile(r"[A-Za-z0-9_-]{1,80}(\n[A-Za-z0-9_-]{1,80})*")  # a batch's entry ids, one a line
GROUP_ID = re.compile(r"[!-~]{1,128}")  # printable ASCII, as SQS allows in group and dedup ids


@dataclass(slots=True)  # not frozen: made for every message sent, and a frozen init costs more
class Outgoing:
    """One message to send, checked, with the digests its answer carries (its body's is
    taken later, with other bodies': :func:`ma.md5_bodies`)."""

    new: NewMessage
    size: int
    encoded: bytes  # the body in UTF-8
    md5_attributes: str | None
    md5_system: str | None

    def result(self, sent: Message, md5_body: str, entry_id: str | None = None) -> Shape:
        out: Shape = {"MessageId": sent.message_id, "MD5OfMessageBody": md5_body}
        if entry_id is not None:
            out["Id"] = entry_id
        if self.new.group_id is None and self.md5_attributes is None and self.md5_system is None:
            return out  # a plain message: nothing more
        if self.md5_attributes:
            out["MD5OfMessageAttributes"] = self.md5_attributes
        if self.md5_system:
            out["MD5OfMessageSystemAttributes"] = self.md5_system
        if self.new.group_id is not None and self.new.dedup_id is not None:
            out["SequenceNumber"] = sequence_number(sent)
        return out


def sequence_number(m: Message) -> str:
    return f"{m.id:020d}"


PLAIN = frozenset({"QueueUrl", "Id", "MessageBody"})  # a message with nothing but its body


def outgoing(entry: Mapping[str, object], queue: Queue | None, fifo: bool, valid_text: bool = False) -> Outgoing:
    """Check one message (SendMessage's input or a batch entry; ``valid_text``: the
    protocol has checked its characters). The members a plain message lacks cost
    nothing: this runs for every message sent."""
    body = entry.get("MessageBody")
    if not isinstance(body, str) or not body:
        raise SqsError(MISSING_PARAMETER, "The request must contain the parameter MessageBody.")
    encoded = body.encode()
    if not valid_text and not ma.valid_text(body, encoded):
        raise SqsError(INVALID_MESSAGE_CONTENTS, "Invalid binary character in the message body.")
    if not fifo and entry.keys() <= PLAIN:  # the common case, a body alone: its size
        limit = queue.attributes.max_message_size if queue else MAX_MESSAGE_SIZE
        if len(encoded) > limit:
            raise too_long(limit)
        return Outgoing(NewMessage(body), len(encoded), encoded, None, None)
    delay = integer_of(entry, "DelaySeconds", 0, MAX_DELAY) if "DelaySeconds" in entry else None
    raw, raw_system = entry.get("MessageAttributes"), entry.get("MessageSystemAttributes")
    attributes = ma.check(raw) if raw is not None else {}
    system = ma.check(raw_system, system=True) if raw_system is not None else {}
    size = len(encoded) + (ma.size(attributes) if attributes else 0)
    limit = queue.attributes.max_message_size if queue else MAX_MESSAGE_SIZE
    if size > limit:
        raise too_long(limit)
    group, dedup = None, None
    if fifo or "MessageGroupId" in entry or "MessageDeduplicationId" in entry:
        group, dedup = fifo_ids(entry, body, queue, fifo, delay)
        delay = None if fifo else delay  # a FIFO queue's messages take its own delay (0 was all they could ask)
    return Outgoing(
        NewMessage(body, delay, orjson.dumps(attributes).decode() if attributes else None, group, dedup,
                   orjson.dumps(system).decode() if system else None),
        size, encoded, ma.md5_attributes(attributes) if attributes else None,
        ma.md5_attributes(system) if system else None,
    )


def plain_batch(raw: object) -> tuple[list[str], list[NewMessage], list[str]] | None:
    """The common batch, checked in one loop: one to ten entries, each an id and a body
    alone (its text vouched for by the protocol), the ids valid and distinct, the bodies
    within SQS's batch limit; with their ids, messages and digests. (A Python call per
    message, or a pass per check, costs about as much as a digest.) None if it is not
    such a batch: then :func:`batch_entries` and :func:`outgoing` say what is wrong."""
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_BATCH:
        return None
    ids, news, encoded, size = [], [], [], 0
    for entry in raw:
        if type(entry) is not dict or len(entry) != 2:  # exactly Id and MessageBody
            return None
        entry_id, body = entry.get("Id"), entry.get("MessageBody")
        if type(entry_id) is not str or type(body) is not str or not body:
            return None
        data = body.encode()
        size += len(data)
        ids.append(entry_id)
        news.append(NewMessage(body))
        encoded.append(data)
    if size > MAX_MESSAGE_SIZE or not valid_ids(ids) or len(set(ids)) != len(ids):
        return None
    return ids, news, ma.md5_bodies(encoded)


def fifo_ids(
    entry: Mapping[str, object], body: str, queue: Queue | None, fifo: bool, delay: int | None
) -> tuple[str | None, str | None]:
    group, dedup = entry.get("MessageGroupId"), entry.get("MessageDeduplicationId")
    for name, value in (("MessageGroupId", group), ("MessageDeduplicationId", dedup)):
        if value is not None and (not isinstance(value, str) or not GROUP_ID.fullmatch(value)):
            raise invalid(f"Value {value!r} for parameter {name} is invalid. Reason: 1 to 128 printable characters.")
    if not fifo:
        if dedup is not None:
            raise invalid("The request include parameter MessageDeduplicationId that is not valid for this"
                          " queue type.")
        return (group if isinstance(group, str) else None), None
    if group is None:
        raise SqsError(MISSING_PARAMETER, "The request must contain the parameter MessageGroupId.")
    if delay:  # 0 is taken, as SQS takes it (some clients always send it): the queue's delay applies
        raise invalid("Value for parameter DelaySeconds is invalid. Reason: The request include parameter that is"
                      " not valid for this queue type.")
    if dedup is None and (queue is None or not queue.attributes.content_dedup):
        raise invalid("The queue should either have ContentBasedDeduplication enabled or"
                      " MessageDeduplicationId provided explicitly")
    assert isinstance(group, str) and (dedup is None or isinstance(dedup, str))
    return group, dedup  # no dedup id: the backend takes the body's digest (rules.content_deduped)


def too_long(limit: int) -> SqsError:
    """A message over ``limit`` bytes (its queue's, or SQS's), in SQS's words."""
    return invalid(f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes.")


def batch_too_long() -> SqsError:
    return SqsError(BATCH_REQUEST_TOO_LONG, f"Batch requests cannot be longer than {MAX_MESSAGE_SIZE} bytes.")


def bodies_too_long(entries: list[tuple[str, Mapping[str, object]]]) -> bool:
    """Whether a batch's bodies, failing entries' too, are over SQS's limit together (encoded
    only when four bytes a character could pass it)."""
    bodies = [b for _, e in entries if isinstance(b := e.get("MessageBody"), str)]
    return 4 * sum(map(len, bodies)) > MAX_MESSAGE_SIZE and sum(len(b.encode()) for b in bodies) > MAX_MESSAGE_SIZE


def valid_ids(ids: list[str]) -> bool:
    """Whether every batch entry id is valid: one match for all of them, one a line."""
    joined = "\n".join(ids)
    return ENTRY_IDS.fullmatch(joined) is not None and joined.count("\n") == len(ids) - 1  # no id holds a newline
