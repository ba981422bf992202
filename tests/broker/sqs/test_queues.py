"""The queue actions through botocore, on both protocols and both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique

ACCOUNT = "000000000000"


def code(e: pytest.ExceptionInfo[ClientError]) -> str:
    """The error code boto3 users match on: the legacy one over JSON too."""
    return str(e.value.response["Error"]["Code"])


def arn(name: str) -> str:
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"


def test_create_get_url_and_delete(sqs: Any) -> None:
    name = unique("q")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert url == f"http://localhost/{ACCOUNT}/{name}"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as e:
        sqs.get_queue_url(QueueName=name)
    assert code(e) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["ResponseMetadata"]["RequestId"]


def test_create_is_idempotent_and_refuses_other_attributes(sqs: Any) -> None:
    name = unique("q")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"] == url
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueNameExists) as e:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
    assert code(e) in ("QueueAlreadyExists", "QueueNameExists")


@pytest.mark.parametrize("name", ["", "a" * 81, "bad name", "x.fif", "é", "123"])  # 123: a path would read an id
def test_bad_names_are_invalid(sqs: Any, name: str) -> None:
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=name)
    blank_dropped = not name and sqs.meta.service_model.protocol == "query"  # a form drops a blank field
    assert code(e) == ("MissingParameter" if blank_dropped else "InvalidParameterValue")


def test_list_queues_with_prefix_and_pages(sqs: Any) -> None:
    prefix = unique("list")
    urls = sorted(sqs.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(5))
    assert sorted(sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]) == urls
    seen: list[str] = []
    page = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2)
    while True:
        seen += page["QueueUrls"]
        if "NextToken" not in page:
            break
        page = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2, NextToken=page["NextToken"])
    assert seen == urls
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=unique("none"))


def test_get_queue_attributes_returns_every_documented_one(sqs: Any) -> None:
    name = unique("q")
    url = sqs.create_queue(QueueName=name, Attributes={"DelaySeconds": "0", "MaximumMessageSize": "2048"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    for key in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn",
                "VisibilityTimeout", "DelaySeconds", "MessageRetentionPeriod", "MaximumMessageSize",
                "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled"):
        assert key in a, key
    assert a["QueueArn"] == arn(name)
    assert a["ApproximateNumberOfMessages"] == "1"
    assert a["MaximumMessageSize"] == "2048"
    assert a["VisibilityTimeout"] == "30" and a["MessageRetentionPeriod"] == "345600"
    only = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    assert only == {"QueueArn": arn(name)}
    with pytest.raises(ClientError) as e:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Bogus"])
    assert code(e) == "InvalidAttributeName"


def test_set_queue_attributes_takes_effect(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0", "Policy": "{}",
                                                       "KmsMasterKeyId": "alias/aws/sqs"})
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["VisibilityTimeout"] == "0" and a["Policy"] == "{}" and a["KmsMasterKeyId"] == "alias/aws/sqs"
    sqs.send_message(QueueUrl=url, MessageBody="again and again")
    first = sqs.receive_message(QueueUrl=url)["Messages"][0]
    second = sqs.receive_message(QueueUrl=url)["Messages"][0]  # timeout 0: visible again at once
    assert first["MessageId"] == second["MessageId"] and first["ReceiptHandle"] != second["ReceiptHandle"]


@pytest.mark.parametrize(("attributes", "error"), [
    ({"VisibilityTimeout": "43201"}, "InvalidAttributeValue"), ({"DelaySeconds": "x"}, "InvalidAttributeValue"),
    ({"MaximumMessageSize": "1023"}, "InvalidAttributeValue"), ({"QueueArn": "x"}, "InvalidAttributeName"),
    ({"Bogus": "1"}, "InvalidAttributeName"), ({"ContentBasedDeduplication": "true"}, "InvalidAttributeName"),
    ({"RedrivePolicy": "not json"}, "InvalidAttributeValue"), ({"FifoQueue": "true"}, "InvalidAttributeName"),
    ({"KmsDataKeyReusePeriodSeconds": "59"}, "InvalidAttributeValue"),
    ({"KmsDataKeyReusePeriodSeconds": "86401"}, "InvalidAttributeValue"),
    ({"RedriveAllowPolicy": '{"redrivePermission": "bogus"}'}, "InvalidAttributeValue"),
    ({"RedriveAllowPolicy": '{"redrivePermission": "byQueue"}'}, "InvalidAttributeValue"),
    ({"RedriveAllowPolicy": '{"redrivePermission": "allowAll", "sourceQueueArns": []}'}, "InvalidAttributeValue"),
])
def test_bad_attributes_are_refused(sqs: Any, attributes: dict[str, str], error: str) -> None:
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    assert code(e) == error


def test_purge_once_a_minute(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.purge_queue(QueueUrl=url)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress) as e:
        sqs.purge_queue(QueueUrl=url)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_dead_letter_sources_and_redrive_allow_policy(sqs: Any) -> None:
    dlq_name = unique("dlq")
    dlq = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 3})
    sources = [sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
               for _ in range(2)]
    assert sorted(sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]) == sorted(sources)
    a = sqs.get_queue_attributes(QueueUrl=sources[0], AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(a["RedrivePolicy"]) == {"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 3}
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": json.dumps(
        {"redrivePermission": "byQueue", "sourceQueueArns": [arn("allowed-only")]})})
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": policy})
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        missing = json.dumps({"deadLetterTargetArn": arn(unique("nope")), "maxReceiveCount": 3})
        sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": missing})
    assert code(e) == "InvalidParameterValue"


def test_tags(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("q"), tags={"team": "core"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "core"}
    sqs.tag_queue(QueueUrl=url, Tags={"env": "dev", "team": "edge"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "edge", "env": "dev"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "dev"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["env"])
    assert "Tags" not in sqs.list_queue_tags(QueueUrl=url)
    sqs.tag_queue(QueueUrl=url, Tags={"empty": ""})  # a Query form sends it as Tag.1.Value=
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"empty": ""}


def test_an_empty_redrive_policy_or_policy_removes_it(sqs: Any) -> None:
    """Over both protocols: the Query form's blank ``Attribute.1.Value=`` is a value, not none."""
    dlq_name = unique("dlq")
    sqs.create_queue(QueueName=dlq_name)
    policy = json.dumps({"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 3})
    url = sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Version": "2012-10-17"})})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": "", "Policy": ""})
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert "RedrivePolicy" not in attributes and "Policy" not in attributes


