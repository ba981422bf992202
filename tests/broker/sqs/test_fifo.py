"""FIFO queues through the SQS API: order per group, a group blocked while a
message of it is out, deduplication, sequence numbers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.broker.sqs.test_queues import code
from tests.conftest import unique


def fifo(sqs: Any, **attributes: str) -> str:
    name = unique("f") + ".fifo"
    return str(sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true", **attributes})["QueueUrl"])


def send(sqs: Any, url: str, body: str, group: str, dedup: str | None = None) -> dict[str, Any]:
    return dict(sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group,
                                 MessageDeduplicationId=dedup or body))


def bodies(sqs: Any, url: str, n: int = 10) -> list[str]:
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=n, VisibilityTimeout=30).get("Messages", [])
    return [m["Body"] for m in found]


def test_the_suffix_needs_fifo(sqs: Any) -> None:
    """As SQS: a name ending in .fifo without FifoQueue=true is a bad standard queue name."""
    name = unique("f") + ".fifo"
    for attributes in ({}, {"FifoQueue": "false"}):
        with pytest.raises(ClientError) as e:
            sqs.create_queue(QueueName=name, Attributes=attributes)
        assert code(e) == "InvalidParameterValue"
        assert "alphanumeric characters, hyphens, or underscores" in str(e.value)
    assert sqs.list_queues(QueueNamePrefix=name).get("QueueUrls") is None  # nothing was made
    assert sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"].endswith(name)


def test_fifo_needs_the_suffix(sqs: Any) -> None:
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=unique("plain"), Attributes={"FifoQueue": "true"})
    assert code(e) == "InvalidParameterValue"
    url = fifo(sqs)
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["FifoQueue"] == "true" and a["ContentBasedDeduplication"] == "false"
    assert a["DeduplicationScope"] == "queue" and a["FifoThroughputLimit"] == "perQueue"


def test_order_per_group_and_a_group_blocked_while_out(sqs: Any) -> None:
    url = fifo(sqs)
    for body, group in (("a1", "A"), ("a2", "A"), ("b1", "B"), ("a3", "A")):
        send(sqs, url, body, group)
    assert bodies(sqs, url, 1) == ["a1"]
    assert bodies(sqs, url, 10) == ["b1"]  # group A is blocked while a1 is out
    assert bodies(sqs, url, 10) == []
    (m,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", []) or [None]
    assert m is None


def test_a_group_unblocks_when_its_message_is_deleted(sqs: Any) -> None:
    url = fifo(sqs)
    for body in ("1", "2", "3"):
        send(sqs, url, body, "G")
    (m,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    assert m["Body"] == "1"
    assert bodies(sqs, url) == []
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert bodies(sqs, url) == ["2", "3"]


def test_deduplication_within_the_window_even_after_delete(sqs: Any) -> None:
    url = fifo(sqs)
    first = send(sqs, url, "x", "G", "same")
    assert send(sqs, url, "y", "G", "same")["MessageId"] == first["MessageId"]
    (m,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert send(sqs, url, "z", "G", "same")["MessageId"] == first["MessageId"]
    assert bodies(sqs, url) == []


def test_content_based_deduplication(sqs: Any) -> None:
    url = fifo(sqs, ContentBasedDeduplication="true")
    one = sqs.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="G")
    two = sqs.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="G")
    assert one["MessageId"] == two["MessageId"]
    (m,) = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    assert len(m["Attributes"]["MessageDeduplicationId"]) == 64  # SHA-256 of the body


def test_dedup_scope_per_group(sqs: Any) -> None:
    url = fifo(sqs, DeduplicationScope="messageGroup", FifoThroughputLimit="perMessageGroupId")
    with pytest.raises(ClientError) as e:  # SQS: perMessageGroupId only with messageGroup
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"DeduplicationScope": "queue"})
    assert code(e) == "InvalidAttributeValue"
    one, two = send(sqs, url, "x", "A", "d"), send(sqs, url, "x", "B", "d")
    assert one["MessageId"] != two["MessageId"]
    assert sorted(bodies(sqs, url)) == ["x", "x"]


def test_sequence_numbers_and_fifo_attributes(sqs: Any) -> None:
    url = fifo(sqs)
    numbers = [send(sqs, url, str(i), "G")["SequenceNumber"] for i in range(3)]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    result = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
    a = result["Messages"][0]["Attributes"]
    assert a["SequenceNumber"] == numbers[0] and a["MessageGroupId"] == "G" and a["MessageDeduplicationId"] == "0"


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"MessageBody": "x", "MessageDeduplicationId": "d"}, "MissingParameter"),
    ({"MessageBody": "x", "MessageGroupId": "G"}, "InvalidParameterValue"),
    ({"MessageBody": "x", "MessageGroupId": "G", "MessageDeduplicationId": "d", "DelaySeconds": 1},
     "InvalidParameterValue"),
])
def test_fifo_sends_that_are_refused(sqs: Any, kwargs: dict[str, Any], error: str) -> None:
    url = fifo(sqs)
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, **kwargs)
    assert code(e) == error


def test_a_fifo_queue_made_through_rest_keeps_order(client: httpx.Client, sqs: Any) -> None:
    name = unique("rest") + ".fifo"
    assert client.post("/queues", json={"name": name}).status_code == 200
    for body in ("1", "2"):
        assert client.post("/messages", json={"queue_name": name, "body": body}).status_code == 200
    first = client.get("/messages/consume", params={"queue_name": name, "wait_time": 0}).json()
    assert [m["body"] for m in first] == ["1"]
    assert client.get("/messages/consume", params={"queue_name": name, "wait_time": 0}).json() == []
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["FifoQueue"])["Attributes"]["FifoQueue"] == "true"


def test_a_retried_receive_gets_the_same_messages(sqs: Any) -> None:
    """ReceiveRequestAttemptId: the same attempt, retried, gets the same handles."""
    url = fifo(sqs)
    for body in ("1", "2"):
        send(sqs, url, body, "G")
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="try-1")["Messages"]
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="try-1")["Messages"]
    assert [m["ReceiptHandle"] for m in again] == [m["ReceiptHandle"] for m in first]
    assert [m["Body"] for m in first] == ["1", "2"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, ReceiveRequestAttemptId="try-2")


def test_a_standard_queue_ignores_the_receive_attempt_id(sqs: Any) -> None:
    """SQS reads ReceiveRequestAttemptId on FIFO queues only: a standard queue's retried
    receive gets what is visible now, not the first receive's messages again."""
    url = sqs.create_queue(QueueName=unique("plain"))["QueueUrl"]
    for body in ("1", "2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    first = sqs.receive_message(QueueUrl=url, ReceiveRequestAttemptId="try-1")["Messages"]
    again = sqs.receive_message(QueueUrl=url, ReceiveRequestAttemptId="try-1")["Messages"]
    assert {first[0]["Body"], again[0]["Body"]} == {"1", "2"}


def test_a_delay_of_0_is_taken_and_the_queue_delay_applies(sqs: Any) -> None:
    """SQS takes DelaySeconds=0 on a FIFO queue, which some clients always send (elasticmq#273,
    localstack#6612); any other delay is refused above. The queue's own delay still holds."""
    url = fifo(sqs, DelaySeconds="60")
    sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="G", MessageDeduplicationId="a", DelaySeconds=0)
    result = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "b", "MessageBody": "b", "MessageGroupId": "G", "MessageDeduplicationId": "b", "DelaySeconds": 0}])
    assert [s["Id"] for s in result["Successful"]] == ["b"] and not result.get("Failed"), result
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") is None  # the queue's 60 s
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "2"
