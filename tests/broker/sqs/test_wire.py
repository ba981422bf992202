"""The two wire protocols byte by byte, as hand-written clients and curl see them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import unique
from wonderq.broker.sqs.faults import SqsError
from wonderq.broker.sqs.query import reshape

NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}
JSON = "application/x-amz-json-1.0"


def target(client: httpx.Client, action: str, body: object, path: str = "/") -> httpx.Response:
    return client.post(path, json=body, headers={"X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": JSON})


SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=test"}  # a form needs one (edge/guard.py)


def form(client: httpx.Client, path: str = "/", **params: str) -> httpx.Response:
    return client.post(path, data={"Version": "2012-11-05", **params}, headers=SIGNED)


def test_json_success_and_error_shapes(client: httpx.Client) -> None:
    name = unique("q")
    r = target(client, "CreateQueue", {"QueueName": name})
    assert r.status_code == 200 and r.headers["content-type"] == JSON and r.headers["x-amzn-requestid"]
    assert r.json() == {"QueueUrl": f"http://localhost/000000000000/{name}"}
    r = target(client, "GetQueueUrl", {"QueueName": unique("missing")})
    assert r.status_code == 400 and r.headers["x-amzn-requestid"]
    assert r.json()["__type"] == "com.amazonaws.sqs#QueueDoesNotExist" and r.json()["message"]
    assert r.headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"


def test_query_success_and_error_shapes(client: httpx.Client) -> None:
    name = unique("q")
    r = form(client, Action="CreateQueue", QueueName=name, **{"Attribute.1.Name": "DelaySeconds",
                                                             "Attribute.1.Value": "2"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.text)
    assert root.tag == f"{{{NS['sqs']}}}CreateQueueResponse"
    assert root.findtext("sqs:CreateQueueResult/sqs:QueueUrl", namespaces=NS) == (
        f"http://localhost/000000000000/{name}")
    assert root.findtext("sqs:ResponseMetadata/sqs:RequestId", namespaces=NS) == r.headers["x-amzn-requestid"]
    r = form(client, Action="GetQueueUrl", QueueName=unique("missing"))
    assert r.status_code == 400
    error = ET.fromstring(r.text).find("sqs:Error", NS)
    assert error is not None
    assert error.findtext("sqs:Code", namespaces=NS) == "AWS.SimpleQueueService.NonExistentQueue"
    assert error.findtext("sqs:Type", namespaces=NS) == "Sender"


def test_a_repeated_query_field_is_an_sqs_error_and_a_blank_one_none(client: httpx.Client) -> None:
    """Refused in the Query protocol's own XML (routing reads the form to find the API);
    a blank field is as if left out, as SQS's clients send an empty list (``Entries=``)."""
    for r in (client.post("/", content=b"Action=ListQueues&Action=ListQueues", headers={**SIGNED, "Content-Type":
                                                                                     "application/x-www-form-urlencoded"}),
              client.get("/", params=[("Action", "ListQueues"), ("QueueNamePrefix", "a"), ("QueueNamePrefix", "b")])):
        assert r.status_code == 400 and r.headers["content-type"].startswith("text/xml"), r.text
        assert "more than once" in r.text
    r = form(client, Action="ListQueues", QueueNamePrefix="")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml"), r.text


def test_query_on_the_queue_path_and_by_get(client: httpx.Client) -> None:
    """curl users post to the queue URL, or put a read in a GET's query string."""
    name = unique("q")
    form(client, Action="CreateQueue", QueueName=name)
    r = form(client, f"/000000000000/{name}", Action="SendMessage", MessageBody="via path")
    assert r.status_code == 200, r.text
    r = form(client, f"/000000000000/{name}", Action="ReceiveMessage", **{"AttributeName.1": "All"})
    assert r.status_code == 200, r.text
    message = ET.fromstring(r.text).find("sqs:ReceiveMessageResult/sqs:Message", NS)
    assert message is not None and message.findtext("sqs:Body", namespaces=NS) == "via path"
    names = [a.findtext("sqs:Name", namespaces=NS) for a in message.findall("sqs:Attribute", NS)]
    assert "SentTimestamp" in names and "ApproximateReceiveCount" in names
    r = client.get(f"/000000000000/{name}", params={"Action": "GetQueueAttributes", "AttributeName.1": "All"})
    assert r.status_code == 200 and "ApproximateNumberOfMessagesNotVisible" in r.text, r.text


@pytest.mark.parametrize("action", ["SendMessage", "ReceiveMessage", "PurgeQueue", "DeleteQueue",
                                    "SetQueueAttributes", "TagQueue", "CreateQueue"])
