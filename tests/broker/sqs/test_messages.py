"""The message actions through botocore, on both protocols and both backends."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.broker.sqs.test_queues import arn, code
from tests.conftest import unique
from wonderq.broker.sqs import message_attributes as ma


def system_names(sqs: Any, names: list[str]) -> dict[str, list[str]]:
    """MessageSystemAttributeNames where the model has it (JSON), else the older AttributeNames."""
    json_protocol = sqs.meta.service_model.protocol == "json"
    return {"MessageSystemAttributeNames" if json_protocol else "AttributeNames": names}


@pytest.fixture
def url(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName=unique("q"))["QueueUrl"])


def test_send_receive_delete(sqs: Any, url: str) -> None:
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello\r\nworld <&>")
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"hello\r\nworld <&>").hexdigest()
    (m,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    assert m["Body"] == "hello\r\nworld <&>" and m["MessageId"] == sent["MessageId"]
    assert m["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # in flight
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])  # again: succeeds, as on SQS


def test_receipt_handles_are_new_on_every_receive_and_stale_ones_delete_nothing(sqs: Any, url: str) -> None:
    """SQS's DeleteMessage with an older handle: "the request succeeds, but the message will not
    be deleted" (a consumer that ran past its timeout must not crash, nor delete another's)."""
    sqs.send_message(QueueUrl=url, MessageBody="x")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]["ReceiptHandle"]
    second = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]["ReceiptHandle"]
    assert first != second
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first)
    result = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "old", "ReceiptHandle": first}])
    assert [s["Id"] for s in result["Successful"]] == ["old"] and not result.get("Failed")
    (third,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    assert third["Body"] == "x"  # still there
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=second, VisibilityTimeout=5)
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=third["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)


def test_a_handle_is_valid_only_on_its_own_queue(sqs: Any, url: str) -> None:
    """As on SQS: the QueueUrl must be the message's queue (it also keeps a key limited to
    some queues from deleting elsewhere with a handle it came by)."""
    elsewhere = str(sqs.create_queue(QueueName=unique("other"))["QueueUrl"])
    sqs.send_message(QueueUrl=url, MessageBody="mine")
    handle = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"][0]["ReceiptHandle"]
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=elsewhere, ReceiptHandle=handle)
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.change_message_visibility(QueueUrl=elsewhere, ReceiptHandle=handle, VisibilityTimeout=0)
    entries = [{"Id": "a", "ReceiptHandle": handle}]
    deleted = sqs.delete_message_batch(QueueUrl=elsewhere, Entries=entries)
    assert deleted["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    changed = sqs.change_message_visibility_batch(QueueUrl=elsewhere, Entries=[{**entries[0], "VisibilityTimeout": 0}])
    assert changed["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # still in flight: nothing released it
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.delete_message(QueueUrl=url + "-nowhere", ReceiptHandle=handle)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)


@pytest.mark.parametrize("message_id", ["9223372036854775808", "9999999999999999999"])
def test_a_handle_past_the_largest_id_is_invalid_not_an_internal_error(sqs: Any, url: str, message_id: str) -> None:
    handle = f"abcdef0123456789-{message_id}"
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    changed = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": handle, "VisibilityTimeout": 0}])
    assert changed["Failed"][0]["Code"] == "ReceiptHandleIsInvalid" and changed["Failed"][0]["SenderFault"]


def test_message_attributes_and_their_digests(sqs: Any, url: str) -> None:
    attributes = {
        "s": {"DataType": "String", "StringValue": "text"},
        "n": {"DataType": "Number.int", "StringValue": "42"},
        "b": {"DataType": "Binary.gif", "BinaryValue": b"\x00\x01GIF"},
        "x.one": {"DataType": "String", "StringValue": "1"},
    }
    trace = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793"}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="m", MessageAttributes=attributes,
                            MessageSystemAttributes=trace)
    wire = {k: ({"DataType": v["DataType"], "BinaryValue": base64.b64encode(v["BinaryValue"]).decode()}
                if "BinaryValue" in v else v) for k, v in attributes.items()}
    assert sent["MD5OfMessageAttributes"] == ma.md5_attributes(wire)
    assert sent["MD5OfMessageSystemAttributes"] == ma.md5_attributes(trace)
    (m,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["x.*", "b"], VisibilityTimeout=0,
                               **system_names(sqs, ["AWSTraceHeader"]))["Messages"]
    assert set(m["MessageAttributes"]) == {"x.one", "b"}
    assert m["MessageAttributes"]["b"]["BinaryValue"] == b"\x00\x01GIF"
    assert m["MD5OfMessageAttributes"] == ma.md5_attributes({k: wire[k] for k in ("x.one", "b")})
    assert m["Attributes"] == {"AWSTraceHeader": trace["AWSTraceHeader"]["StringValue"]}
    (m,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], VisibilityTimeout=0)["Messages"]
    assert m["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    (m,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert "MessageAttributes" not in m and "MD5OfMessageAttributes" not in m


def test_all_is_all_in_any_case(sqs: Any, url: str) -> None:
    """kombu asks for ["ALL"] (its Celery workers die on a KeyError without Attributes)."""
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}})
    (m,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["ALL"], VisibilityTimeout=0,
                               **system_names(sqs, ["ALL"]))["Messages"]
    assert "ApproximateReceiveCount" in m["Attributes"] and set(m["MessageAttributes"]) == {"k"}
    (m,) = sqs.receive_message(QueueUrl=url, AttributeNames=["all"], VisibilityTimeout=0)["Messages"]
    assert "SentTimestamp" in m["Attributes"]
    assert "QueueArn" in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ALL"])["Attributes"]


