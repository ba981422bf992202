"""Many brokers, one PostgreSQL database: same guarantees, and surviving the
database's restart. (The wake-up latency figure itself is measured by
``bench/scaleout.py``; here it only has to beat the 1 s safety poll.)"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BrokerProcess, fresh_database
from tests.pgcluster import PostgresCluster
from tests.system.test_semantics import async_client, drain, fill


@pytest.fixture
def three_brokers(broker_factory: type[BrokerProcess], postgres: str, tmp_path: Path) -> list[BrokerProcess]:
    db = fresh_database(postgres)
    return [broker_factory(db, log_dir=tmp_path).start() for _ in range(3)]


async def test_three_brokers_deliver_everything_once(three_brokers: list[BrokerProcess]) -> None:
    producer = three_brokers[0]
    async with async_client(producer.url) as client:
        await client.post("/queues", json={"name": "spread"})
        ids = await fill(client, "spread", 3000)
    seen = await drain([b.url for b in three_brokers], "spread", 64, len(ids))
    assert set(seen) == set(ids)  # none lost
    assert [i for i, n in seen.items() if n > 1] == []  # none twice


async def test_long_poll_wakes_on_another_broker(three_brokers: list[BrokerProcess]) -> None:
    a, b, c = three_brokers
    httpx.post(a.url + "/queues", json={"name": "wake"})
    delays = []
    async with async_client(b.url) as on_b, async_client(c.url) as on_c, async_client(a.url) as on_a:
        for i in range(20):
            waiter = on_b if i % 2 else on_c
            params = {"queue_name": "wake", "wait_time": 10}
            waiting = asyncio.create_task(waiter.get("/messages/consume", params=params))
            await asyncio.sleep(0.05)
            sent = time.monotonic()
            await on_a.post("/messages", json={"queue_name": "wake", "body": str(i)})
            got = (await waiting).json()
            delays.append(time.monotonic() - sent)
            assert [m["body"] for m in got] == [str(i)]
            await waiter.delete(f"/messages/{got[0]['id']}")
    assert max(delays) < 0.5  # a notification, not the 1 s safety poll


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    """A server of this test's own, since the test restarts it."""
    cluster = PostgresCluster().init().start()
    yield cluster
    cluster.destroy()


async def test_database_restart_under_load(
    own_postgres: PostgresCluster, broker_factory: type[BrokerProcess], tmp_path: Path
) -> None:
    db = fresh_database(own_postgres.url)
    brokers = [broker_factory(db, log_dir=tmp_path).start() for _ in range(2)]
    acked: list[int] = []
    delivered: Counter[int] = Counter()
    outage: Counter[str] = Counter()
    said: set[str] = set()  # what the 503s told the clients
    stop = asyncio.Event()
    async with async_client(brokers[0].url) as p, async_client(brokers[1].url) as c:
        await p.post("/queues", json={"name": "steady"})

        async def produce() -> None:
            while not stop.is_set():
                r = await p.post("/messages", json={"queue_name": "steady", "body": "x"})
                if r.status_code == 200:
                    acked.append(r.json()["id"])
                else:
                    outage[f"{r.status_code} {r.headers.get('retry-after')}"] += 1
                    assert r.json()["error"]["code"] == "unavailable"
                    said.add(r.json()["error"]["message"])
                    await asyncio.sleep(0.05)

        async def consume() -> None:
            params = {"queue_name": "steady", "size": 10, "wait_time": 1, "visibility_timeout": 120}
            while not stop.is_set():
                r = await c.get("/messages/consume", params=params)
                if r.status_code != 200:
                    outage[f"{r.status_code} {r.headers.get('retry-after')}"] += 1
                    await asyncio.sleep(0.05)
                    continue
                for m in r.json():
                    delivered[m["id"]] += 1
                    token = {"reservation_token": m["reservation_token"]}
                    await c.delete(f"/messages/{m['id']}", params=token)

        tasks = [asyncio.create_task(produce()) for _ in range(4)] + [asyncio.create_task(consume())]
        await asyncio.sleep(1.5)
        await asyncio.to_thread(own_postgres.stop)  # fast shutdown: every connection is cut
        await asyncio.sleep(1.5)
        await asyncio.to_thread(own_postgres.start)
        recovered = await _until_ok(brokers)
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.gather(*tasks)
        remaining = await _all_ids(p)

    assert recovered, "the brokers did not reconnect by themselves"
    assert outage and all(key.startswith("503 ") and key.endswith(" 1") for key in outage), outage
    assert said and all("PostgreSQL" in m and "__" not in m and "asyncpg" not in m for m in said), said  # plain words
    assert any("database unavailable: " in b.log.read_text() for b in brokers)  # those go to the log
    assert set(acked) <= set(delivered) | remaining  # no acknowledged message lost
    assert [i for i, n in delivered.items() if n > 1] == []  # none twice within its timeout