def test_an_unsigned_get_may_not_change_a_queue(client: httpx.Client, action: str) -> None:
    """An <img> on any page can send a GET, and browsers older than Sec-Fetch-Site do not say
    from where: unless signatures are checked, a GET only reads or acts on a receipt handle."""
    name = unique("q")
    form(client, Action="CreateQueue", QueueName=name)
    form(client, f"/000000000000/{name}", Action="SendMessage", MessageBody="stays")
    params = {"Action": action, "MessageBody": "x", "QueueName": unique("new"), "Tag.1.Key": "k",
              "Tag.1.Value": "v", "Attribute.1.Name": "DelaySeconds", "Attribute.1.Value": "1"}
    r = client.get(f"/000000000000/{name}", params=params)
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text and "POST" in r.text, r.text
    r = form(client, f"/000000000000/{name}", Action="GetQueueAttributes", **{"AttributeName.1": "All"})
    assert "<Name>ApproximateNumberOfMessages</Name><Value>1</Value>" in r.text, r.text


def test_an_unsigned_get_may_still_delete_by_receipt_handle(client: httpx.Client) -> None:
    """kombu's own requests send DeleteMessage as a GET when botocore speaks Query."""
    name = unique("q")
    form(client, Action="CreateQueue", QueueName=name)
    form(client, f"/000000000000/{name}", Action="SendMessage", MessageBody="done")
    r = form(client, f"/000000000000/{name}", Action="ReceiveMessage")
    handle = ET.fromstring(r.text).findtext("sqs:ReceiveMessageResult/sqs:Message/sqs:ReceiptHandle", namespaces=NS)
    assert handle, r.text
    for action in ("ChangeMessageVisibility", "DeleteMessage"):
        params = {"Action": action, "ReceiptHandle": handle, "VisibilityTimeout": "0"}
        if action == "DeleteMessage":
            params.pop("VisibilityTimeout")
        r = client.get(f"/000000000000/{name}", params=params)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("send", [
    lambda c: c.post("/", content=b"{not json", headers={"X-Amz-Target": "AmazonSQS.ListQueues"}),
    lambda c: c.post("/", content=b"[1, 2]", headers={"X-Amz-Target": "AmazonSQS.ListQueues"}),
    lambda c: target(c, "NoSuchAction", {}),
    lambda c: target(c, "SendMessage", {"QueueUrl": 5, "MessageBody": "x"}),
    lambda c: target(c, "SendMessage", {"QueueUrl": "http://localhost/0/q"}),
    lambda c: target(c, "ReceiveMessage", {"QueueUrl": "http://localhost/0/q", "MaxNumberOfMessages": "many"}),
    lambda c: target(c, "SendMessageBatch", {"QueueUrl": "http://localhost/0/q", "Entries": "no"}),
    lambda c: target(c, "TagQueue", {"QueueUrl": "http://localhost/0/q", "Tags": ["a"]}),
    lambda c: form(c, Action="NoSuchAction"),
    lambda c: form(c, Action="SendMessageBatch", QueueUrl="http://localhost/0/q",
                   **{"SendMessageBatchRequestEntry.x.Id": "1"}),
    lambda c: form(c, Action="SendMessage", QueueUrl="http://localhost/0/q", MessageBody="x",
                   **{"MessageAttribute.1.Name": "a"}),
    lambda c: form(c, Action="CreateQueue", QueueName="a", Attribute="x", **{"Attribute.1.Name": "y"}),
])
def test_garbage_gets_a_4xx_never_a_500(client: httpx.Client, send: Any) -> None:
    r = send(client)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["x-amzn-requestid"]


def test_queue_urls_follow_the_host_header(client: httpx.Client) -> None:
    name = unique("q")
    r = target(client, "CreateQueue", {"QueueName": name})
    r = client.post("/", json={"QueueName": name}, headers={
        "X-Amz-Target": "AmazonSQS.GetQueueUrl", "Content-Type": JSON, "Host": "127.0.0.1:3213"})
    assert r.json()["QueueUrl"] == f"http://127.0.0.1:3213/000000000000/{name}"


