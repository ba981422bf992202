"""SigV4 on the SQS API: requests signed by botocore's own signers (a real botocore client, and
SigV4Auth / SigV4QueryAuth on hand-made requests), over both wire protocols, against a broker
started with a credentials file; the server's clock is a ManualClock, moved to skew it.

Also the credentials file's parser, and the scopes and queue patterns of its keys."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.broker.sqs.conftest import PROTOCOLS, sqs_client
from tests.conftest import unique
from tests.inprocess import BASE_URL, InProcess, serving
from wonderq.backends import backend_for
from wonderq.broker.app import create_app
from wonderq.broker.caps import InFlightCap
from wonderq.broker.moves import MoveTasks
from wonderq.broker.sqs import SqsApi
from wonderq.broker.sqs.faults import SqsError
from wonderq.broker.sqs.signatures import CredentialsError, load_keys, parse_keys
from wonderq.clock import Clock, ManualClock
from wonderq.edge.requests import Request
from wonderq.settings import Settings

ADMIN = ("AKIDADMIN", "admin/secret+key")
READER = ("AKIDREAD", "read-secret")
ORDERS = ("AKIDORDERS", "orders-secret")
KEYS = f"""# the broker's SigV4 keys
{ADMIN[0]} {ADMIN[1]} admin
{READER[0]} {READER[1]} read