def test_system_attributes_on_receive(sqs: Any, url: str) -> None:
    before = int(time.time() * 1000) - 1000
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
    (m,) = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    a = m["Attributes"]
    assert a["ApproximateReceiveCount"] == "2" and a["SenderId"] == "000000000000"
    assert int(a["SentTimestamp"]) >= before and int(a["ApproximateFirstReceiveTimestamp"]) >= int(a["SentTimestamp"])
    assert "SequenceNumber" not in a and "MessageGroupId" not in a
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    (m,) = sqs.receive_message(QueueUrl=url, **system_names(sqs, ["ApproximateReceiveCount"]))["Messages"]
    assert m["Attributes"] == {"ApproximateReceiveCount": "3"}


def test_bad_messages_are_refused(sqs: Any, url: str) -> None:
    for kwargs, error in (
        ({"MessageBody": "\x00"}, "InvalidMessageContents"),
        ({"MessageBody": "x", "DelaySeconds": 901}, "InvalidParameterValue"),
        ({"MessageBody": "x", "MessageAttributes": {"AWS.x": {"DataType": "String", "StringValue": "v"}}},
         "InvalidParameterValue"),
        ({"MessageBody": "x" * 1_048_577}, "InvalidParameterValue"),
        ({"MessageBody": "x", "MessageDeduplicationId": "d"}, "InvalidParameterValue"),
    ):
        with pytest.raises(ClientError) as e:
            sqs.send_message(QueueUrl=url, **kwargs)
        assert code(e) == error, kwargs


def test_a_trace_header_is_a_string_or_refused(sqs: Any, url: str) -> None:
    """SQS: AWSTraceHeader's type must be String. Taken as Binary, it once failed every later
    receive that asked for system attributes (Celery asks), with the messages already hidden."""
    for value in ({"DataType": "Binary", "BinaryValue": b"v"}, {"DataType": "Number", "StringValue": "1"}):
        with pytest.raises(ClientError) as e:
            sqs.send_message(QueueUrl=url, MessageBody="x", MessageSystemAttributes={"AWSTraceHeader": value})
        assert code(e) == "InvalidParameterValue"
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageSystemAttributes={
        "AWSTraceHeader": {"DataType": "String", "StringValue": trace}})
    (m,) = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    assert m["Attributes"]["AWSTraceHeader"] == trace