def test_a_cross_site_page_cannot_drive_the_sqs_api(client: httpx.Client) -> None:
    r = client.post("/", data={"Action": "CreateQueue", "QueueName": unique("csrf")},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert "AccessDenied" in r.text


def test_the_rest_api_is_untouched(client: httpx.Client) -> None:
    r = client.post("/queues", json={"name": unique("rest")})
    assert r.status_code == 200 and "visibility_timeout" in r.json()


def test_json_escapes_of_refused_characters_are_caught(client: httpx.Client) -> None:
    """A body is vouched for by a scan of the whole request (awsjson.valid_text) unless the
    request holds a backslash or a 0xEF byte, which is where a character XML refuses can hide;
    then each body is checked itself."""
    url = target(client, "CreateQueue", {"QueueName": unique("q")}).json()["QueueUrl"]
    head = {"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": JSON}
    for escape in (b"\\u0001", b"\\b", b"\\f", b"\\uFFFE", "\uffff".encode(), "\ufffe".encode()):
        raw = b'{"QueueUrl": "' + url.encode() + b'", "MessageBody": "x' + escape + b'"}'
        r = client.post("/", content=raw, headers=head)
        assert r.status_code == 400 and r.json()["__type"].endswith("#InvalidMessageContents"), escape
    for fine in (b"x\\\\b\\t\\u00e9", "caf\u00e9 \ufffd \U0001f600".encode()):
        raw = b'{"QueueUrl": "' + url.encode() + b'", "MessageBody": "' + fine + b'"}'
        assert client.post("/", content=raw, headers=head).status_code == 200, fine
    raw = b'{"QueueUrl": "' + url.encode() + b'", "MessageBody": "\xed\xa0\x80"}'  # a surrogate
    assert client.post("/", content=raw, headers=head).status_code == 400


ARABIC_TEN = "\u0661\u0660"


def test_numbers_are_ascii_digits_of_a_sane_length(client: httpx.Client) -> None:
    """``str.isdigit`` takes a superscript two and Arabic-Indic digits, and ``int`` refuses the
    first and 4,300 digits: each was a 500, or for the Arabic-Indic ten, read as 10."""
    url = target(client, "CreateQueue", {"QueueName": unique("q")}).json()["QueueUrl"]
    for odd in ("²", ARABIC_TEN, "9" * 5000):
        r = target(client, "SetQueueAttributes", {"QueueUrl": url, "Attributes": {"DelaySeconds": odd}})
        assert r.status_code == 400 and r.json()["__type"].endswith("#InvalidAttributeValue"), odd
        policy = orjson.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:x",
                               "maxReceiveCount": odd}).decode()
        r = target(client, "SetQueueAttributes", {"QueueUrl": url, "Attributes": {"RedrivePolicy": policy}})
        assert r.status_code == 400 and r.json()["__type"].endswith("#InvalidAttributeValue"), odd
        r = target(client, "CreateQueue", {"QueueName": unique("q"), "Attributes": {"VisibilityTimeout": odd}})
        assert r.status_code == 400, odd
    r = form(client, Action="CreateQueue", QueueName=unique("q"),
             **{"Attribute.².Name": "DelaySeconds", "Attribute.².Value": "1"})
    assert r.status_code == 400 and "numbered" in r.text
    for number, ok in ((ARABIC_TEN, False), ("1" * 38, True), ("1" * 39, False), ("1e126", True), ("1e127", False),
                       ("1e99999999999999999999", False)):
        r = target(client, "SendMessage", {"QueueUrl": url, "MessageBody": "x", "MessageAttributes": {
            "n": {"DataType": "Number", "StringValue": number}}})
        assert r.status_code == (200 if ok else 400), (number, r.text)


def test_a_query_field_name_of_too_many_parts_is_refused() -> None:
    with pytest.raises(SqsError, match="parts"):
        reshape({"Action": "ListQueues", "a." * 500 + "b": "1"})  # recursion, before: a 500
    assert reshape({"Attribute.1.Name": "DelaySeconds", "Attribute.1.Value": "1"})


def test_core_errors_speak_sqs_words_not_internal_ids(client: httpx.Client) -> None:
    """A missing queue reads the same from every action, and a stale receipt handle names no
    internal message id, in a batch entry too."""
    for action, body in [("SendMessage", {"QueueUrl": "http://localhost/000000000000/nope", "MessageBody": "x"}),
                         ("GetQueueUrl", {"QueueName": "nope"})]:
        r = target(client, action, body)
        assert r.json()["message"] == "The specified queue does not exist.", r.text
    url = target(client, "CreateQueue", {"QueueName": unique("q")}).json()["QueueUrl"]
    target(client, "SendMessage", {"QueueUrl": url, "MessageBody": "x"})
    received = target(client, "ReceiveMessage", {"QueueUrl": url, "VisibilityTimeout": 0}).json()["Messages"][0]
    target(client, "ReceiveMessage", {"QueueUrl": url})  # received again: the first handle is stale
    r = target(client, "ChangeMessageVisibility",
               {"QueueUrl": url, "ReceiptHandle": received["ReceiptHandle"], "VisibilityTimeout": 5})
    assert r.json()["__type"].endswith("#ReceiptHandleIsInvalid") and "received again" in r.json()["message"]
    r = target(client, "ChangeMessageVisibilityBatch", {"QueueUrl": url, "Entries": [
        {"Id": "a", "ReceiptHandle": received["ReceiptHandle"], "VisibilityTimeout": 5}]})
    (failed,) = r.json()["Failed"]
    assert "received again" in failed["Message"] and received["MessageId"] not in failed["Message"], failed
    assert not any(ch.isdigit() for ch in r.json()["Failed"][0]["Message"])


@pytest.mark.parametrize(("action", "body", "words"), [
    ("SendMessage", {"QueueUrl": 5, "MessageBody": "x"}, "QueueUrl must be a string"),
    ("ListQueues", {"NextToken": "@@@"}, "Invalid NextToken"),
    ("ListQueues", {"NextToken": "AAAA"}, "Invalid NextToken"),  # base64 of bytes that name no queue
])
def test_a_wrong_value_is_invalid_not_missing_or_ignored(client: httpx.Client, action: str, body: object,
                                                         words: str) -> None:
    r = target(client, action, body)
    assert r.status_code == 400 and r.json()["__type"].endswith("#InvalidParameterValue"), r.text
    assert words in r.json()["message"], r.text
