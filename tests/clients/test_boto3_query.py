"""botocore 1.34.0 (.venv-query), which speaks SQS's Query protocol: form-encoded requests, XML
answers. The client runs as a script in its own venv; this test checks what it printed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.clients.conftest import HERE, QUERY_PYTHON, client_env, missing, run, unique
from tests.clients.sqs_digests import md5_of_attributes

SCRIPT = HERE / "scripts" / "query_client.py"


@pytest.fixture(scope="module")
def query_run(sqs_endpoint: str) -> dict[str, Any]:
    if not QUERY_PYTHON.exists():
        missing("botocore 1.34.0 (.venv-query)", f"no {QUERY_PYTHON}")
    prefix = unique("query")
    out = run([QUERY_PYTHON, SCRIPT, sqs_endpoint, prefix], env=client_env(), timeout=120)
    result: dict[str, Any] = json.loads(out.stdout)
    result["prefix"] = prefix
    return result


def test_the_old_client_speaks_query_and_gets_xml(query_run: dict[str, Any]) -> None:
    assert query_run["botocore"] == "1.34.0"
    assert query_run["protocol"] == "query"
    assert query_run["content_types"] == ["text/xml"]


def test_queues(query_run: dict[str, Any], sqs_endpoint: str) -> None:
    prefix = query_run["prefix"]
    url = query_run["queue_url"]
    assert url.startswith(sqs_endpoint + "/") and url.endswith(f"/{prefix}-main")
    assert query_run["get_queue_url"] == url
    assert [u.rsplit("/", 1)[1] for u in query_run["list_queues"]] == [f"{prefix}-main", f"{prefix}-other"]
    assert query_run["queue_arn"].endswith(f":{prefix}-main")
    assert query_run["attributes"] == {"VisibilityTimeout": "40", "DelaySeconds": "2",
                                       "ApproximateNumberOfMessages": "0"}
    assert query_run["deleted"]["code"] == "AWS.SimpleQueueService.NonExistentQueue"


def test_messages(query_run: dict[str, Any]) -> None:
    attributes = {
        "text": {"DataType": "String", "StringValue": "zażółć"},
        "count": {"DataType": "Number", "StringValue": "7"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    }
    assert query_run["send"]["md5_ok"] and query_run["send"]["md5_attributes"] == md5_of_attributes(attributes)
    received = query_run["receive"]
    assert received["count"] == 1 and received["body"] == "hello <xml> & query"
    assert received["id"] == query_run["send"]["id"] and received["md5_ok"]
    assert received["md5_attributes"] == md5_of_attributes(attributes)
    assert received["attributes"] == {**attributes, "blob": {"DataType": "Binary", "BinaryValue": "00ff"}}
    assert received["receive_count"] == "1"
    assert query_run["after_visibility_change"] == "2"


def test_batches(query_run: dict[str, Any]) -> None:
    assert query_run["send_batch"] == {"ok": ["a", "b"], "failed": [["bad", "InvalidParameterValue", True]]}
    assert query_run["batch_bodies"] == ["one", "two"]
    assert query_run["delete_batch"] == {"ok": ["d0", "d1"], "failed": [["bad", "ReceiptHandleIsInvalid"]]}


def test_tags_and_purge(query_run: dict[str, Any]) -> None:
    assert query_run["tags"] == {"team": "q", "env": "test"}
    assert query_run["tags_after_untag"] == {"env": "test"}
    assert query_run["after_purge"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesDelayed": "0"}


def test_errors(query_run: dict[str, Any]) -> None:
    errors = query_run["errors"]
    assert errors["missing_queue"] == {"code": "AWS.SimpleQueueService.NonExistentQueue", "status": 400,
                                       "class": "QueueDoesNotExist"}
    assert errors["bad_receipt"] == {"code": "ReceiptHandleIsInvalid", "status": 404, "class": "ReceiptHandleIsInvalid"}
    assert errors["too_many"]["code"] == "InvalidParameterValue" and errors["too_many"]["status"] == 400
    assert errors["not_distinct"] == {"code": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "status": 400,
                                      "class": "BatchEntryIdsNotDistinct"}