def test_what_xml_cannot_carry_is_refused_where_it_would_be_kept(sqs: Any, url: str) -> None:
    """A character XML 1.0 refuses, in a type label, a tag or a kept queue attribute, would make
    every Query answer that carries it unreadable: refused on the way in, over either protocol;
    and an error quoting one comes back readable."""
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x",
                         MessageAttributes={"a": {"DataType": "String.\x01", "StringValue": "v"}})
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.tag_queue(QueueUrl=url, Tags={"k": "v\x01"})
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"KmsMasterKeyId": "key\x01"})
    assert code(e) == "InvalidAttributeValue"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={"a\x01": {"DataType": "String",
                                                                                      "StringValue": "v"}})
    quoted = "\x01" if sqs.meta.service_model.protocol == "json" else "\ufffd"  # JSON can carry it
    assert code(e) == "InvalidParameterValue" and quoted in e.value.response["Error"]["Message"]


REFUSED = ["\x00", "a\x01", "\x08", "\x0b", "\x0c", "\x1f", "\ufffe", "\uffff"]  # outside XML 1.0
ALLOWED = ["\t\n\r", "\x7f", "\\b \\u0001 \\f", "caf\u00e9 \U0001f600", "\ud7ff\ue000"]


def test_bodies_with_characters_sqs_refuses_fail_alone_in_a_batch(sqs: Any, url: str) -> None:
    entries = [{"Id": f"r{i}", "MessageBody": b} for i, b in enumerate(REFUSED)]
    entries += [{"Id": f"a{i}", "MessageBody": b} for i, b in enumerate(ALLOWED)]
    failed, sent = [], []
    for batch in (entries[:10], entries[10:]):
        r = sqs.send_message_batch(QueueUrl=url, Entries=batch)
        failed += r.get("Failed", [])
        sent += [s["Id"] for s in r.get("Successful", [])]
    assert sorted(f["Id"] for f in failed) == sorted(f"r{i}" for i in range(len(REFUSED)))
    assert {f["Code"] for f in failed} == {"InvalidMessageContents"}
    assert sorted(sent) == sorted(f"a{i}" for i in range(len(ALLOWED)))
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == sorted(ALLOWED)
    for m in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_attribute_bytes_count_toward_the_size_limit(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("q"), Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x" * 1024)
    attribute = {"a": {"DataType": "String", "StringValue": "y"}}  # 1 + 6 + 1 bytes
    sqs.send_message(QueueUrl=url, MessageBody="x" * 1016, MessageAttributes=attribute)
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 1017, MessageAttributes=attribute)
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:  # a body alone: the backend finds it over the queue's limit
        sqs.send_message(QueueUrl=url, MessageBody="x" * 1025)
    assert code(e) == "InvalidParameterValue" and "Message must be shorter than 1024 bytes" in str(e.value)


def test_delays_per_queue_and_per_message(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("q"), Attributes={"DelaySeconds": "1"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="queue delay")
    sqs.send_message(QueueUrl=url, MessageBody="no delay", DelaySeconds=0)
    (m,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert m["Body"] == "no delay"
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert a["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    (m,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3)["Messages"]
    assert m["Body"] == "queue delay"


def test_long_poll_and_the_queues_default_wait(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("q"), Attributes={"ReceiveMessageWaitTimeSeconds": "1"})["QueueUrl"]
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert time.monotonic() - started >= 0.9
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert time.monotonic() - started < 0.9


def test_send_batch_fails_bad_entries_alone(sqs: Any, url: str) -> None:
    result = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "ok1", "MessageBody": "one"}, {"Id": "bad", "MessageBody": "x", "DelaySeconds": 1000},
        {"Id": "ok2", "MessageBody": "two", "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
    ])
    assert [s["Id"] for s in result["Successful"]] == ["ok1", "ok2"]
    assert result["Successful"][1]["MD5OfMessageAttributes"]
    (failed,) = result["Failed"]
    assert failed["Id"] == "bad" and failed["SenderFault"] is True and failed["Code"] == "InvalidParameterValue"
    bodies = {m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]}
    assert bodies == {"one", "two"}


