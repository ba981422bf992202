"""Every SQS action fed inputs made from botocore's own model of it, then bent out of shape:
whatever arrives, the answer is a well-formed SQS response, never a 5xx, and no handler
crashes (``serving`` fails the module on any logged error).

Inputs follow each action's input shape (structures, lists, maps, strings, integers,
booleans, blobs). Some are plausible throughout (real queue URLs, attribute names, data
types), so they reach the deeper checks and succeed now and then; in the rest any value
may be of the wrong type, empty, huge, or odd text (NUL, a lone surrogate, 70,000
characters), and some whole inputs are not even objects. The same inputs go over the
Query protocol, flattened as botocore 1.34's model (``model/``) would, plus stray
suffixes. Hypothesis is derandomized: the same examples every run, so CI is
deterministic; raise ``WONDERQ_FUZZ_EXAMPLES`` to look further locally.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import botocore.session
import httpx
import pytest
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.broker.sqs.conftest import MODEL
from tests.conftest import unique
from tests.inprocess import InProcess

EXAMPLES = int(os.environ.get("WONDERQ_FUZZ_EXAMPLES", "500"))
JSON = "application/x-amz-json-1.0"
FORM = "application/x-www-form-urlencoded"
SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=test"}
ATTRIBUTE_NAMES = ["All", "VisibilityTimeout", "DelaySeconds", "ReceiveMessageWaitTimeSeconds", "RedrivePolicy",
                   "RedriveAllowPolicy", "FifoQueue", "ContentBasedDeduplication", "MaximumMessageSize",
                   "MessageRetentionPeriod", "Policy", "DeduplicationScope", "FifoThroughputLimit",
                   "SqsManagedSseEnabled", "ApproximateReceiveCount", "SentTimestamp", "AWSTraceHeader",
                   "MessageGroupId", "QueueArn"]
ODD_TEXT = st.sampled_from([
    "", " ", "0", "-1", "1e400", "1e99999999999999999999", "20", "21", "NaN", "true", "null", "{}", "[]",
    "{\"a\":", "\x00", "\ud800", "é" * 300, "x" * 70_000, "\u00b2", "\u0661\u0660", "9" * 5000, ".*", "a.*",
    "String.x", "Binary", "Number", "arn:aws:sqs:us-east-1:000000000000:nope", "http://localhost/000000000000/"])
WRONG = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                  st.text(max_size=20), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                                            st.integers(), max_size=3))


def session(query: bool) -> botocore.session.Session:
    s = botocore.session.Session()
    if query:
        s.get_component("data_loader").search_paths.insert(0, str(MODEL))
    return s


JSON_MODEL = session(False).get_service_model("sqs")
QUERY_MODEL = session(True).get_service_model("sqs")


NAMES = st.text("abcXYZ019-_", min_size=1, max_size=12)
BY_MEMBER: dict[str, st.SearchStrategy[Any]] = {
    "QueueName": st.one_of(NAMES, NAMES.map(lambda n: n + ".fifo"), ODD_TEXT),
    "QueueNamePrefix": st.one_of(st.just("fuzz"), NAMES, ODD_TEXT),
    "DataType": st.sampled_from(["String", "Number", "Binary", "String.x", "Number.int", "Binary.png", "Str",
                                 "", "String." + "x" * 300]),
    "StringValue": st.one_of(st.sampled_from(["1", "-1.5e3", "0x10", "1" * 40]), st.text(max_size=20), ODD_TEXT),
    "MessageBody": st.one_of(st.text(max_size=50), ODD_TEXT),
    "Id": st.one_of(NAMES, ODD_TEXT),
    "Label": st.one_of(NAMES, ODD_TEXT),
    "SourceArn": st.sampled_from(["arn:aws:sqs:us-east-1:000000000000:nope", "arn:x", ""]),
    "DestinationArn": st.sampled_from(["arn:aws:sqs:us-east-1:000000000000:nope", "arn:x", ""]),
    "TaskHandle": st.one_of(st.text(max_size=30), st.just("eyJ0YXNrSWQiOiAieCJ9")),
}
CLEAN: dict[str, st.SearchStrategy[Any]] = {  # plausible values only, to reach the deeper checks
    "QueueName": st.one_of(NAMES.map(lambda n: "fuzz-" + n), NAMES.map(lambda n: "fuzz-" + n + ".fifo")),
    "DataType": st.sampled_from(["String", "Number", "Binary", "String.x"]),
    "StringValue": st.sampled_from(["1", "-1.5e3", "text"]),
    "MessageBody": st.text(min_size=1, max_size=50),
    "Id": NAMES,
}
ATTRIBUTE_VALUES = st.one_of(st.sampled_from(["0", "1", "30", "-1", "900", "1209600", "262144", "true", "false",
                                              "messageGroup", "perMessageGroupId",
                                              '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:x",'
                                              '"maxReceiveCount":"3"}', '{"redrivePermission":"denyAll"}',
                                              '{"Version":"2012-10-17","Statement":[]}']), ODD_TEXT)


def text_for(shape: Shape, member: str, urls: list[str], dirty: bool) -> st.SearchStrategy[Any]:
    if member == "QueueUrl":
        real = st.sampled_from(urls[:2] if not dirty else urls)
    elif member in BY_MEMBER:
        real = BY_MEMBER[member] if dirty else CLEAN.get(member, BY_MEMBER[member])
    elif "AttributeName" in shape.name or member in ("AttributeNames", "MessageAttributeNames"):
        real = st.sampled_from(ATTRIBUTE_NAMES)
    elif shape.enum:
        real = st.sampled_from(list(shape.enum))
    else:
        real = st.text(max_size=40) if dirty else NAMES
    return st.one_of(*[real] * 5, ODD_TEXT) if dirty else real


def value(shape: Shape, member: str, urls: list[str], dirty: bool) -> st.SearchStrategy[Any]:
    """A value of ``shape`` (as ``member`` of its parent); if ``dirty``, one time in ten
    of the wrong type, and odd text among the strings."""
    right = _right(shape, member, urls, dirty)
    return st.one_of(*[right] * 9, WRONG) if dirty else right


def _right(shape: Shape, member: str, urls: list[str], dirty: bool) -> st.SearchStrategy[Any]:
    if isinstance(shape, StructureShape):
        required = set(shape.required_members)
        members = {k: value(m, k, urls, dirty) for k, m in shape.members.items()}
        return st.fixed_dictionaries({k: v for k, v in members.items() if k in required},
                                     optional={k: v for k, v in members.items() if k not in required})
    if isinstance(shape, ListShape):
        return st.lists(value(shape.member, member, urls, dirty), max_size=12 if dirty else 3)
    if isinstance(shape, MapShape):
        values = ATTRIBUTE_VALUES if shape.value.type_name == "string" else value(shape.value, member, urls, dirty)
        keys = text_for(shape.key, "AttributeNames" if "Attribute" in member else member, urls, dirty)
        return st.dictionaries(keys, values, max_size=4 if dirty else 2)
    if shape.type_name == "integer":
        if "Wait" in member:  # never a long poll that would wait: 1-20 seconds is the one range left out
            return st.one_of(st.just(0), st.integers(-(2**40), -1), st.integers(21, 2**70))
        return st.one_of(st.integers(-5, 50), st.integers(-(2**70), 2**70)) if dirty else st.integers(0, 30)
    if shape.type_name == "boolean":
        return st.booleans()
    if shape.type_name == "blob":
        return st.one_of(st.just("aGVsbG8="), st.text(max_size=12))
    return text_for(shape, member, urls, dirty)


def harmless(action: str, params: dict[str, Any], urls: list[str]) -> dict[str, Any]:
    """The input, but a receive never waits (SetQueueAttributes may have given the queues a
    default wait) and the queues the examples share are never deleted."""
    if action == "ReceiveMessage":
        wait = params.get("WaitTimeSeconds")
        if wait is None or (isinstance(wait, int) and 1 <= wait <= 20):
            params["WaitTimeSeconds"] = 0
    if action == "DeleteQueue" and params.get("QueueUrl") in urls[:2]:
        params["QueueUrl"] = urls[2]
    return params


@pytest.fixture(scope="module")
def urls(broker: InProcess) -> list[str]:
    with broker.client() as c:
        made = []
        for name in (unique("fuzz"), unique("fuzz") + ".fifo"):
            attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
            r = c.post("/", json={"QueueName": name, "Attributes": attributes},
                       headers={"X-Amz-Target": "AmazonSQS.CreateQueue", "Content-Type": JSON})
            assert r.status_code == 200, r.text
            made.append(r.json()["QueueUrl"])
        return [*made, "http://localhost/000000000000/no-such-queue", "http://localhost/1/" + "q" * 90]


@pytest.fixture(scope="module")
def client(broker: InProcess) -> Iterator[httpx.Client]:
    with broker.client() as c:
        yield c


def calls(model: Any, urls: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    def one(name: str) -> st.SearchStrategy[tuple[str, Any]]:
        op: OperationModel = model.operation_model(name)
        shape = op.input_shape
        if shape is None:
            return st.tuples(st.just(name), st.just({}))
        clean, dirty = _right(shape, "", urls, False), _right(shape, "", urls, True)
        return st.tuples(st.just(name), st.one_of(*[clean] * 3, *[dirty] * 4, WRONG))
    return st.one_of([one(name) for name in model.operation_names])


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text[:500]
    assert r.headers.get("x-amzn-requestid"), r.headers
    assert "Traceback" not in r.text


def test_json_inputs_from_the_model_get_sqs_answers(client: httpx.Client, urls: list[str]) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(calls(JSON_MODEL, urls))
    def run(call: tuple[str, Any]) -> None:
        action, params = call
        if isinstance(params, dict):
            params = harmless(action, params, urls)
        body = json.dumps(params).encode()
        r = client.post("/", content=body, headers={"X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": JSON})
        check(r)
        if r.status_code >= 400:
            assert r.json()["__type"], r.text
            assert r.headers.get("x-amzn-query-error"), r.headers

    run()


def flatten(prefix: str, shape: Shape | None, v: Any, out: dict[str, str]) -> None:
    """``v`` as Query fields, the way botocore's Query serializer lays ``shape`` out; values
    of the wrong type go in as their text."""
    if isinstance(shape, StructureShape) and isinstance(v, dict):
        for k, item in v.items():
            member = shape.members.get(k)
            key = (member.serialization.get("name") if member is not None else None) or k
            flatten(f"{prefix}{key}" if not prefix else f"{prefix}.{key}", member, item, out)
    elif isinstance(shape, ListShape) and isinstance(v, list):
        flat = shape.serialization.get("flattened")
        name = shape.member.serialization.get("name", "member")
        for i, item in enumerate(v, 1):
            flatten(f"{prefix}.{i}" if flat else f"{prefix}.{name}.{i}", shape.member, item, out)
    elif isinstance(shape, MapShape) and isinstance(v, dict):
        k_name = shape.key.serialization.get("name", "key")
        v_name = shape.value.serialization.get("name", "value")
        for i, (k, item) in enumerate(v.items(), 1):
            base = f"{prefix}.{i}" if shape.serialization.get("flattened") else f"{prefix}.entry.{i}"
            out[f"{base}.{k_name}"] = str(k)
            flatten(f"{base}.{v_name}", shape.value, item, out)
    elif prefix:
        out[prefix] = str(v).lower() if isinstance(v, bool) else str(v)


STRAY = st.dictionaries(
    st.sampled_from(["Attribute.1.Name", "Attribute.x", "Attribute.\u00b2.Name", "a." * 500 + "b",
                     "MessageAttribute.1.Value.DataType", "Entries.1.Id", "SendMessageBatchRequestEntry.0.Id",
                     "Tag.1.Key", "AttributeName.3", "QueueUrl", "Action", "Version"]),
    st.one_of(ODD_TEXT, st.text(max_size=10)), max_size=3)


def test_query_inputs_from_the_model_get_sqs_answers(client: httpx.Client, urls: list[str]) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(calls(QUERY_MODEL, urls), STRAY)
    def run(call: tuple[str, Any], stray: dict[str, str]) -> None:
        action, params = call
        fields: dict[str, str] = {}
        if isinstance(params, dict):
            flatten("", QUERY_MODEL.operation_model(action).input_shape, harmless(action, params, urls), fields)
        fields = {"Action": action, "Version": "2012-11-05", **fields, **stray}
        if action == "ReceiveMessage":
            fields["WaitTimeSeconds"] = "0"
        raw = {k.encode(errors="surrogatepass"): v.encode(errors="surrogatepass") for k, v in fields.items()}
        r = client.post("/", content=urlencode(raw), headers={**SIGNED, "Content-Type": FORM})
        check(r)
        if r.status_code >= 400:
            assert "<ErrorResponse" in r.text, r.text[:500]

    run()
