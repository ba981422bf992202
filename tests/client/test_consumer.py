"""wonderq.Consumer against a real broker: handling, heartbeats, redelivery, graceful stop.

One broker serves the whole module; every test has its own uniquely named queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.conftest import BrokerProcess
from wonderq import AsyncClient, Client, Consumer
from wonderq.client import Message, Queue
from wonderq.errors import QueueNotFound


@pytest.fixture(scope="module")
def broker(sqlite_module_broker: BrokerProcess) -> BrokerProcess:
    """Overrides conftest's per-test broker with one per module."""
    return sqlite_module_broker


@pytest.fixture
async def wq(broker: BrokerProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(broker.url) as c:
        yield c


@pytest.fixture
async def queue(wq: AsyncClient) -> Queue:
    return await wq.create_queue(f"jobs-{uuid.uuid4().hex[:10]}")


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for a condition"
        await asyncio.sleep(0.02)


async def test_processes_and_deletes_with_bounded_concurrency(
    broker: BrokerProcess, wq: AsyncClient, queue: Queue
) -> None:
    seen: list[str] = []
    active = peak = 0

    async def handle(message: Message) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        seen.append(message.body)
        active -= 1

    await wq.send_batch(queue.name, [f"m{i}" for i in range(12)])
    consumer = Consumer(queue.name, handle, client=broker.url, concurrency=4, size=10, wait=5)
    task = asyncio.create_task(consumer.run())
    await until(lambda: len(seen) == 12)
    consumer.stop()
    await asyncio.wait_for(task, 10)

    assert sorted(seen) == sorted(f"m{i}" for i in range(12))
    assert (consumer.processed, consumer.failed) == (12, 0)
    assert 1 < peak <= 4
    assert await wq.peek(queue.name) == []  # every one deleted


async def test_sync_handler_runs_in_a_thread(wq: AsyncClient, queue: Queue) -> None:
    threads: list[str] = []

    def handle(message: Message) -> None:
        threads.append(threading.current_thread().name)

    consumer = Consumer(queue.id, handle, client=wq, wait=5)
    task = asyncio.create_task(consumer.run())
    await wq.send(queue.id, "x")
    await until(lambda: consumer.processed == 1)
    consumer.stop()
    await asyncio.wait_for(task, 10)
    assert threads and threads[0] != threading.main_thread().name
    assert await wq.peek(queue.id) == []
    await wq.ping()  # a client passed in is left open


async def test_heartbeat_keeps_a_slow_handlers_message(wq: AsyncClient, queue: Queue) -> None:
    started = asyncio.Event()
    counts: list[int] = []

    async def slow(message: Message) -> None:
        counts.append(message.receive_count)
        started.set()
        await asyncio.sleep(2.5)  # well past the 1 s visibility timeout

    await wq.send(queue.name, "slow")
    consumer = Consumer(queue.name, slow, client=wq, visibility_timeout=1, wait=5)  # heartbeat: 0.5 s
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), 10)
    async with AsyncClient(wq.url) as other:
        assert await other.receive(queue.name, size=10, wait=2) == []  # never visible meanwhile
    await until(lambda: consumer.processed == 1)
    consumer.stop()
    await asyncio.wait_for(task, 10)
    assert counts == [1]
    assert consumer.failed == 0
    assert await wq.peek(queue.name) == []


async def test_exception_leaves_the_message_for_redelivery(
    wq: AsyncClient, queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    counts: list[int] = []

    async def flaky(message: Message) -> None:
        counts.append(message.receive_count)
        if message.receive_count == 1:
            raise RuntimeError("first try fails")

    await wq.send(queue.name, "flaky")
    consumer = Consumer(queue.name, flaky, client=wq, visibility_timeout=1, wait=5)
    with caplog.at_level(logging.ERROR, "wonderq.consumer"):
        task = asyncio.create_task(consumer.run())
        await until(lambda: consumer.processed == 1)
        consumer.stop()
        await asyncio.wait_for(task, 10)
    assert counts == [1, 2]
    assert (consumer.processed, consumer.failed) == (1, 1)
    assert any("first try fails" in (r.exc_text or "") for r in caplog.records)
    assert await wq.peek(queue.name) == []


async def test_graceful_stop_releases_unstarted_and_finishes_running(wq: AsyncClient, queue: Queue) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()
    handled: list[int] = []

    async def handle(message: Message) -> None:
        started.set()
        await finish.wait()
        handled.append(message.id)

    sent = await wq.send_batch(queue.name, ["a", "b", "c", "d"])
    consumer = Consumer(queue.name, handle, client=wq, concurrency=1, size=10, visibility_timeout=30, wait=5)
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), 10)  # one running, three received and waiting
    consumer.stop()

    released: list[Message] = []
    async with AsyncClient(wq.url) as other:
        deadline = time.monotonic() + 5
        while len(released) < 3 and time.monotonic() < deadline:
            released += await other.receive(queue.name, size=10, wait=1, visibility_timeout=60)
    assert sorted(m.body for m in released) == ["b", "c", "d"]  # not waiting out 30 s
    assert all(m.receive_count == 2 for m in released)
    assert not task.done()  # still waiting for the running handler

    finish.set()
    await asyncio.wait_for(task, 10)
    assert handled == [sent[0].id]
    assert (consumer.processed, consumer.failed) == (1, 0)
    assert [m.body for m in await wq.peek(queue.name)] == ["b", "c", "d"]  # "a" deleted


