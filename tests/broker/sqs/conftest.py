"""The SQS API tested in-process through botocore itself: its serializers, its
parsers and its error mapping, on both wire protocols and both backends.

botocore's ``before-send`` event hands each signed request to the broker app
through httpx's ASGI transport, so no socket is opened. The JSON protocol uses
the installed botocore's model; the Query protocol uses botocore 1.34.0's SQS
model (``model/``, the last one that spoke Query), loaded into the same
botocore. Every call's action, protocol and status are recorded, which is
what ``docs/sqs.md``'s compatibility table is made from (tools/sqs_table.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config

from tests.inprocess import InProcess

PROTOCOLS = ["json", "query"]
MODEL = Path(__file__).parent / "model"
RECORD = os.environ.get("WONDERQ_SQS_RECORD")  # a folder: record calls there for the table
CALLS: list[tuple[str, str, int]] = []


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


def sqs_client(app: InProcess, protocol: str, key: tuple[str, str] = ("test", "test"),
               region: str = "us-east-1", **config: Any) -> Any:
    """A botocore SQS client whose requests go into ``app``, signed with ``key`` (id, secret);
    ``config`` goes to botocore's Config (``signature_version=UNSIGNED``, say)."""
    session = botocore.session.Session()
    if protocol == "query":
        session.get_component("data_loader").search_paths.insert(0, str(MODEL))
    client = session.create_client(
        "sqs", region_name=region, endpoint_url=app.url, aws_access_key_id=key[0], aws_secret_access_key=key[1],
        config=Config(**config) if config else None,
    )
    assert client.meta.service_model.protocol == protocol
    http = app.client()

    def send(request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        body = request.body.encode() if isinstance(request.body, str) else (request.body or b"")
        r = http.request(request.method, request.url, headers=dict(request.headers.items()), content=body)
        operation = kwargs.get("event_name", "").rsplit(".", 1)[-1]
        CALLS.append((operation, protocol, r.status_code))
        return AWSResponse(request.url, r.status_code, r.headers, _Raw(r.content))

    client.meta.events.register("before-send.sqs", send)
    return client


@pytest.fixture(scope="module", params=PROTOCOLS)
def sqs(request: pytest.FixtureRequest, broker: InProcess) -> Any:
    return sqs_client(broker, request.param)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if RECORD and CALLS:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        Path(RECORD).mkdir(parents=True, exist_ok=True)
        (Path(RECORD) / f"{worker}.json").write_text(json.dumps(CALLS))