{ORDERS[0]} {ORDERS[1]} admin orders-*
"""
NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}
JSON = "application/x-amz-json-1.0"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
Client = Any  # botocore's clients are built at run time


def credentials_file(folder: Path, text: str = KEYS, mode: int = 0o600) -> Path:
    path = folder / "sqs-keys"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def signed_broker(tmp_path_factory: pytest.TempPathFactory, clock: ManualClock) -> Iterator[InProcess]:
    folder = tmp_path_factory.mktemp("signed")
    settings = Settings(db=str(folder / "q.db"), retention_interval=3600,
                        sqs_credentials=str(credentials_file(folder)))
    with serving(create_app(settings, clock=clock)) as app:
        yield app


@pytest.fixture(autouse=True)
def now(clock: ManualClock) -> None:
    """The server's clock at the real time (botocore signs with it) at each test's start."""
    clock.ms = Clock().now_ms()


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client(app: InProcess, protocol: str, key: tuple[str, str] = ADMIN, **config: Any) -> Client:
    return sqs_client(app, protocol, key, retries={"max_attempts": 1}, **config)


def refused(call: Any, code: str, status: int, **params: Any) -> str:
    """``call(**params)`` fails with ``code`` and ``status``; its message."""
    with pytest.raises(ClientError) as exc:
        call(**params)
    error, meta = exc.value.response["Error"], exc.value.response["ResponseMetadata"]
    assert (error["Code"], meta["HTTPStatusCode"]) == (code, status), exc.value.response
    return str(error["Message"])


# -- a botocore client, header-signed ---------------------------------------------------


def test_a_configured_key_works_and_the_wrong_secret_does_not(signed_broker: InProcess, protocol: str) -> None:
    sqs = client(signed_broker, protocol)
    url = sqs.create_queue(QueueName=unique("signed"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="signed")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "signed"
    wrong = client(signed_broker, protocol, (ADMIN[0], "not-the-secret"))
    message = refused(wrong.send_message, "SignatureDoesNotMatch", 403, QueueUrl=url, MessageBody="x")
    assert "does not match" in message


def test_an_unknown_key_id(signed_broker: InProcess, protocol: str) -> None:
    sqs = client(signed_broker, protocol, ("AKIDNOBODY", ADMIN[1]))
    refused(sqs.list_queues, "InvalidClientTokenId", 403)


def test_a_wrong_region(signed_broker: InProcess, protocol: str) -> None:
    sqs = sqs_client(signed_broker, protocol, ADMIN, region="eu-west-1", retries={"max_attempts": 1})
    message = refused(sqs.list_queues, "SignatureDoesNotMatch", 403)
    assert "Credential should be scoped to a valid region, not 'eu-west-1'" in message


def test_no_signature(signed_broker: InProcess, protocol: str) -> None:
    sqs = client(signed_broker, protocol, signature_version=UNSIGNED)
    refused(sqs.list_queues, "MissingAuthenticationToken", 403)


def test_a_skewed_clock_either_way(signed_broker: InProcess, clock: ManualClock, protocol: str) -> None:
    sqs = client(signed_broker, protocol)
    clock.advance(14 * 60)
    sqs.list_queues()  # within 15 minutes
    clock.advance(2 * 60)
    assert refused(sqs.list_queues, "SignatureDoesNotMatch", 403).startswith("Signature expired: ")
    clock.advance(-32 * 60)
    assert refused(sqs.list_queues, "SignatureDoesNotMatch", 403).startswith("Signature not yet current: ")


# -- scopes and queue patterns ------------------------------------------------------------


def test_a_read_key_reads_but_cannot_send(signed_broker: InProcess, protocol: str) -> None:
    url = client(signed_broker, protocol).create_queue(QueueName=unique("readable"))["QueueUrl"]
    reader = client(signed_broker, protocol, READER)
    assert url in reader.list_queues()["QueueUrls"]
    reader.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    assert "scope is read" in refused(reader.send_message, "AccessDenied", 403, QueueUrl=url, MessageBody="x")
    refused(reader.create_queue, "AccessDenied", 403, QueueName=unique("nope"))


def test_a_key_limited_to_a_prefix(signed_broker: InProcess, protocol: str) -> None:
    admin, orders = client(signed_broker, protocol), client(signed_broker, protocol, ORDERS)
    billing = admin.create_queue(QueueName=unique("billing"))["QueueUrl"]
    mine = orders.create_queue(QueueName=unique("orders"))["QueueUrl"]
    orders.send_message(QueueUrl=mine, MessageBody="an order")
    listed = orders.list_queues()["QueueUrls"]
    assert mine in listed and all("/orders-" in url for url in listed)
    assert billing in admin.list_queues()["QueueUrls"]
    refused(orders.send_message, "AccessDenied", 403, QueueUrl=billing, MessageBody="x")
    refused(orders.get_queue_url, "AccessDenied", 403, QueueName=billing.rsplit("/", 1)[1])
    refused(orders.create_queue, "AccessDenied", 403, QueueName=unique("billing"))
    refused(orders.delete_queue, "AccessDenied", 403, QueueUrl=billing)


def test_a_prefix_key_cannot_reach_other_queues_through_redrive_or_moves(signed_broker: InProcess,
                                                                         protocol: str) -> None:
    admin, orders = client(signed_broker, protocol), client(signed_broker, protocol, ORDERS)
    billing = admin.create_queue(QueueName=unique("billing"))["QueueUrl"]
    billing_arn = admin.get_queue_attributes(QueueUrl=billing, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    dlq = orders.create_queue(QueueName=unique("orders-dlq"))["QueueUrl"]
    dlq_arn = orders.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": billing_arn, "maxReceiveCount": "3"})
    refused(orders.create_queue, "AccessDenied", 403, QueueName=unique("orders"), Attributes={"RedrivePolicy": policy})
    refused(orders.start_message_move_task, "AccessDenied", 403, SourceArn=dlq_arn, DestinationArn=billing_arn)
    refused(orders.list_message_move_tasks, "AccessDenied", 403, SourceArn=billing_arn)


def test_a_prefix_key_cannot_move_messages_back_to_origins_it_does_not_reach(signed_broker: InProcess,
                                                                            protocol: str) -> None:
    """With no DestinationArn each message goes back to the queue it came from, which may be
    out of the key's reach (billing's dead letters land in an orders- queue): refused, as
    REST refuses it."""
    admin, orders = client(signed_broker, protocol), client(signed_broker, protocol, ORDERS)
    dlq = orders.create_queue(QueueName=unique("orders-dlq"))["QueueUrl"]
    dlq_arn = orders.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    admin.create_queue(QueueName=unique("billing"), Attributes={"RedrivePolicy": policy})
    refused(orders.start_message_move_task, "AccessDenied", 403, SourceArn=dlq_arn)
    assert admin.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]


# -- hand-signed requests: tampering, presigned URLs, malformed signatures ---------------


def sign(method: str, path: str, headers: dict[str, str], body: bytes | dict[str, str] = b"",
         key: tuple[str, str] = ADMIN, expires: int | None = None) -> tuple[str, dict[str, str], bytes]:
    """botocore's SigV4Auth (or SigV4QueryAuth when ``expires`` is given): URL, headers, body."""
    request = AWSRequest(method=method, url=BASE_URL + path, headers=headers, data=body)
    credentials = Credentials(*key)
    if expires is None:
        SigV4Auth(credentials, "sqs", "us-east-1").add_auth(request)
    else:
        SigV4QueryAuth(credentials, "sqs", "us-east-1", expires).add_auth(request)
    prepared = request.prepare()
    content = prepared.body.encode() if isinstance(prepared.body, str) else (prepared.body or b"")
    return prepared.url, dict(prepared.headers.items()), content