async def _until_ok(brokers: list[BrokerProcess], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    async with async_client(brokers[0].url) as client:
        while time.monotonic() < deadline:
            statuses = [
                (await client.get(b.url + "/readyz")).status_code for b in brokers
            ]
            if statuses == [200] * len(brokers):
                return True
            await asyncio.sleep(0.2)
    return False


async def _all_ids(client: httpx.AsyncClient) -> set[int]:
    ids: set[int] = set()
    after = 0
    while page := (await client.get("/queues/steady/messages", params={"size": 1000, "after": after})).json():
        ids.update(m["id"] for m in page)
        after = page[-1]["id"]
    return ids


async def test_retention_removes_rows_of_a_queue_deleted_meanwhile(postgres: str) -> None:
    """A send racing a delete_queue can commit rows into the deleted queue;
    the retention sweep finds such rows through the index and removes them."""
    import asyncpg

    from wonderq.backends import backend_for
    from wonderq.models import NewMessage, QueueAttributes
    from wonderq.settings import Settings

    url = fresh_database(postgres)
    backend = backend_for(Settings(db=url, retention_interval=3600))
    await backend.open()
    try:
        kept = await backend.create_queue("kept", QueueAttributes())
        await backend.send("kept", NewMessage("stays"))
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO wonderq.messages (uuid, queue_id, body, created_at, visible_at)"
                " SELECT gen_random_uuid(), 424242, 'orphan', 0, 0 FROM generate_series(1, 3)"
            )
            await conn.execute(
                "INSERT INTO wonderq.queue_counts (queue_id, shard, messages) VALUES (424242, 0, 3)"
            )
            assert await backend.expire() == 3
            for table in ("messages", "queue_counts"):
                left = f"SELECT count(*) FROM wonderq.{table} WHERE queue_id = 424242"
                assert await conn.fetchval(left) == 0
        finally:
            await conn.close()
        assert [(s.queue.id, s.messages) for s in await backend.stats()] == [(kept.id, 1)]
    finally:
        await backend.close()


async def test_a_sweep_with_more_orphans_than_its_chunk_still_expires(postgres: str) -> None:
    """Orphans over the sweep's chunk left a negative LIMIT for the queues after them,
    which PostgreSQL refuses: every sweep rolled back, and retention stopped for good."""
    import asyncpg

    from wonderq.backends import backend_for
    from wonderq.models import NewMessage, QueueAttributes
    from wonderq.settings import Settings

    url = fresh_database(postgres)
    backend = backend_for(Settings(db=url, retention_interval=3600))
    await backend.open()
    try:
        await backend.create_queue("old", QueueAttributes(retention_seconds=60))
        await backend.send("old", NewMessage("expired"))
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("UPDATE wonderq.messages SET created_at = 0")
            await conn.execute(
                "INSERT INTO wonderq.messages (uuid, queue_id, body, created_at, visible_at)"
                " SELECT gen_random_uuid(), 424242, 'orphan', 0, 0 FROM generate_series(1, 5)"
            )
            assert await backend.expire_some(2) == 5  # the orphans go at once, the rest next time
            assert await backend.expire_some(2) == 1
        finally:
            await conn.close()
    finally:
        await backend.close()