@pytest.mark.parametrize("tags", [{"": "x"}, {f"k{i}": "v" for i in range(51)}, {"team": "v" * 257}])
def test_a_create_with_bad_tags_makes_no_queue(sqs: Any, tags: dict[str, str]) -> None:
    name = unique("q")
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=name, tags=tags)
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=name)
    url = sqs.create_queue(QueueName=name, tags={"team": "core"})["QueueUrl"]  # the retry gets its tags
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "core"}


def test_permissions_are_kept_as_the_policy(sqs: Any) -> None:
    name = unique("q")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.add_permission(QueueUrl=url, Label="senders", AWSAccountIds=["111122223333"], Actions=["SendMessage"])
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Sid"] == "senders" and statement["Action"] == ["SQS:SendMessage"]
    assert statement["Principal"] == {"AWS": ["arn:aws:iam::111122223333:root"]} and statement["Resource"] == arn(name)
    with pytest.raises(ClientError) as e:
        sqs.add_permission(QueueUrl=url, Label="senders", AWSAccountIds=["111122223333"], Actions=["SendMessage"])
    assert code(e) == "InvalidParameterValue"
    sqs.remove_permission(QueueUrl=url, Label="senders")
    assert "Policy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    with pytest.raises(ClientError) as e:
        sqs.remove_permission(QueueUrl=url, Label="senders")
    assert code(e) == "InvalidParameterValue"


def test_actions_on_a_missing_queue(sqs: Any) -> None:
    url = f"http://localhost/{ACCOUNT}/{unique('gone')}"
    for call in (lambda: sqs.send_message(QueueUrl=url, MessageBody="x"),
                 lambda: sqs.receive_message(QueueUrl=url), lambda: sqs.delete_queue(QueueUrl=url),
                 lambda: sqs.get_queue_attributes(QueueUrl=url), lambda: sqs.purge_queue(QueueUrl=url),
                 lambda: sqs.tag_queue(QueueUrl=url, Tags={"a": "b"}), lambda: sqs.list_queue_tags(QueueUrl=url)):
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            call()


def test_queues_an_older_version_stored_still_answer_a_repeated_create(tmp_path: Path) -> None:
    """Apps call CreateQueue at every start: a queue named all digits, or one stored with
    ``Policy=""``, both taken before this version, must still get their URL back."""
    import asyncio

    from tests.broker.sqs.conftest import sqs_client
    from tests.inprocess import serving
    from wonderq.backends import backend_for
    from wonderq.broker.app import create_app
    from wonderq.models import QueueAttributes
    from wonderq.settings import Settings

    settings = Settings(db=f"sqlite:///{tmp_path / 'old.db'}", retention_interval=3600)

    async def stored_by_an_older_version() -> None:
        db = backend_for(settings)
        await db.open()
        await db.create_queue("12345", QueueAttributes())
        await db.create_queue("with-policy", QueueAttributes(extras='{"Policy":""}'))
        await db.close()

    asyncio.run(stored_by_an_older_version())
    with serving(create_app(settings)) as app:
        sqs = sqs_client(app, "json")
        assert sqs.create_queue(QueueName="12345")["QueueUrl"].endswith("/12345")
        assert sqs.create_queue(QueueName="with-policy", Attributes={"Policy": ""})["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName="with-policy")["QueueUrl"],
                                              AttributeNames=["All"])["Attributes"]
        assert "Policy" not in attributes
        with pytest.raises(ClientError) as e:
            sqs.create_queue(QueueName="67890")  # a new one is still refused
        assert code(e) == "InvalidParameterValue"


def test_text_xml_cannot_carry_stored_by_an_older_version_is_readable_over_query(tmp_path: Path) -> None:
    """Such characters are refused now, but a database may hold some from before: a Query answer
    carrying them replaces each, rather than being unreadable (and its messages hidden)."""
    import asyncio

    from tests.broker.sqs.conftest import sqs_client
    from tests.inprocess import serving
    from wonderq.backends import backend_for
    from wonderq.broker.app import create_app
    from wonderq.models import NewMessage, QueueAttributes
    from wonderq.settings import Settings

    settings = Settings(db=f"sqlite:///{tmp_path / 'old.db'}", retention_interval=3600)

    async def stored_by_an_older_version() -> None:
        db = backend_for(settings)
        await db.open()
        queue = await db.create_queue("old", QueueAttributes())
        attributes = json.dumps({"a": {"DataType": "String.\x01", "StringValue": "v"}})
        await db.send("old", NewMessage("body", attributes=attributes))
        await db.set_tags(queue.id, {"bad": "a\x02b"})
        await db.close()

    asyncio.run(stored_by_an_older_version())
    with serving(create_app(settings)) as app:
        sqs = sqs_client(app, "query")
        url = sqs.get_queue_url(QueueName="old")["QueueUrl"]
        (m,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
        assert m["MessageAttributes"]["a"]["DataType"] == "String.\ufffd"
        assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"bad": "a\ufffdb"}