async def test_stop_abandons_a_long_poll(wq: AsyncClient, queue: Queue) -> None:
    consumer = Consumer(queue.name, lambda m: None, client=wq, wait=20)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.3)  # polling an empty queue
    consumer.stop()
    await asyncio.wait_for(task, 5)  # well before the 20 s poll would end
    await wq.send(queue.name, "after")
    assert [m.body for m in await wq.receive(queue.name, wait=0)] == ["after"]  # the poll claimed nothing


async def test_stop_from_another_thread(wq: AsyncClient, queue: Queue) -> None:
    consumer = Consumer(queue.name, lambda m: None, client=wq, wait=20)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.2)
    threading.Thread(target=consumer.stop).start()
    await asyncio.wait_for(task, 5)


async def test_unknown_queue_ends_run(wq: AsyncClient) -> None:
    consumer = Consumer(f"missing-{uuid.uuid4().hex[:8]}", lambda m: None, client=wq, wait=1)
    with pytest.raises(QueueNotFound):
        await asyncio.wait_for(consumer.run(), 5)


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        Consumer("q", print, visibility_timeout=10, heartbeat=10)
    with pytest.raises(ValueError):
        Consumer("q", print, concurrency=0)
    with pytest.raises(ValueError):
        Consumer("q", print, visibility_timeout=0)
    assert Consumer("q", print, visibility_timeout=10).heartbeat == 5


SCRIPT = """
import asyncio, logging, sys
from pathlib import Path
from wonderq import Consumer

logging.basicConfig(level=logging.INFO)
started, finished = Path(sys.argv[2]), Path(sys.argv[3])

async def handle(message):
    started.write_text(str(message.id))
    await asyncio.sleep(1.5)
    finished.write_text(str(message.id))

consumer = Consumer(sys.argv[1], handle, concurrency=1, size=10, visibility_timeout=30, wait=5)
consumer.run_forever()
print("processed", consumer.processed, flush=True)
"""


def test_sigterm_stops_run_forever_cleanly(broker: BrokerProcess, tmp_path: Path) -> None:
    name = f"jobs-{uuid.uuid4().hex[:10]}"
    started, finished = tmp_path / "started", tmp_path / "finished"
    script = tmp_path / "consume.py"
    script.write_text(textwrap.dedent(SCRIPT))
    with Client(broker.url) as wq:
        wq.create_queue(name)
        sent = wq.send_batch(name, ["a", "b", "c", "d"])
        env = os.environ | {"WONDERQ_URL": broker.url}
        proc = subprocess.Popen(
            [sys.executable, str(script), name, str(started), str(finished)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 15
            while not started.exists():
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
        assert out.strip() == "processed 1"
        assert finished.read_text() == str(sent[0].id)  # the running handler finished
        released = wq.receive(name, size=10, wait=0)  # the held three are visible at once
        assert sorted(m.body for m in released) == ["b", "c", "d"]
        assert [m.body for m in wq.peek(name)] == ["b", "c", "d"]  # "a" was deleted


async def test_retry_delay_brings_a_failed_message_back_sooner(wq: AsyncClient, queue: Queue) -> None:
    seen: list[float] = []

    def flaky(message: Message) -> None:  # sync: runs in a thread of its own
        seen.append(time.monotonic())
        if message.receive_count == 1:
            raise RuntimeError("first try fails")

    await wq.send(queue.name, "flaky")
    consumer = Consumer(queue.name, flaky, client=wq, visibility_timeout=60, retry_delay=1, wait=5)
    task = asyncio.create_task(consumer.run())
    await until(lambda: consumer.processed == 1, timeout=15)
    consumer.stop()
    await asyncio.wait_for(task, 10)
    assert (consumer.processed, consumer.failed) == (1, 1)
    assert 0.9 <= seen[1] - seen[0] < 10  # a second later, not after the 60 s timeout


def test_retry_delay_is_checked() -> None:
    with pytest.raises(ValueError, match="retry_delay"):
        Consumer("q", print, retry_delay=-1)


SLOW = """
import logging, sys, time
from pathlib import Path
from wonderq import Consumer

started = Path(sys.argv[2])

def handle(message):  # a slow sync handler, as in the issue
    started.write_text(str(message.id))
    time.sleep(60)

Consumer(sys.argv[1], handle, concurrency=1, size=1, visibility_timeout=120, wait=5).run_forever()
print("returned", flush=True)
"""


def test_ctrl_c_says_what_it_waits_for_and_a_second_stops_now(broker: BrokerProcess, tmp_path: Path) -> None:
    name = f"jobs-{uuid.uuid4().hex[:10]}"
    started = tmp_path / "started"
    (tmp_path / "slow.py").write_text(textwrap.dedent(SLOW))
    with Client(broker.url) as wq:
        wq.create_queue(name)
        (sent,) = wq.send_batch(name, ["slow"])
    env = os.environ | {"WONDERQ_URL": broker.url}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "slow.py"), name, str(started)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # the first Ctrl-C waits for the handler
        proc.send_signal(signal.SIGINT)
        stopped_at = time.monotonic()
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - stopped_at < 10, "the second Ctrl-C did not stop it at once"
    assert proc.returncode == 0 and out == "returned\n", (out, err)
    assert f"waiting for 1 running handler(s) to finish (message {sent.id}); press Ctrl-C again" in err, err
    assert "stopping now" in err and "Traceback" not in err, err