@pytest.mark.parametrize(("entries", "error"), [
    ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
    ([{"Id": str(i), "MessageBody": "x"} for i in range(11)], "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
    ([{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}],
     "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
    ([{"Id": "no spaces", "MessageBody": "x"}], "AWS.SimpleQueueService.InvalidBatchEntryId"),
    ([{"Id": "a\nb", "MessageBody": "x"}], "AWS.SimpleQueueService.InvalidBatchEntryId"),  # not two ids
    ([{"Id": "a", "MessageBody": "x"}, {"Id": "i" * 81, "MessageBody": "y"}],
     "AWS.SimpleQueueService.InvalidBatchEntryId"),
    ([{"Id": str(i), "MessageBody": "x" * 200_000} for i in range(6)], "AWS.SimpleQueueService.BatchRequestTooLong"),
    ([{"Id": "a", "MessageBody": "x"}, {"Id": "b", "MessageBody": "y" * 1_048_577}],  # an entry too long itself
     "AWS.SimpleQueueService.BatchRequestTooLong"),
    ([{"Id": "a", "MessageBody": "x" * 600_000, "DelaySeconds": 1000}, {"Id": "b", "MessageBody": "y" * 600_000}],
     "AWS.SimpleQueueService.BatchRequestTooLong"),  # the failing entry's bytes count too
])
def test_whole_batch_errors(sqs: Any, url: str, entries: list[dict[str, str]], error: str) -> None:
    with pytest.raises(ClientError) as e:
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert code(e) == error


def test_delete_and_visibility_batches(sqs: Any, url: str) -> None:
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(4)])
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
    assert len(messages) == 4
    handles = [m["ReceiptHandle"] for m in messages]
    result = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": handles[0], "VisibilityTimeout": 0},
        {"Id": "bad", "ReceiptHandle": "nonsense", "VisibilityTimeout": 0},
    ])
    assert [s["Id"] for s in result["Successful"]] == ["a"]
    assert result["Failed"][0]["Id"] == "bad" and result["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    (again,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
    handles[0] = again["ReceiptHandle"]
    result = sqs.delete_message_batch(QueueUrl=url, Entries=[
        *({"Id": f"d{i}", "ReceiptHandle": h} for i, h in enumerate(handles)), {"Id": "bad", "ReceiptHandle": "x"},
    ])
    assert len(result["Successful"]) == 4 and [f["Id"] for f in result["Failed"]] == ["bad"]
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["ApproximateNumberOfMessages"] == a["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_redrive_to_the_dead_letter_queue_records_the_source(sqs: Any) -> None:
    dlq_name, source_name = unique("dlq"), unique("src")
    dlq = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": "2"})
    source = sqs.create_queue(QueueName=source_name, Attributes={"RedrivePolicy": policy})["QueueUrl"]
    sqs.send_message(QueueUrl=source, MessageBody="poison")
    for _ in range(2):
        assert sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)["Messages"]
    assert "Messages" not in sqs.receive_message(QueueUrl=source)
    (m,) = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"])["Messages"]
    assert m["Body"] == "poison" and m["Attributes"]["DeadLetterQueueSourceArn"] == arn(source_name)


def test_a_batch_entry_over_the_queues_limit_fails_alone(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("q"), Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    result = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "ok", "MessageBody": "x" * 1024}, {"Id": "long", "MessageBody": "x" * 1025},
        {"Id": "attributed", "MessageBody": "x" * 1020,
         "MessageAttributes": {"a": {"DataType": "String", "StringValue": "yy"}}},
    ])
    assert [s["Id"] for s in result["Successful"]] == ["ok"]
    assert sorted(f["Id"] for f in result["Failed"]) == ["attributed", "long"]


def test_a_plain_batch_still_fails_bad_entries_alone(sqs: Any) -> None:
    """A batch of bodies alone is checked in one loop (outgoing.plain_batch); an entry over the
    queue's own limit, or an empty one, sends it down the entry-by-entry path, and fails alone."""
    url = sqs.create_queue(QueueName=unique("q"), Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    result = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "ok", "MessageBody": "x" * 1024}, {"Id": "long", "MessageBody": "x" * 1025},
    ])
    assert [s["Id"] for s in result["Successful"]] == ["ok"] and [f["Id"] for f in result["Failed"]] == ["long"]
    result = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "ok", "MessageBody": "y"},
                                                           {"Id": "empty", "MessageBody": ""}])
    assert [s["Id"] for s in result["Successful"]] == ["ok"] and [f["Id"] for f in result["Failed"]] == ["empty"]
    assert result["Successful"][0]["MD5OfMessageBody"] == hashlib.md5(b"y").hexdigest()