def send(app: InProcess, method: str, url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    with app.client() as http:
        return http.request(method, url, headers=headers, content=body)


def code_of(r: httpx.Response) -> str:
    if r.headers["content-type"] == JSON:
        return str(r.headers["x-amzn-query-error"].split(";")[0])
    return str(ET.fromstring(r.text).findtext("sqs:Error/sqs:Code", namespaces=NS))


def json_request(action: str, payload: dict[str, str]) -> tuple[dict[str, str], bytes]:
    return {"X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": JSON}, json.dumps(payload).encode()


def form_request(action: str, **params: str) -> tuple[dict[str, str], bytes]:
    body = httpx.QueryParams({"Action": action, "Version": "2012-11-05", **params})
    return {"Content-Type": FORM}, str(body).encode()


@pytest.fixture(scope="module")
def queue_url(signed_broker: InProcess) -> str:
    return str(client(signed_broker, "json").create_queue(QueueName=unique("hand"))["QueueUrl"])


def message_request(protocol: str, url: str, body: str) -> tuple[dict[str, str], bytes]:
    if protocol == "json":
        return json_request("SendMessage", {"QueueUrl": url, "MessageBody": body})
    return form_request("SendMessage", QueueUrl=url, MessageBody=body)


def test_a_signed_request_passes_as_botocore_signed_it(signed_broker: InProcess, queue_url: str,
                                                       protocol: str) -> None:
    headers, body = message_request(protocol, queue_url, "by hand")
    r = send(signed_broker, "POST", *sign("POST", "/", headers, body))
    assert r.status_code == 200, r.text


def test_a_tampered_body(signed_broker: InProcess, queue_url: str, protocol: str) -> None:
    headers, body = message_request(protocol, queue_url, "pay-10")
    url, signed, _ = sign("POST", "/", headers, body)
    assert b"pay-10" in body
    r = send(signed_broker, "POST", url, signed, body.replace(b"pay-10", b"pay-99"))
    assert (r.status_code, code_of(r)) == (403, "SignatureDoesNotMatch"), r.text


def test_a_tampered_header(signed_broker: InProcess, queue_url: str, protocol: str) -> None:
    headers, body = message_request(protocol, queue_url, "x")
    url, signed, content = sign("POST", "/", headers, body)
    signed["X-Amz-Date"] = signed["X-Amz-Date"][:-3] + ("00Z" if signed["X-Amz-Date"][-3:] != "00Z" else "01Z")
    r = send(signed_broker, "POST", url, signed, content)
    assert (r.status_code, code_of(r)) == (403, "SignatureDoesNotMatch"), r.text


def test_the_json_action_must_be_signed(signed_broker: InProcess) -> None:
    """X-Amz-Target names the action: a signature that leaves it out could be replayed as another."""
    url, signed, content = sign("POST", "/", {"Content-Type": JSON}, b"{}")
    r = send(signed_broker, "POST", url, {**signed, "X-Amz-Target": "AmazonSQS.ListQueues"}, content)
    assert (r.status_code, code_of(r)) == (400, "IncompleteSignature"), r.text
    signed["X-Amz-Target"] = "AmazonSQS.ListQueues"
    url, signed, content = sign("POST", "/", signed, b"{}")
    r = send(signed_broker, "POST", url, {**signed, "X-Amz-Target": "AmazonSQS.DeleteQueue"}, content)
    assert (r.status_code, code_of(r)) == (403, "SignatureDoesNotMatch"), r.text


def test_presigned_requests_pass(signed_broker: InProcess, queue_url: str) -> None:
    # Query: the parameters go into the query string, as botocore presigns them; GET or POST
    url, headers, body = sign("GET", "/", {}, dict(Action="SendMessage", Version="2012-11-05",
                                                   QueueUrl=queue_url, MessageBody="presigned get"), expires=300)
    assert "X-Amz-Signature=" in url and not body
    r = send(signed_broker, "GET", url, headers, body)
    assert r.status_code == 200, r.text
    # JSON: the body travels signed, by its hash in X-Amz-Content-Sha256
    headers, body = json_request("SendMessage", {"QueueUrl": queue_url, "MessageBody": "presigned json"})
    headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    url, signed, _ = sign("POST", "/", headers, b"", expires=300)
    assert send(signed_broker, "POST", url, signed, body).status_code == 200
    r = send(signed_broker, "POST", url, signed, body.replace(b"presigned", b"tampered"))
    assert (r.status_code, code_of(r)) == (403, "SignatureDoesNotMatch"), r.text


def test_a_presigned_plus_sign_cannot_be_swapped_for_a_space(signed_broker: InProcess, queue_url: str) -> None:
    """A query string's ``+`` is a space to the parameters, so it is one to the signature too:
    a signed ``%2B`` turned into ``+`` changes the message, and the signature no longer holds."""
    url, headers, body = sign("GET", "/", {}, dict(Action="SendMessage", Version="2012-11-05",
                                                   QueueUrl=queue_url, MessageBody="a+b c"), expires=300)
    assert "a%2Bb%20c" in url
    r = send(signed_broker, "GET", url.replace("a%2Bb", "a+b"), headers, body)
    assert (r.status_code, code_of(r)) == (403, "SignatureDoesNotMatch"), r.text
    assert send(signed_broker, "GET", url, headers, body).status_code == 200


def test_a_presigned_url_from_a_botocore_client(signed_broker: InProcess) -> None:
    sqs = client(signed_broker, "query")
    name = unique("presign")
    sqs.create_queue(QueueName=name)
    url = sqs.generate_presigned_url("get_queue_url", Params={"QueueName": name}, ExpiresIn=60)
    with signed_broker.client() as http:
        r = http.post(url)
    assert r.status_code == 200, r.text
    found = ET.fromstring(r.text).findtext("sqs:GetQueueUrlResult/sqs:QueueUrl", namespaces=NS)
    assert found == f"{BASE_URL}/000000000000/{name}"


def test_an_expired_presigned_url(signed_broker: InProcess, clock: ManualClock) -> None:
    url, headers, body = sign("GET", "/", {}, dict(Action="ListQueues", Version="2012-11-05"), expires=60)
    assert send(signed_broker, "GET", url, headers, body).status_code == 200
    clock.advance(61)
    r = send(signed_broker, "GET", url, headers, body)
    assert (r.status_code, code_of(r)) == (400, "RequestExpired"), r.text
    url, headers, body = sign("GET", "/", {}, dict(Action="ListQueues", Version="2012-11-05"), expires=604801)
    r = send(signed_broker, "GET", url, headers, body)
    assert (r.status_code, code_of(r)) == (400, "IncompleteSignature"), r.text
    assert "7 days" in r.text


@pytest.mark.parametrize("authorization", [
    "AWS AKIDADMIN:c2lnbmF0dXJl",  # Signature Version 2
    "AWS4-HMAC-SHA256 Credential=AKIDADMIN/20261201/us-east-1/sqs/aws4_request",  # no SignedHeaders
    "AWS4-HMAC-SHA256 Credential=AKIDADMIN/us-east-1/sqs, SignedHeaders=host, Signature=00",
    "AWS4-HMAC-SHA256 Credential=AKIDADMIN/20261201/us-east-1/sqs/aws4_request, SignedHeaders=x-amz-date,"
    " Signature=00",  # host unsigned
    "AWS4-HMAC-SHA256 Credential",
    "AWS4-HMAC-SHA256 Credential=AKIDADMIN/20261201/us-east-1/sqs/aws4_request, SignedHeaders=host;a;a,"
    " Signature=00",  # a name twice: each cost a pass over every header, 14,000 of them took 21 s
    "AWS4-HMAC-SHA256 Credential=AKIDADMIN/20261201/us-east-1/sqs/aws4_request, SignedHeaders=host;"
    + ";".join(f"h{i}" for i in range(64)) + ", Signature=00",  # more than 64
])
def test_a_malformed_authorization_header(signed_broker: InProcess, protocol: str, authorization: str) -> None:
    headers, body = json_request("ListQueues", {}) if protocol == "json" else form_request("ListQueues")
    headers |= {"Authorization": authorization, "X-Amz-Date": "20261201T000000Z"}
    r = send(signed_broker, "POST", BASE_URL + "/", headers, body)
    assert (r.status_code, code_of(r)) == (400, "IncompleteSignature"), r.text


@pytest.mark.parametrize(("change", "value"), [
    ("X-Amz-Signature", None), ("X-Amz-Credential", None), ("X-Amz-Expires", "\u00b2"),
    ("X-Amz-Expires", "0"), ("X-Amz-Expires", "9" * 5000), ("X-Amz-Date", "2026-12-01T00:00:00Z"),
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA512"),
])
def test_a_malformed_presigned_query(signed_broker: InProcess, change: str, value: str | None) -> None:
    url, headers, body = sign("GET", "/", {}, dict(Action="ListQueues", Version="2012-11-05"), expires=60)
    params = dict(httpx.URL(url).params)
    if value is None:
        del params[change]
    else:
        params[change] = value
    r = send(signed_broker, "GET", str(httpx.URL(url).copy_with(params=params)), headers, body)
    assert (r.status_code, code_of(r)) == (400, "IncompleteSignature"), r.text


def test_a_date_header_instead_of_x_amz_date(signed_broker: InProcess) -> None:
    headers, body = json_request("ListQueues", {})
    url, signed, content = sign("POST", "/", {**headers, "Date": formatdate(usegmt=True)}, body)
    assert "X-Amz-Date" not in signed
    assert send(signed_broker, "POST", url, signed, content).status_code == 200


def test_a_header_and_a_presigned_signature_at_once(signed_broker: InProcess) -> None:
    url, headers, body = sign("GET", "/", {}, dict(Action="ListQueues", Version="2012-11-05"), expires=60)
    _, signed, _ = sign("GET", "/", {}, b"")
    r = send(signed_broker, "GET", url, {**headers, "Authorization": signed["Authorization"]}, body)
    assert (r.status_code, code_of(r)) == (400, "IncompleteSignature"), r.text


# -- authentication required with no credentials file, and none configured -------------


def fake_request(headers: list[tuple[bytes, bytes]]) -> Request:
    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    return Request("POST", "/", b"", headers, b"", receive, {})


def test_required_without_keys_refuses_every_request(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "q.db"))
    db = backend_for(settings, Clock())
    api = SqsApi(db, settings, Clock(), MoveTasks(db, Clock()), InFlightCap(db, 1, Clock()), required=lambda: True)
    with pytest.raises(SqsError) as exc:
        api.grant(fake_request([]))
    assert exc.value.fault.code == "MissingAuthenticationToken"
    _, headers, _ = sign("POST", "/", {}, b"")
    with pytest.raises(SqsError) as exc:
        api.grant(fake_request([(k.lower().encode(), v.encode()) for k, v in headers.items()]))
    assert exc.value.fault.code == "InvalidClientTokenId"
    api = SqsApi(db, settings, Clock(), MoveTasks(db, Clock()), InFlightCap(db, 1, Clock()))
    assert api.grant(fake_request([])).key_id == ""


