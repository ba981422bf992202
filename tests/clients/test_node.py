"""Node 20 with ``@aws-sdk/client-sqs`` v3 and ``sqs-consumer`` v14 (tests/clients/node, installed
by ``npm ci``): scripts that talk to the server; these tests check what they printed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.clients.conftest import NODE_DIR, client_env, node, run, unique
from tests.clients.sqs_digests import md5_of_attributes


def run_node(script: str, *args: str) -> dict[str, Any]:
    out = run([node(), NODE_DIR / script, *args], cwd=NODE_DIR, env=client_env(), timeout=90)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.fixture(scope="module")
def sdk_run(sqs_endpoint: str) -> dict[str, Any]:
    return run_node("sqs.mjs", sqs_endpoint, unique("node"))


def test_sdk_sends_receives_and_checks_the_body_digest(sdk_run: dict[str, Any], sqs_endpoint: str) -> None:
    assert sdk_run["md5Checks"] is True and sdk_run["badDigestRefused"] is True  # the SDK's check is live
    assert sdk_run["queueUrl"].startswith(sqs_endpoint + "/") and sdk_run["getQueueUrl"] == sdk_run["queueUrl"]
    assert sdk_run["batchOk"] == ["m0", "m1", "m2"]
    assert sdk_run["bodies"] == ["batch 0", "batch 1", "batch 2", "from node \U0001f680 zażółć"]
    assert sdk_run["send"]["md5Ok"] and sdk_run["single"]["md5Ok"]
    assert sdk_run["single"]["receiveCount"] == "1"


def test_sdk_message_attributes(sdk_run: dict[str, Any]) -> None:
    attributes = {
        "n": {"DataType": "Number", "StringValue": "3"},
        "s": {"DataType": "String", "StringValue": "node"},
        "b": {"DataType": "Binary", "BinaryValue": bytes([1, 2, 255])},
    }
    assert sdk_run["send"]["md5OfAttributes"] == md5_of_attributes(attributes)
    assert sdk_run["single"]["md5OfAttributes"] == md5_of_attributes(attributes)
    assert sdk_run["single"]["attributes"] == {**attributes, "b": {"DataType": "Binary", "BinaryValue": "0102ff"}}


def test_sdk_change_visibility_delete_and_errors(sdk_run: dict[str, Any]) -> None:
    assert sdk_run["redelivered"] == [["from node \U0001f680 zażółć", "2"]]
    assert sdk_run["deleted"] == 3
    assert sdk_run["counts"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    assert sdk_run["missing"] == {"name": "QueueDoesNotExist", "isQueueDoesNotExist": True, "status": 400}


def test_sqs_consumer_handles_every_message_and_stops(sqs_endpoint: str) -> None:
    result = run_node("consumer.mjs", sqs_endpoint, unique("consumer"), "25")
    assert result["handled"] == 25
    assert result["retried"] == 2  # the failed first delivery came back and was handled
    [error] = result["errors"]
    assert error.startswith("processing_error:") and "the first delivery of job 0 fails" in error
    assert result["counts"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
