"""Current boto3 (AWS JSON 1.0 protocol) against the SQS server, on each backend of the target.

Every test makes queues of its own (unique names), since the server is shared by the session.
Tests marked ``moto_gets_wrong`` assert what SQS documents and moto does not do; on moto they
must fail (strict xfail), everywhere else they must pass."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import REGION, missing, stop_broker, target, unique
from tests.clients.sqs_digests import md5_of_attributes, md5_of_body
from tests.conftest import BrokerProcess

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError as exc:  # in the dev extras; checked by the sqs fixture: skipped, or failed in CI
    boto3_problem: str | None = str(exc)
else:
    boto3_problem = None

Client = Any  # botocore's clients are built at run time; there are no static types to name


def moto_gets_wrong(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(target() == "moto", reason=f"moto: {reason}", strict=True)


@pytest.fixture
def sqs(sqs_backend_endpoint: str) -> Iterator[Client]:
    if boto3_problem is not None:
        missing("boto3", boto3_problem)
    config = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)
    client = boto3.client(
        "sqs", endpoint_url=sqs_backend_endpoint, region_name=REGION,
        aws_access_key_id="wonderq", aws_secret_access_key="wonderq", config=config,
    )
    yield client
    client.close()


@pytest.fixture
def queue(sqs: Client) -> str:
    """The URL of a fresh standard queue."""
    return str(sqs.create_queue(QueueName=unique())["QueueUrl"])


def error_code(exc: pytest.ExceptionInfo[Any]) -> str:
    return str(exc.value.response["Error"]["Code"])


def arn(sqs: Client, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def test_the_client_speaks_the_json_protocol(sqs: Client) -> None:
    assert sqs.meta.service_model.protocol == "json"


def test_create_get_url_list_and_delete(sqs: Client, sqs_backend_endpoint: str) -> None:
    prefix = unique("list")
    names = [f"{prefix}-{i}" for i in range(3)]
    urls = [sqs.create_queue(QueueName=name)["QueueUrl"] for name in names]
    for name, url in zip(names, urls, strict=True):
        assert url.startswith(sqs_backend_endpoint + "/") and url.endswith("/" + name)
        assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert sqs.create_queue(QueueName=names[0])["QueueUrl"] == urls[0]  # idempotent
    assert sorted(sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]) == sorted(urls)

    pages, token = [], None
    while True:
        page = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2, **({"NextToken": token} if token else {}))
        pages.append(page["QueueUrls"])
        token = page.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 1] and sorted(url for p in pages for url in p) == sorted(urls)

    sqs.delete_queue(QueueUrl=urls[1])
    assert sorted(sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]) == sorted([urls[0], urls[2]])
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=names[1])


def test_send_receive_delete(sqs: Client, queue: str) -> None:
    sent = sqs.send_message(QueueUrl=queue, MessageBody="hello wonderq")
    assert sent["MD5OfMessageBody"] == md5_of_body("hello wonderq")
    assert sent["MessageId"]
    assert sent["ResponseMetadata"]["RequestId"]

    got = sqs.receive_message(QueueUrl=queue, AttributeNames=["All"], VisibilityTimeout=30)["Messages"]
    assert len(got) == 1
    message = got[0]
    assert message["MessageId"] == sent["MessageId"] and message["Body"] == "hello wonderq"
    assert message["MD5OfBody"] == md5_of_body("hello wonderq")
    attributes = message["Attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert abs(int(attributes["SentTimestamp"]) / 1000 - time.time()) < 60
    assert int(attributes["ApproximateFirstReceiveTimestamp"]) >= int(attributes["SentTimestamp"])
    assert attributes["SenderId"]

    assert "Messages" not in sqs.receive_message(QueueUrl=queue)  # in flight
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    counts = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_unicode_and_large_bodies(sqs: Client, queue: str) -> None:
    bodies = ["zaż\u00f3łć gęślą jaźń \U0001f680", "x" * 256 * 1024]
    for body in bodies:
        assert sqs.send_message(QueueUrl=queue, MessageBody=body)["MD5OfMessageBody"] == md5_of_body(body)
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    while len(got) < 2:
        got += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert sorted(m["Body"] for m in got) == sorted(bodies)
    assert all(m["MD5OfBody"] == md5_of_body(m["Body"]) for m in got)


def test_batches_fail_one_bad_entry_alone(sqs: Client, queue: str) -> None:
    entries = [{"Id": f"m{i}", "MessageBody": f"body {i}"} for i in range(9)]
    entries.append({"Id": "late", "MessageBody": "too late", "DelaySeconds": 901})
    sent = sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    assert sorted(e["Id"] for e in sent["Successful"]) == sorted(f"m{i}" for i in range(9))
    assert all(e["MD5OfMessageBody"] == md5_of_body(f"body {e['Id'][1:]}") for e in sent["Successful"])
    [failed] = sent["Failed"]
    assert failed["Id"] == "late" and failed["SenderFault"] is True and failed["Code"] == "InvalidParameterValue"

    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(received) < 9 and time.monotonic() < deadline:
        received += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert sorted(m["Body"] for m in received) == sorted(f"body {i}" for i in range(9))

    handles = [{"Id": f"h{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
    changed = sqs.change_message_visibility_batch(
        QueueUrl=queue,
        Entries=[{**h, "VisibilityTimeout": 60} for h in handles[:2]]
        + [{"Id": "bad", "ReceiptHandle": "not-a-receipt-handle", "VisibilityTimeout": 60}],
    )
    assert sorted(e["Id"] for e in changed["Successful"]) == ["h0", "h1"]
    assert [(e["Id"], e["Code"]) for e in changed["Failed"]] == [("bad", "ReceiptHandleIsInvalid")]

    deleted = sqs.delete_message_batch(
        QueueUrl=queue, Entries=[*handles, {"Id": "bad", "ReceiptHandle": "not-a-receipt-handle"}]
    )
    assert sorted(e["Id"] for e in deleted["Successful"]) == sorted(h["Id"] for h in handles)
    assert [(e["Id"], e["Code"]) for e in deleted["Failed"]] == [("bad", "ReceiptHandleIsInvalid")]


def test_whole_batch_errors(sqs: Client, queue: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": "a", "MessageBody": str(i)} for i in range(2)])
    assert exc.type is sqs.exceptions.BatchEntryIdsNotDistinct
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(11)])
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs.send_message_batch(QueueUrl=queue, Entries=[])
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs.delete_message_batch(QueueUrl=queue, Entries=[])
    with pytest.raises(ClientError) as exc:  # over 1 MiB in total
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": "x" * 300_000} for i in range(4)])
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_change_visibility(sqs: Client, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="again")
    first = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=60)["Messages"][0]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    second = sqs.receive_message(QueueUrl=queue, AttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=1)
    [message] = second["Messages"]
    assert message["MessageId"] == first["MessageId"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"
    assert message["ReceiptHandle"] != first["ReceiptHandle"]  # a new handle on every receive
    with pytest.raises(ClientError) as exc:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle="not-a-receipt-handle", VisibilityTimeout=5)
    assert error_code(exc) == "ReceiptHandleIsInvalid"
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def test_visibility_timeout_expires(sqs: Client, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="redeliver me")
    first = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=1)["Messages"][0]
    again = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=3, AttributeNames=["ApproximateReceiveCount"])
    assert again["Messages"][0]["MessageId"] == first["MessageId"]
    assert again["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "2"


ATTRIBUTES = {
    "text": {"DataType": "String", "StringValue": "zaż\u00f3łć"},
    "count": {"DataType": "Number", "StringValue": "42.5"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe\xff"},
    "kind": {"DataType": "String.custom", "StringValue": "custom type"},
    "trace.id": {"DataType": "Number.int", "StringValue": "7"},
}
# Known values, computed by sqs_digests and by moto's own implementation.
ATTRIBUTES_MD5 = "c850054fa1895943dc1d70cbe2bb07d3"


def test_message_attributes(sqs: Client, queue: str) -> None:
    assert md5_of_attributes(ATTRIBUTES) == ATTRIBUTES_MD5
    sent = sqs.send_message(QueueUrl=queue, MessageBody="with attributes", MessageAttributes=ATTRIBUTES)
    assert sent["MD5OfMessageAttributes"] == ATTRIBUTES_MD5
    [message] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"], VisibilityTimeout=0)["Messages"]
    assert message["MessageAttributes"] == ATTRIBUTES
    assert message["MD5OfMessageAttributes"] == ATTRIBUTES_MD5

    # Only what is asked for comes back, and the digest is over what came back.
    for names, expected in [(["text"], ["text"]), (["trace.*"], ["trace.id"]), ([".*"], sorted(ATTRIBUTES))]:
        [message] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=names, VisibilityTimeout=0)["Messages"]
        returned = message["MessageAttributes"]
        assert sorted(returned) == expected
        assert message["MD5OfMessageAttributes"] == md5_of_attributes(returned)
    [message] = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    assert "MessageAttributes" not in message and "MD5OfMessageAttributes" not in message


def test_batch_message_attributes(sqs: Client, queue: str) -> None:
    sent = sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": "a", "MessageBody": "a", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "1"}}},
        {"Id": "b", "MessageBody": "b"},
    ])
    by_id = {e["Id"]: e for e in sent["Successful"]}
    assert by_id["a"]["MD5OfMessageAttributes"] == md5_of_attributes({"n": {"DataType": "Number", "StringValue": "1"}})
    assert "MD5OfMessageAttributes" not in by_id["b"]


def test_delay_per_message_and_per_queue(sqs: Client) -> None:
    url = sqs.create_queue(QueueName=unique("delay"), Attributes={"DelaySeconds": "1"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="queue delay")
    sqs.send_message(QueueUrl=url, MessageBody="own delay", DelaySeconds=2)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    delayed = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert delayed["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "2"
    first = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2, VisibilityTimeout=60)["Messages"]
    assert [m["Body"] for m in first] == ["queue delay"]
    later = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3, VisibilityTimeout=60)["Messages"]
    assert [m["Body"] for m in later] == ["own delay"]


def test_long_poll(sqs: Client, queue: str) -> None:
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)
    assert 0.9 <= time.monotonic() - started < 5

    def send_late() -> None:
        time.sleep(0.3)
        sqs.send_message(QueueUrl=queue, MessageBody="late")

    sender = threading.Thread(target=send_late)
    sender.start()
    started = time.monotonic()
    got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in got] == ["late"] and time.monotonic() - started < 4  # woken, not timed out
    sender.join()


def test_receive_wait_time_default_of_the_queue(sqs: Client) -> None:
    url = sqs.create_queue(QueueName=unique("wait"), Attributes={"ReceiveMessageWaitTimeSeconds": "1"})["QueueUrl"]
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert 0.9 <= time.monotonic() - started < 5


def test_redrive_to_a_dead_letter_queue(sqs: Client) -> None:
    dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn(sqs, dlq), "maxReceiveCount": 1})
    source = sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    assert json.loads(sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["RedrivePolicy"])[
        "Attributes"]["RedrivePolicy"]) == json.loads(policy)
    sqs.send_message(QueueUrl=source, MessageBody="poison")
    first = sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)["Messages"][0]
    assert "Messages" not in sqs.receive_message(QueueUrl=source, WaitTimeSeconds=1)  # moved, not redelivered
    [dead] = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)["Messages"]
    assert dead["MessageId"] == first["MessageId"] and dead["Body"] == "poison"
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [source]


@moto_gets_wrong("no DeadLetterQueueSourceArn on a dead-lettered message")
def test_dead_lettered_message_records_its_origin(sqs: Client) -> None:
    dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn(sqs, dlq), "maxReceiveCount": 1})
    source = sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    sqs.send_message(QueueUrl=source, MessageBody="poison")
    sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)
    sqs.receive_message(QueueUrl=source, WaitTimeSeconds=1)
    [dead] = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, AttributeNames=["All"])["Messages"]
    assert dead["Attributes"].get("DeadLetterQueueSourceArn") == arn(sqs, source)


def test_tags(sqs: Client) -> None:
    url = sqs.create_queue(QueueName=unique("tags"), tags={"team": "queues", "env": "test"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "queues", "env": "test"}
    sqs.tag_queue(QueueUrl=url, Tags={"env": "prod", "owner": "me"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "queues", "env": "prod", "owner": "me"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team", "owner"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "prod"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["env"])
    assert "Tags" not in sqs.list_queue_tags(QueueUrl=url) or sqs.list_queue_tags(QueueUrl=url)["Tags"] == {}


def test_purge(sqs: Client, queue: str) -> None:
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(5)])
    sqs.purge_queue(QueueUrl=queue)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    count = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert count["Attributes"]["ApproximateNumberOfMessages"] == "0"
    with pytest.raises(ClientError) as exc:  # one purge a minute
        sqs.purge_queue(QueueUrl=queue)
    assert exc.type is sqs.exceptions.PurgeQueueInProgress
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


DOCUMENTED_ATTRIBUTES = {
    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp", "DelaySeconds", "LastModifiedTimestamp", "MaximumMessageSize", "MessageRetentionPeriod",
    "QueueArn", "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout",
}


def test_get_and_set_attributes(sqs: Client) -> None:
    name = unique("attrs")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert set(attributes) >= DOCUMENTED_ATTRIBUTES
    assert attributes["VisibilityTimeout"] == "45" and attributes["DelaySeconds"] == "0"
    assert attributes["QueueArn"].startswith(f"arn:aws:sqs:{REGION}:") and attributes["QueueArn"].endswith(":" + name)
    assert abs(float(attributes["CreatedTimestamp"]) - time.time()) < 60

    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "2", "DelaySeconds": "3",
                                                       "MaximumMessageSize": "2048"})
    changed = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["VisibilityTimeout", "DelaySeconds", "MaximumMessageSize"]
    )["Attributes"]
    assert changed == {"VisibilityTimeout": "2", "DelaySeconds": "3", "MaximumMessageSize": "2048"}
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 2049)
    assert error_code(exc) == "InvalidParameterValue"

    with pytest.raises(ClientError) as exc:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchAttribute"])
    assert error_code(exc) == "InvalidAttributeName"


@moto_gets_wrong("SetQueueAttributes accepts unknown attributes and out-of-range values")
def test_set_attributes_refuses_bad_input(sqs: Client, queue: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"NoSuchAttribute": "1"})
    assert error_code(exc) == "InvalidAttributeName"
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "-1"})
    assert error_code(exc) == "InvalidAttributeValue"


def test_create_queue_with_other_attributes_fails(sqs: Client) -> None:
    name = unique("exists")
    sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "10"})
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "10"})["QueueUrl"].endswith(name)
    with pytest.raises(sqs.exceptions.QueueNameExists) as exc:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "20"})
    assert error_code(exc) == "QueueAlreadyExists"  # the legacy code, from x-amzn-query-error


def test_queue_does_not_exist(sqs: Client, sqs_backend_endpoint: str) -> None:
    missing_url = f"{sqs_backend_endpoint}/000000000000/{unique('missing')}"
    with pytest.raises(ClientError) as exc:
        sqs.get_queue_url(QueueName=unique("missing"))
    # boto3 users match on the legacy code, which travels in the x-amzn-query-error header...
    assert error_code(exc) == "AWS.SimpleQueueService.NonExistentQueue"
    assert exc.value.response["Error"]["QueryErrorCode"] == "QueueDoesNotExist"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # ...or on the modelled exception.
    assert isinstance(exc.value, sqs.exceptions.QueueDoesNotExist)
    for call in (
        lambda: sqs.send_message(QueueUrl=missing_url, MessageBody="x"),
        lambda: sqs.receive_message(QueueUrl=missing_url),
        lambda: sqs.get_queue_attributes(QueueUrl=missing_url, AttributeNames=["All"]),
        lambda: sqs.delete_queue(QueueUrl=missing_url),
    ):
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            call()


def test_receipt_handle_is_invalid(sqs: Client, queue: str) -> None:
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as exc:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle="not-a-receipt-handle")
    assert error_code(exc) == "ReceiptHandleIsInvalid"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404  # the Smithy model's status


def test_invalid_parameters(sqs: Client, queue: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=11)
    assert error_code(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=queue, MessageBody="x" * (1024 * 1024 + 1))
    assert error_code(exc) == "InvalidParameterValue"


@moto_gets_wrong("accepts bodies with characters SQS does not allow")
def test_invalid_characters_fail_their_own_batch_entry(sqs: Client, queue: str) -> None:
    sent = sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": "good", "MessageBody": "fine"}, {"Id": "bad", "MessageBody": "nul \x00 inside"},
    ])
    assert [e["Id"] for e in sent["Successful"]] == ["good"]
    assert [(e["Id"], e["Code"]) for e in sent.get("Failed", [])] == [("bad", "InvalidMessageContents")]


def test_fifo_queue_order_groups_and_deduplication(sqs: Client) -> None:
    name = unique("fifo") + ".fifo"
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})[
        "QueueUrl"]
    assert url.endswith("/" + name)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true" and attributes["ContentBasedDeduplication"] == "true"
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"a{i}", MessageGroupId="a")
    sqs.send_message(QueueUrl=url, MessageBody="b0", MessageGroupId="b")
    sqs.send_message(QueueUrl=url, MessageBody="a0", MessageGroupId="a")  # a duplicate by content: dropped

    [first] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"])["Messages"]
    assert first["Body"] == "a0" and first["Attributes"]["MessageGroupId"] == "a"
    others = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in others] == ["b0"]  # group a is blocked while a0 is in flight
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=others[0]["ReceiptHandle"])
    rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in rest] == ["a1", "a2"]

    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="no group")
    assert error_code(exc) == "MissingParameter"
    with pytest.raises(ClientError):
        sqs.create_queue(QueueName=unique("notfifo"), Attributes={"FifoQueue": "true"})


def test_fifo_explicit_deduplication_ids(sqs: Client) -> None:
    url = sqs.create_queue(QueueName=unique("dedup") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "1", "MessageBody": "one", "MessageGroupId": "g", "MessageDeduplicationId": "d1"},
        {"Id": "2", "MessageBody": "one again", "MessageGroupId": "g", "MessageDeduplicationId": "d1"},
        {"Id": "3", "MessageBody": "two", "MessageGroupId": "g", "MessageDeduplicationId": "d2"},
    ])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["MessageDeduplicationId"])
    assert [(m["Body"], m["Attributes"]["MessageDeduplicationId"]) for m in got["Messages"]] == [
        ("one", "d1"), ("two", "d2")]


@moto_gets_wrong("no SequenceNumber on receive with AttributeNames=All, and random ones on send")
def test_fifo_sequence_numbers(sqs: Client) -> None:
    url = sqs.create_queue(QueueName=unique("seq") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sent = [sqs.send_message(QueueUrl=url, MessageBody=str(i), MessageGroupId="g", MessageDeduplicationId=str(i))
            for i in range(5)]
    numbers = [int(s["SequenceNumber"]) for s in sent]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [int(m["Attributes"]["SequenceNumber"]) for m in got] == numbers
    assert numbers == sorted(numbers) and len(set(numbers)) == 5


TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_message_system_attributes(sqs: Client, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="traced",
                     MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE}})
    [message] = sqs.receive_message(QueueUrl=queue, MessageSystemAttributeNames=["AWSTraceHeader", "SentTimestamp"],
                                    VisibilityTimeout=0)["Messages"]
    assert message["Attributes"]["AWSTraceHeader"] == TRACE
    assert set(message["Attributes"]) == {"AWSTraceHeader", "SentTimestamp"}  # only what was asked for
    [message] = sqs.receive_message(QueueUrl=queue, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert message["Attributes"] == {"ApproximateReceiveCount": "2"}


@moto_gets_wrong("no MD5OfMessageSystemAttributes")
def test_digest_of_message_system_attributes(sqs: Client, queue: str) -> None:
    system = {"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE}}
    sent = sqs.send_message(QueueUrl=queue, MessageBody="traced", MessageSystemAttributes=system)
    assert sent["MD5OfMessageSystemAttributes"] == md5_of_attributes(system) == "5ae4d5d7636402d80f4eb6d213245a88"
    batch = sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": "t", "MessageBody": "traced", "MessageSystemAttributes": system},
    ])
    assert batch["Successful"][0]["MD5OfMessageSystemAttributes"] == md5_of_attributes(system)


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_permissions_are_kept_as_the_policy(sqs: Client, queue: str) -> None:
    sqs.add_permission(QueueUrl=queue, Label="partner", AWSAccountIds=["111122223333"],
                       Actions=["SendMessage", "ReceiveMessage"])
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])["Attributes"]["Policy"])
    [statement] = policy["Statement"]
    assert statement["Sid"] == "partner" and statement["Effect"] == "Allow"
    # IAM's grammar: one principal or action may be a string or a list of one; both mean the same
    assert as_list(statement["Principal"]["AWS"]) == ["arn:aws:iam::111122223333:root"]
    assert sorted(as_list(statement["Action"])) == ["SQS:ReceiveMessage", "SQS:SendMessage"]
    assert statement["Resource"] == arn(sqs, queue)
    sqs.remove_permission(QueueUrl=queue, Label="partner")
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"]).get("Attributes", {})
    assert json.loads(attributes.get("Policy", '{"Statement": []}'))["Statement"] == []
    with pytest.raises(ClientError) as exc:
        sqs.remove_permission(QueueUrl=queue, Label="partner")
    assert error_code(exc) == "InvalidParameterValue"


def dead_letters(sqs: Client, count: int) -> tuple[str, str]:
    """A source queue and its dead-letter queue holding ``count`` dead-lettered messages."""
    dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn(sqs, dlq), "maxReceiveCount": 1})
    source = sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    sqs.send_message_batch(QueueUrl=source, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(count)])
    received, deadline = 0, time.monotonic() + 10
    while received < count and time.monotonic() < deadline:
        received += len(sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0)
                        .get("Messages", []))
    assert "Messages" not in sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return source, dlq


def wait_for_task(sqs: Client, source_arn: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        [task] = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=1)["Results"]
        if task["Status"] in statuses or time.monotonic() > deadline:
            return dict(task)
        time.sleep(0.2)


@moto_gets_wrong("StartMessageMoveTask and ListMessageMoveTasks answer 500")
def test_message_move_task_back_to_the_source(sqs: Client) -> None:
    source, dlq = dead_letters(sqs, 3)
    handle = sqs.start_message_move_task(SourceArn=arn(sqs, dlq))["TaskHandle"]
    task = wait_for_task(sqs, arn(sqs, dlq), {"COMPLETED", "FAILED"})
    assert task["Status"] == "COMPLETED"  # a TaskHandle is listed only while RUNNING
    assert handle
    assert task["ApproximateNumberOfMessagesMoved"] == 3
    back = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert sorted(m["Body"] for m in back) == ["m0", "m1", "m2"]


@moto_gets_wrong("StartMessageMoveTask and CancelMessageMoveTask answer 500")
def test_message_move_task_to_a_destination_at_a_rate_cancelled(sqs: Client) -> None:
    _, dlq = dead_letters(sqs, 5)
    destination = sqs.create_queue(QueueName=unique("dest"))["QueueUrl"]
    handle = sqs.start_message_move_task(SourceArn=arn(sqs, dlq), DestinationArn=arn(sqs, destination),
                                         MaxNumberOfMessagesPerSecond=1)["TaskHandle"]
    running = wait_for_task(sqs, arn(sqs, dlq), {"RUNNING"})
    assert running["Status"] == "RUNNING" and running["TaskHandle"] == handle
    assert running["MaxNumberOfMessagesPerSecond"] == 1
    assert running["DestinationArn"] == arn(sqs, destination)
    sqs.cancel_message_move_task(TaskHandle=handle)
    task = wait_for_task(sqs, arn(sqs, dlq), {"CANCELLED"})
    assert task["Status"] == "CANCELLED"
    assert task["ApproximateNumberOfMessagesMoved"] < 5  # the rate limit held it back


@pytest.mark.skipif(target() == "moto", reason="moto checks no signatures; this is WonderQ's --sqs-credentials")
def test_signatures_against_a_broker_with_a_credentials_file(tmp_path: Path) -> None:
    """boto3 signs with the right key and works; with the wrong secret it gets SignatureDoesNotMatch."""
    if boto3_problem is not None:
        missing("boto3", boto3_problem)
    keys = tmp_path / "sqs-keys"
    keys.write_text("# WonderQ's SigV4 keys\nAKIDBOTO3 boto3/secret admin\n")
    keys.chmod(0o600)
    broker = BrokerProcess(tmp_path / "q.db", "--sqs-credentials", str(keys), log_dir=tmp_path).start()
    config = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)

    def client(secret: str) -> Client:
        return boto3.client("sqs", endpoint_url=broker.url, region_name=REGION, config=config,
                            aws_access_key_id="AKIDBOTO3", aws_secret_access_key=secret)

    try:
        right, wrong = client("boto3/secret"), client("not-it")
        url = right.create_queue(QueueName=unique("signed"))["QueueUrl"]
        right.send_message(QueueUrl=url, MessageBody="signed by boto3")
        assert right.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"][0]["Body"] == "signed by boto3"
        with pytest.raises(ClientError) as exc:
            wrong.send_message(QueueUrl=url, MessageBody="forged")
        assert error_code(exc) == "SignatureDoesNotMatch"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        right.close()
        wrong.close()
    finally:
        stop_broker(broker)
