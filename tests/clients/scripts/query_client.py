"""The main SQS actions through botocore 1.34.0, which speaks the Query protocol (form-encoded
``Action=...``, answered in XML). Runs in .venv-query, not in the suite's venv:

    .venv-query/bin/python tests/clients/scripts/query_client.py ENDPOINT PREFIX

Prints one JSON object of what it saw; tests/clients/test_boto3_query.py checks it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, prefix = sys.argv[1], sys.argv[2]
sqs = boto3.client(
    "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="wonderq",
    aws_secret_access_key="wonderq", config=Config(retries={"max_attempts": 1}, read_timeout=30),
)
out: dict[str, Any] = {
    "botocore": botocore.__version__,
    "protocol": sqs.meta.service_model.protocol,
    "content_types": set(),
}


def record(http_response: Any, **_: Any) -> None:
    out["content_types"].add(http_response.headers.get("Content-Type", "").split(";")[0])


sqs.meta.events.register("after-call.sqs", record)


def error(call: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        call(**kwargs)
    except ClientError as exc:
        return {"code": exc.response["Error"]["Code"], "status": exc.response["ResponseMetadata"]["HTTPStatusCode"],
                "class": type(exc).__name__}
    return {"code": None}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


name = f"{prefix}-main"
url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "40"}, tags={"team": "q"})["QueueUrl"]
out["queue_url"] = url
out["get_queue_url"] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
sqs.create_queue(QueueName=f"{prefix}-other")
out["list_queues"] = sorted(sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"])

attributes = {
    "text": {"DataType": "String", "StringValue": "zażółć"},
    "count": {"DataType": "Number", "StringValue": "7"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
}
sent = sqs.send_message(QueueUrl=url, MessageBody="hello <xml> & query", MessageAttributes=attributes)
out["send"] = {"md5_ok": sent["MD5OfMessageBody"] == md5("hello <xml> & query"),
               "md5_attributes": sent.get("MD5OfMessageAttributes"), "id": sent["MessageId"]}

received = sqs.receive_message(QueueUrl=url, AttributeNames=["All"], MessageAttributeNames=["All"],
                               WaitTimeSeconds=1)["Messages"]
message = received[0]
out["receive"] = {
    "count": len(received), "body": message["Body"], "id": message["MessageId"],
    "md5_ok": message["MD5OfBody"] == md5(message["Body"]),
    "md5_attributes": message.get("MD5OfMessageAttributes"),
    "attributes": {k: {**v, "BinaryValue": v["BinaryValue"].hex()} if "BinaryValue" in v else v
                   for k, v in message.get("MessageAttributes", {}).items()},
    "receive_count": message["Attributes"]["ApproximateReceiveCount"],
}
sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
again = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=1)["Messages"]
out["after_visibility_change"] = again[0]["Attributes"]["ApproximateReceiveCount"]
sqs.delete_message(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"])

batch = sqs.send_message_batch(QueueUrl=url, Entries=[
    {"Id": "a", "MessageBody": "one"}, {"Id": "b", "MessageBody": "two"},
    {"Id": "bad", "MessageBody": "late", "DelaySeconds": 901},
])
out["send_batch"] = {"ok": sorted(e["Id"] for e in batch["Successful"]),
                     "failed": [(e["Id"], e["Code"], e["SenderFault"]) for e in batch.get("Failed", [])]}
messages: list[dict[str, Any]] = []
deadline = time.monotonic() + 10
while len(messages) < 2 and time.monotonic() < deadline:
    messages += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
out["batch_bodies"] = sorted(m["Body"] for m in messages)
deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
    *({"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)),
    {"Id": "bad", "ReceiptHandle": "not-a-receipt-handle"},
])
out["delete_batch"] = {"ok": sorted(e["Id"] for e in deleted["Successful"]),
                       "failed": [(e["Id"], e["Code"]) for e in deleted.get("Failed", [])]}

sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "2"})
got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
out["attributes"] = {k: got.get(k) for k in ("VisibilityTimeout", "DelaySeconds", "ApproximateNumberOfMessages")}
out["queue_arn"] = got.get("QueueArn")

sqs.tag_queue(QueueUrl=url, Tags={"env": "test"})
out["tags"] = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
out["tags_after_untag"] = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})

sqs.send_message(QueueUrl=url, MessageBody="to be purged")
sqs.purge_queue(QueueUrl=url)
out["after_purge"] = sqs.get_queue_attributes(
    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"])["Attributes"]

out["errors"] = {
    "missing_queue": error(sqs.get_queue_url, QueueName=f"{prefix}-missing"),
    "bad_receipt": error(sqs.delete_message, QueueUrl=url, ReceiptHandle="not-a-receipt-handle"),
    "too_many": error(sqs.receive_message, QueueUrl=url, MaxNumberOfMessages=11),
    "not_distinct": error(sqs.send_message_batch, QueueUrl=url,
                          Entries=[{"Id": "x", "MessageBody": "1"}, {"Id": "x", "MessageBody": "2"}]),
}
sqs.delete_queue(QueueUrl=url)
out["deleted"] = error(sqs.get_queue_url, QueueName=name)
out["content_types"] = sorted(out["content_types"])
print(json.dumps(out))
