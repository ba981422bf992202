"""The broker's promises, proven over HTTP against real broker processes:
once-only delivery, redelivery, long polling, disconnects, crash safety,
cluster mode."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import BrokerProcess


def async_client(url: str, connections: int = 100) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, timeout=30, limits=limits)


async def fill(client: httpx.AsyncClient, queue: str, count: int) -> list[int]:
    ids: list[int] = []
    for start in range(0, count, 10):
        batch = [{"body": f"m{i}"} for i in range(start, min(start + 10, count))]
        r = await client.post("/messages", json={"queue_name": queue, "messages": batch})
        assert r.status_code == 200, r.text
        ids += r.json()["ids"]
    return ids


async def drain(urls: list[str], queue: str, consumers: int, expected: int) -> Counter[int]:
    """``consumers`` concurrent consumers spread over ``urls``; every message
    received is deleted with its token. Returns how often each id arrived."""
    seen: Counter[int] = Counter()
    clients = [async_client(url) for url in urls]

    async def consumer(client: httpx.AsyncClient) -> None:
        while sum(seen.values()) < expected:
            params = {"queue_name": queue, "size": 10, "wait_time": 1, "visibility_timeout": 30}
            r = await client.get("/messages/consume", params=params)
            assert r.status_code == 200, r.text
            for m in r.json():
                seen[m["id"]] += 1
                token = {"reservation_token": m["reservation_token"]}
                d = await client.delete(f"/messages/{m['id']}", params=token)
                assert d.status_code == 200, d.text
            if not r.json() and sum(seen.values()) >= expected:
                return

    try:
        await asyncio.wait_for(
            asyncio.gather(*(consumer(clients[i % len(clients)]) for i in range(consumers))), 120
        )
    finally:
        for c in clients:
            await c.aclose()
    return seen


async def test_64_consumers_never_receive_a_message_twice(broker: BrokerProcess) -> None:
    async with async_client(broker.url) as client:
        await client.post("/queues", json={"name": "work"})
        ids = await fill(client, "work", 3000)
    seen = await drain([broker.url], "work", 64, len(ids))
    assert set(seen) == set(ids)
    assert [i for i, n in seen.items() if n > 1] == []


async def test_expired_visibility_timeout_redelivers(client: httpx.Client, queue: dict[str, object]) -> None:
    client.post("/messages", json={"queue_name": "jobs", "body": "retry me"})
    params = {"queue_name": "jobs", "visibility_timeout": 1, "wait_time": 0}
    first = client.get("/messages/consume", params=params).json()
    assert first[0]["receive_count"] == 1
    assert client.get("/messages/consume", params=params).json() == []
    again = client.get("/messages/consume", params=params | {"wait_time": 3}).json()
    assert again[0]["id"] == first[0]["id"] and again[0]["receive_count"] == 2


def timed_consume(url: str, params: dict[str, object], box: dict[str, object]) -> None:
    r = httpx.get(url + "/messages/consume", params=params, timeout=30)
    box["at"] = time.monotonic()
    box["messages"] = r.json()


async def test_long_poll_wakes_on_send_not_on_a_timer(broker: BrokerProcess, client: httpx.Client) -> None:
    client.post("/queues", json={"name": "lp"})
    box: dict[str, object] = {}
    waiting = asyncio.create_task(asyncio.to_thread(
        timed_consume, broker.url, {"queue_name": "lp", "wait_time": 10}, box
    ))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    client.post("/messages", json={"queue_name": "lp", "body": "ping"})
    sent_at = time.monotonic()
    await waiting
    assert [m["body"] for m in box["messages"]] == ["ping"]  # type: ignore[attr-defined]
    assert float(box["at"]) - sent_at < 0.5  # type: ignore[arg-type]  # the safety poll is 1 s


def test_wait_time_zero_returns_at_once(client: httpx.Client, queue: dict[str, object]) -> None:
    start = time.monotonic()
    assert client.get("/messages/consume", params={"queue_name": "jobs", "wait_time": 0}).json() == []
    assert time.monotonic() - start < 0.5


def test_delayed_message_reaches_a_waiting_consumer(client: httpx.Client, queue: dict[str, object]) -> None:
    client.post("/messages", json={"queue_name": "jobs", "body": "later", "delay_seconds": 1})
    start = time.monotonic()
    got = client.get("/messages/consume", params={"queue_name": "jobs", "wait_time": 5}).json()
    elapsed = time.monotonic() - start
    assert [m["body"] for m in got] == ["later"]
    assert 0.9 < elapsed < 1.5


async def test_consumer_that_went_away_claims_nothing(broker: BrokerProcess, client: httpx.Client) -> None:
    client.post("/queues", json={"name": "gone"})
    async with async_client(broker.url) as impatient:
        request = asyncio.create_task(impatient.get("/messages/consume", params={"queue_name": "gone"}))
        await asyncio.sleep(0.3)
        request.cancel()  # closes the connection mid long poll
        with pytest.raises(asyncio.CancelledError):
            await request
    await asyncio.sleep(0.3)
    client.post("/messages", json={"queue_name": "gone", "body": "for the next one"})
    got = client.get("/messages/consume", params={"queue_name": "gone", "wait_time": 0}).json()
    assert [m["body"] for m in got] == ["for the next one"]


async def test_sigkill_under_load_loses_no_acknowledged_message(
    broker_factory: type[BrokerProcess], db_url: str, tmp_path: Path
) -> None:
    db = db_url
    broker = broker_factory(db, log_dir=tmp_path).start()
    acked: list[int] = []
    async with async_client(broker.url) as client:
        await client.post("/queues", json={"name": "safe"})
        await client.post("/messages", json={"queue_name": "safe", "body": "held"})
        held = (await client.get("/messages/consume", params={
            "queue_name": "safe", "visibility_timeout": 2, "wait_time": 0,
        })).json()[0]

        async def producer() -> None:
            while True:
                try:
                    r = await client.post("/messages", json={"queue_name": "safe", "body": "x" * 100})
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    acked.append(r.json()["id"])

        producers = [asyncio.create_task(producer()) for _ in range(32)]
        await asyncio.sleep(1.5)
        broker.stop(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*producers), 10)
    assert len(acked) > 100

    restarted = broker_factory(db, log_dir=tmp_path)
    restarted.port = broker.port
    restarted.url = broker.url
    restarted.start()
    async with async_client(restarted.url) as client:
        stored: set[int] = set()
        after = 0
        while True:
            page = (await client.get("/queues/safe/messages", params={"size": 1000, "after": after})).json()
            if not page:
                break
            stored.update(m["id"] for m in page)
            after = page[-1]["id"]
        assert set(acked) <= stored
        params = {"queue_name": "safe", "size": 10, "wait_time": 5}
        redelivered = []
        deadline = time.monotonic() + 10
        while not redelivered and time.monotonic() < deadline:
            batch = (await client.get("/messages/consume", params=params)).json()
            redelivered = [m for m in batch if m["id"] == held["id"]]
        assert redelivered and redelivered[0]["receive_count"] == 2


async def test_long_poll_wakes_across_processes(
    broker_factory: type[BrokerProcess], db_url: str, tmp_path: Path
) -> None:
    """Two brokers on one database (SQLite file or PostgreSQL): a consumer
    waiting on one wakes for a send on the other."""
    a = broker_factory(db_url, log_dir=tmp_path).start()
    b = broker_factory(db_url, log_dir=tmp_path).start()
    httpx.post(a.url + "/queues", json={"name": "x"})
    box: dict[str, object] = {}
    waiting = asyncio.create_task(asyncio.to_thread(
        timed_consume, b.url, {"queue_name": "x", "wait_time": 10}, box
    ))
    await asyncio.sleep(0.5)
    httpx.post(a.url + "/messages", json={"queue_name": "x", "body": "from a"})
    sent_at = time.monotonic()
    await waiting
    assert [m["body"] for m in box["messages"]] == ["from a"]  # type: ignore[attr-defined]
    assert float(box["at"]) - sent_at < 0.5  # type: ignore[arg-type]


async def test_cluster_once_only_and_no_lock_errors(
    broker_factory: type[BrokerProcess], db_url: str, tmp_path: Path
) -> None:
    broker = broker_factory(db_url, "--cluster", "2", log_dir=tmp_path).start()
    assert wait_for_workers(broker, 2)
    async with async_client(broker.url, 600) as client:
        await client.post("/queues", json={"name": "c"})
        replies = await asyncio.gather(*(
            client.post("/messages", json={"queue_name": "c", "body": f"d{i}"}) for i in range(500)
        ))
    assert Counter(r.status_code for r in replies) == {200: 500}
    ids = [r.json()["id"] for r in replies]
    seen = await drain([broker.url], "c", 64, len(ids))
    assert set(seen) == set(ids)
    assert [i for i, n in seen.items() if n > 1] == []


def wait_for_workers(broker: BrokerProcess, n: int, timeout: float = 10) -> bool:
    """Readiness means one worker answers; the others may still be starting."""
    deadline = time.monotonic() + timeout
    while len(broker.children()) != n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_cluster_replaces_a_crashed_worker(
    broker_factory: type[BrokerProcess], db_url: str, tmp_path: Path
) -> None:
    broker = broker_factory(db_url, "--cluster", "2", log_dir=tmp_path).start()
    assert wait_for_workers(broker, 2)
    victim = broker.children()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        workers = broker.children()
        if len(workers) == 2 and victim not in workers:
            break
        time.sleep(0.1)
    assert len(workers) == 2 and victim not in workers
    for _ in range(20):
        assert httpx.get(broker.url + "/readyz").status_code == 200
