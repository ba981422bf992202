"""Message move tasks: a dead-letter queue's messages moved back."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.broker.sqs.test_queues import arn, code
from tests.conftest import unique


def dead_letters(sqs: Any, n_sources: int = 2) -> tuple[str, str, list[str]]:
    """A dead-letter queue holding one message from each of ``n_sources`` queues."""
    dlq_name = unique("dlq")
    dlq = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 1})
    sources = []
    for i in range(n_sources):
        source = sqs.create_queue(QueueName=unique(f"src{i}"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
        sqs.send_message(QueueUrl=source, MessageBody=f"from {i}")
        sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)
        assert "Messages" not in sqs.receive_message(QueueUrl=source)  # the second receive moved it
        sources.append(source)
    return dlq_name, dlq, sources


def wait_done(sqs: Any, source_arn: str) -> dict[str, Any]:
    for _ in range(200):
        (task,) = sqs.list_message_move_tasks(SourceArn=source_arn)["Results"]
        if task["Status"] != "RUNNING":
            return dict(task)
        time.sleep(0.02)
    raise AssertionError("the move task did not finish")


def test_move_back_to_the_sources(sqs: Any) -> None:
    dlq_name, dlq, sources = dead_letters(sqs)
    handle = sqs.start_message_move_task(SourceArn=arn(dlq_name))["TaskHandle"]
    assert handle
    task = wait_done(sqs, arn(dlq_name))
    assert task["Status"] == "COMPLETED" and task["ApproximateNumberOfMessagesMoved"] == 2
    assert task["ApproximateNumberOfMessagesToMove"] == 2
    for i, source in enumerate(sources):
        (m,) = sqs.receive_message(QueueUrl=source, AttributeNames=["All"])["Messages"]
        assert m["Body"] == f"from {i}" and m["Attributes"]["ApproximateReceiveCount"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=dlq)


def test_move_to_a_destination_at_a_rate(sqs: Any) -> None:
    dlq_name, _, _ = dead_letters(sqs, 3)
    target_name = unique("target")
    target = sqs.create_queue(QueueName=target_name)["QueueUrl"]
    sqs.start_message_move_task(SourceArn=arn(dlq_name), DestinationArn=arn(target_name),
                                MaxNumberOfMessagesPerSecond=100)
    task = wait_done(sqs, arn(dlq_name))
    assert task["DestinationArn"] == arn(target_name) and task["MaxNumberOfMessagesPerSecond"] == 100
    assert len(sqs.receive_message(QueueUrl=target, MaxNumberOfMessages=10)["Messages"]) == 3


def test_cancel_and_errors(sqs: Any) -> None:
    dlq_name, _, _ = dead_letters(sqs, 1)
    handle = sqs.start_message_move_task(SourceArn=arn(dlq_name), MaxNumberOfMessagesPerSecond=1)["TaskHandle"]
    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn=arn(dlq_name))
    assert code(e) == "InvalidParameterValue"  # one running task per source
    try:
        sqs.cancel_message_move_task(TaskHandle=handle)
    except ClientError as exc:  # it may have finished already
        assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
    assert wait_done(sqs, arn(dlq_name))["Status"] in ("CANCELLED", "COMPLETED")
    with pytest.raises(ClientError) as e:
        sqs.cancel_message_move_task(TaskHandle=handle)
    assert code(e) == "ResourceNotFoundException"
    plain = unique("plain")
    sqs.create_queue(QueueName=plain)
    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn=arn(plain))
    assert code(e) == "InvalidParameterValue"  # not a dead-letter queue
    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn=arn(unique("missing")))
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn=arn(dlq_name), DestinationArn=arn(dlq_name))
    assert code(e) == "InvalidParameterValue"  # onto itself
