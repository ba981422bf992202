"""The AWS CLI (``aws --endpoint-url URL sqs ...``, from .venv-awscli) with dummy credentials and
region from the environment, as a user runs it."""

from __future__ import annotations

import hashlib
import json
import subprocess
from typing import Any

import pytest

from tests.clients.conftest import AWS_CLI, client_env, missing, run, unique


class Aws:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def command(self, *args: str) -> list[str]:
        return [str(AWS_CLI), "--endpoint-url", self.endpoint, "--output", "json", "sqs", *args]

    def __call__(self, *args: str) -> Any:
        out = run(self.command(*args), env=client_env(), timeout=60).stdout
        return json.loads(out) if out.strip() else None

    def fails(self, *args: str) -> str:
        result = subprocess.run(self.command(*args), env=client_env(), capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode != 0, result.stdout
        return result.stderr


@pytest.fixture(scope="module")
def aws(sqs_endpoint: str) -> Aws:
    if not AWS_CLI.exists():
        missing("the AWS CLI (.venv-awscli)", f"no {AWS_CLI}")
    return Aws(sqs_endpoint)


def test_the_cli_speaks_the_json_protocol(aws: Aws) -> None:
    result = run([AWS_CLI, "--version"], env=client_env())
    version = (result.stdout + result.stderr).split()  # aws-cli/1.x Python/3.x Linux/... botocore/1.y
    assert version[0].startswith("aws-cli/1.")
    botocore = next(v for v in version if v.startswith("botocore/")).removeprefix("botocore/")
    assert tuple(map(int, botocore.split("."))) >= (1, 34, 90)  # JSON, not Query, from there on


def test_queue_lifecycle_and_messages(aws: Aws, sqs_endpoint: str) -> None:
    name = unique("cli")
    url = aws("create-queue", "--queue-name", name, "--attributes", "VisibilityTimeout=45")["QueueUrl"]
    assert url.startswith(sqs_endpoint + "/") and url.endswith("/" + name)
    assert aws("get-queue-url", "--queue-name", name)["QueueUrl"] == url
    assert aws("list-queues", "--queue-name-prefix", name)["QueueUrls"] == [url]

    attributes = json.dumps({"kind": {"DataType": "String", "StringValue": "cli"}})
    sent = aws("send-message", "--queue-url", url, "--message-body", "from the cli",
               "--message-attributes", attributes)
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"from the cli").hexdigest()

    entries = json.dumps([{"Id": "1", "MessageBody": "batch one"}, {"Id": "2", "MessageBody": "batch two"}])
    batch = aws("send-message-batch", "--queue-url", url, "--entries", entries)
    assert sorted(e["Id"] for e in batch["Successful"]) == ["1", "2"]

    got = aws("get-queue-attributes", "--queue-url", url, "--attribute-names", "All")["Attributes"]
    assert got["VisibilityTimeout"] == "45" and got["ApproximateNumberOfMessages"] == "3"

    received: list[dict[str, Any]] = []
    for _ in range(5):
        out = aws("receive-message", "--queue-url", url, "--max-number-of-messages", "10", "--wait-time-seconds", "1",
                  "--message-attribute-names", "All", "--attribute-names", "All")
        received += (out or {}).get("Messages", [])
        if len(received) == 3:
            break
    assert sorted(m["Body"] for m in received) == ["batch one", "batch two", "from the cli"]
    [single] = [m for m in received if m["Body"] == "from the cli"]
    assert single["MessageAttributes"] == {"kind": {"DataType": "String", "StringValue": "cli"}}
    assert single["Attributes"]["ApproximateReceiveCount"] == "1"

    for m in received:
        aws("delete-message", "--queue-url", url, "--receipt-handle", m["ReceiptHandle"])
    got = aws("get-queue-attributes", "--queue-url", url, "--attribute-names",
              "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")["Attributes"]
    assert got == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}

    aws("delete-queue", "--queue-url", url)
    assert "NonExistentQueue" in aws.fails("get-queue-url", "--queue-name", name)


def test_errors(aws: Aws) -> None:
    url = aws("create-queue", "--queue-name", unique("cli"))["QueueUrl"]
    stderr = aws.fails("delete-message", "--queue-url", url, "--receipt-handle", "not-a-receipt-handle")
    assert "ReceiptHandleIsInvalid" in stderr
    stderr = aws.fails("receive-message", "--queue-url", url, "--max-number-of-messages", "11")
    assert "InvalidParameterValue" in stderr
