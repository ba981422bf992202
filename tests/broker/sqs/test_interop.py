"""One set of queues: whichever API sends a message, the other can take it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import unique


def test_sent_through_sqs_consumed_through_rest(client: httpx.Client, sqs: Any) -> None:
    name = unique("mixed")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody="from sqs")
    peeked = client.get(f"/queues/{name}/messages").json()
    assert [m["body"] for m in peeked] == ["from sqs"] and peeked[0]["message_id"] == sent["MessageId"]
    (m,) = client.get("/messages/consume", params={"queue_name": name, "wait_time": 0}).json()
    assert m["body"] == "from sqs"
    r = client.delete(f"/messages/{m['id']}", params={"reservation_token": m["reservation_token"]})
    assert r.status_code == 200


def test_sent_through_rest_received_through_sqs(client: httpx.Client, sqs: Any) -> None:
    name = unique("mixed")
    assert client.post("/queues", json={"name": name, "visibility_timeout": 5}).status_code == 200
    sent = client.post("/messages", json={"queue_name": name, "body": "from rest"}).json()
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    assert url in sqs.list_queues(QueueNamePrefix=name)["QueueUrls"]
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": "5"}
    (m,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert m["Body"] == "from rest" and m["MessageId"] == sent["message_id"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert client.get(f"/queues/{name}/messages").json() == []
