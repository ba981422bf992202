"""The SQS API on several brokers sharing one PostgreSQL database: FIFO order
and group blocking hold across brokers, and an attribute change made on one
broker holds on the next request to another."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BrokerProcess, fresh_database

JSON = "application/x-amz-json-1.0"


async def sqs(client: httpx.AsyncClient, action: str, **body: Any) -> dict[str, Any]:
    r = await client.post("/", json=body, headers={"X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": JSON})
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
def brokers(broker_factory: type[BrokerProcess], postgres: str, tmp_path: Path) -> list[BrokerProcess]:
    db = fresh_database(postgres)
    return [broker_factory(db, log_dir=tmp_path).start() for _ in range(3)]


async def test_fifo_order_and_group_blocking_across_brokers(brokers: list[BrokerProcess]) -> None:
    clients = [httpx.AsyncClient(base_url=b.url, timeout=30) for b in brokers]
    try:
        url = (await sqs(clients[0], "CreateQueue", QueueName="orders.fifo",
                         Attributes={"FifoQueue": "true"}))["QueueUrl"]
        groups, per_group = 6, 30
        for n in range(per_group):
            entries = [{"Id": str(g), "MessageBody": f"{g}:{n}", "MessageGroupId": str(g),
                        "MessageDeduplicationId": f"{g}-{n}"} for g in range(groups)]
            assert not (await sqs(clients[n % 3], "SendMessageBatch", QueueUrl=url, Entries=entries))["Failed"]
        seen: dict[str, list[int]] = defaultdict(list)
        out: dict[str, int] = {}  # group -> consumers holding one of its messages now

        async def consume(client: httpx.AsyncClient) -> None:
            idle = 0
            while idle < 3:
                got = (await sqs(client, "ReceiveMessage", QueueUrl=url, MaxNumberOfMessages=3,
                                 WaitTimeSeconds=0, VisibilityTimeout=30)).get("Messages", [])
                if not got:
                    idle += 1
                    await asyncio.sleep(0.05)
                    continue
                idle = 0
                mine = {m["Body"].split(":")[0] for m in got}
                for g in mine:
                    out[g] = out.get(g, 0) + 1
                    assert out[g] == 1, f"group {g} handed to two consumers at once"
                for m in got:
                    g, n = m["Body"].split(":")
                    seen[g].append(int(n))
                await asyncio.sleep(0.01)
                for g in mine:  # from here the delete may commit before its answer arrives, and the
                    out[g] -= 1  # group may go to another consumer first: it holds it no longer
                await sqs(client, "DeleteMessageBatch", QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])

        await asyncio.gather(*(consume(c) for c in clients for _ in range(2)))
        assert {g: ns for g, ns in seen.items()} == {str(g): list(range(per_group)) for g in range(groups)}
    finally:
        for c in clients:
            await c.aclose()


async def test_set_attributes_holds_at_once_on_every_broker(brokers: list[BrokerProcess]) -> None:
    a, b, _ = (httpx.AsyncClient(base_url=x.url, timeout=30) for x in brokers)
    try:
        url = (await sqs(a, "CreateQueue", QueueName="tuned"))["QueueUrl"]
        await sqs(b, "SendMessage", QueueUrl=url, MessageBody="warm b's cache")
        await sqs(a, "SetQueueAttributes", QueueUrl=url, Attributes={"MaximumMessageSize": "1024"})
        r = await b.post("/", json={"QueueUrl": url, "MessageBody": "x" * 2000},
                         headers={"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": JSON})
        assert r.status_code == 400 and r.headers["x-amzn-query-error"].startswith("InvalidParameterValue")
        await sqs(a, "SetQueueAttributes", QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
        first = (await sqs(b, "ReceiveMessage", QueueUrl=url))["Messages"][0]
        again = (await sqs(b, "ReceiveMessage", QueueUrl=url))["Messages"][0]  # timeout 0: back at once
        assert first["MessageId"] == again["MessageId"]
    finally:
        for c in (a, b):
            await c.aclose()