# -- the credentials file -----------------------------------------------------------------


def test_the_file_parses_into_keys_and_grants() -> None:
    keys = parse_keys(KEYS + "AKIDTWO s3cret write a, orders-*\n")
    assert set(keys) == {ADMIN[0], READER[0], ORDERS[0], "AKIDTWO"}
    secret, grant = keys["AKIDTWO"]
    assert (secret, grant.scope, grant.queues) == ("s3cret", "write", ("a", "orders-*"))
    assert keys[ADMIN[0]][1].queues == () and keys[READER[0]][1].scope == "read"


@pytest.mark.parametrize(("text", "says"), [
    ("AKID s3cr3t\n", "line 1: expected <access key id> <secret access key>"),
    ("# ok\nAKID s3cr3t owner\n", "line 2: scope must be one of read, write, admin"),
    ("AKID s3cr3t admin or*ders\n", "line 1: 'or*ders': a queue pattern"),
    ("AKID s3cr3t admin\n\nAKID two read\n", "line 3: access key id AKID is on line 1 already"),
    ("A/KID s3cr3t admin\n", "line 1: an access key id cannot hold a /"),
    ("# nothing but comments\n\n", "has no keys"),
])
def test_bad_lines_are_refused_by_line_number(text: str, says: str) -> None:
    with pytest.raises(CredentialsError, match=re.escape(says)) as exc:
        parse_keys(text)
    assert "s3cr3t" not in str(exc.value)  # a secret is never said


def test_a_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = credentials_file(tmp_path, mode=0o644)
    with pytest.raises(CredentialsError, match=r"open to other users \(mode 0644\).*chmod 600"):
        load_keys(str(path))
    path.chmod(0o640)
    with pytest.raises(CredentialsError, match="mode 0640"):
        load_keys(str(path))
    path.chmod(0o600)
    assert set(load_keys(str(path))) == {ADMIN[0], READER[0], ORDERS[0]}
    with pytest.raises(CredentialsError, match="cannot read"):
        load_keys(str(tmp_path / "missing"))


def test_a_broker_with_a_loose_file_does_not_start(tmp_path: Path) -> None:
    path = credentials_file(tmp_path, mode=0o604)
    app = create_app(Settings(db=str(tmp_path / "q.db"), sqs_credentials=str(path)))

    async def start() -> None:
        async with app.running():
            pass

    with pytest.raises(CredentialsError, match="chmod 600"):
        asyncio.run(start())
    assert not os.path.exists(tmp_path / "q.db")  # refused before the database was opened
