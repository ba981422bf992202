"""Soak: minutes of mixed load on one broker, watching that its memory and descriptors stay flat.

The broker runs as a user starts it (``wonderq broker``, its defaults, a fresh SQLite file in a
temp folder), pinned to CPU 0 by bench.py's ``Broker``; this process (the load and the sampler,
on one asyncio loop) pins itself to CPU 1. Over loopback, each with a bounded count and rate:

    REST producers    keep-alive; single sends and batches of 10 to soak-rest
    SQS producers     keep-alive; SendMessage and SendMessageBatch (JSON protocol) to soak-sqs
    REST consumers    long polls (size 10, wait 5 s), then one batch delete of what they got
    SQS consumers     ReceiveMessage (10, wait 5 s), then DeleteMessageBatch
    abandoners        a new connection per long poll (REST and SQS) of an empty queue, closed
                      by the client 0.1-2 s into its 20 s wait
    churners          a new connection per request: find a queue, send one, GetQueueAttributes,
                      list the queues with their counts, /healthz

Every few seconds it samples the broker's RSS (/proc/<pid>/status) and open descriptors
(/proc/<pid>/fd). It prints start (before the load), after warm-up, peak and end for each,
descriptors once the load has gone, the requests done and the errors: any non-2xx, any
exception, a delete that failed, and a message lost (sent - deleted - left in the queue != 0).
It exits 1 if there were errors, if the end RSS is over ``RSS_GROWTH`` x the RSS after warm-up,
or if the broker holds more than ``FD_SLACK`` descriptors more once the load has gone than
before it began.

    .venv/bin/python bench/soak.py                  # 10 minutes
    .venv/bin/python bench/soak.py --minutes 1      # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import Broker, cpu_ticks, http_json, pin_self
from loadgen import Connection, HttpError, Stats, build_request, connect, run
from sqs_bench import create_sqs_queue, sqs_request

RSS_GROWTH = 1.5  # end RSS may be at most this times the RSS after warm-up
FD_SLACK = 2  # descriptors the broker may hold, once the load has gone, over its count before it
REST_QUEUE, SQS_QUEUE, IDLE_QUEUE = "soak-rest", "soak-sqs", "soak-idle"
PRODUCERS, CONSUMERS = 2, 2  # of each API
SENDS_PER_S, BATCHES_PER_S = 40, 8  # per producer: 120 messages/s each, 480 in all
ABANDONS_PER_S, MAX_ABANDONED = 10, 20  # long polls begun and dropped, per API; at once, per API
CHURN_PER_S = 20  # requests, each on a new connection


@dataclass
class Sample:
    at: float  # seconds into the load
    rss: int  # bytes
    fds: int


@dataclass
class Soak:
    broker: Broker
    url: str  # soak-sqs's QueueUrl
    idle_url: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stats: Stats = field(default_factory=Stats)
    sent: int = 0  # messages acknowledged as stored
    deleted: int = 0
    abandoned: int = 0
    samples: list[Sample] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.broker.port

    def request(self, method: str, path: str, body: Any = None) -> bytes:
        return build_request(method, path, orjson.dumps(body) if body is not None else b"")

    def sqs(self, action: str, payload: dict[str, Any]) -> bytes:
        return sqs_request(self.port, action, payload)

    async def call(self, conn: Connection, data: bytes) -> tuple[int, Any]:
        """One request: its status and JSON body; a non-2xx is counted as an error."""
        status, body = await conn.request(data)
        self.stats.record(status)
        return status, orjson.loads(body) if body else None


def sample(pid: int) -> tuple[int, int]:
    """RSS in bytes and open descriptors of a process."""
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def paced(soak: Soak, per_second: float, step: Callable[[], Awaitable[None]]) -> None:
    """Run ``step`` ``per_second`` times a second (fewer if it is slower) until the stop."""
    interval, next_at = 1 / per_second, time.monotonic()
    while not soak.stop.is_set():
        try:
            await step()
        except (HttpError, OSError) as exc:
            soak.stats.error(type(exc).__name__)
            await asyncio.sleep(0.1)  # do not spin on a broken broker
        next_at = max(next_at + interval, time.monotonic() - 1)
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def producer(soak: Soak, api: str) -> None:
    conn = await connect(soak.port)
    count = 0

    async def step() -> None:
        nonlocal count
        count += 1
        batch = count % ((SENDS_PER_S + BATCHES_PER_S) // BATCHES_PER_S) == 0
        n = 10 if batch else 1
        if api == "rest":
            body: Any = {"queue_name": REST_QUEUE, **({"messages": [{"body": f"b{count}.{i}"} for i in range(n)]}
                                                      if batch else {"body": f"m{count}"})}
            status, _ = await soak.call(conn, soak.request("POST", "/messages", body))
        elif batch:
            entries = [{"Id": str(i), "MessageBody": f"b{count}.{i}"} for i in range(n)]
            status, answer = await soak.call(conn, soak.sqs("SendMessageBatch", {"QueueUrl": soak.url,
                                                                                 "Entries": entries}))
            n = len(answer.get("Successful", [])) if status == 200 else 0
        else:
            status, _ = await soak.call(conn, soak.sqs("SendMessage", {"QueueUrl": soak.url, "MessageBody": "m"}))
        if status == 200:
            soak.sent += n

    try:
        await paced(soak, SENDS_PER_S + BATCHES_PER_S, step)
    finally:
        conn.close()


async def rest_consumer(soak: Soak) -> None:
    conn = await connect(soak.port)
    consume = soak.request("GET", f"/messages/consume?queue_name={REST_QUEUE}&size=10&wait_time=5")
    try:
        while not soak.stop.is_set():
            status, got = await soak.call(conn, consume)
            if status != 200 or not got:
                continue
            entries = [{"id": m["id"], "reservation_token": m["reservation_token"]} for m in got]
            status, answer = await soak.call(conn, soak.request("POST", "/messages/delete", {"messages": entries}))
            if status == 200:
                soak.deleted += answer["deleted"]
                for _ in range(len(entries) - answer["deleted"]):
                    soak.stats.error("delete failed")
    finally:
        conn.close()


async def sqs_consumer(soak: Soak) -> None:
    conn = await connect(soak.port)
    receive = soak.sqs("ReceiveMessage", {"QueueUrl": soak.url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 5})
    try:
        while not soak.stop.is_set():
            status, got = await soak.call(conn, receive)
            messages = got.get("Messages", []) if status == 200 else []
            if not messages:
                continue
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            status, answer = await soak.call(conn, soak.sqs("DeleteMessageBatch", {"QueueUrl": soak.url,
                                                                                   "Entries": entries}))
            if status == 200:
                soak.deleted += len(answer.get("Successful", []))
                for _ in answer.get("Failed", []):
                    soak.stats.error("delete failed")
    finally:
        conn.close()


async def abandoner(soak: Soak, api: str) -> None:
    """Long polls of an empty queue, each on a new connection the client closes mid-wait."""
    gate = asyncio.Semaphore(MAX_ABANDONED)
    poll = (soak.request("GET", f"/messages/consume?queue_name={IDLE_QUEUE}&wait_time=20") if api == "rest"
            else soak.sqs("ReceiveMessage", {"QueueUrl": soak.idle_url, "WaitTimeSeconds": 20}))
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        async with gate:
            try:
                conn = await connect(soak.port)
            except OSError as exc:
                soak.stats.error(type(exc).__name__)
                return
            answer = conn.start(poll)
            await asyncio.sleep(random.uniform(0.1, 2.0))
            if answer.done():  # answered before it was dropped: it should still be waiting
                soak.stats.error("idle poll answered early")
            conn.close()
            with contextlib.suppress(HttpError):
                await answer
            soak.abandoned += 1

    async def step() -> None:
        if not gate.locked():
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    await paced(soak, ABANDONS_PER_S, step)
    await asyncio.gather(*tasks)


async def churner(soak: Soak) -> None:
    """A request on a new connection each time, rotating through reads and a send."""
    requests = [
        soak.request("GET", f"/queues/find?name={REST_QUEUE}"),
        soak.request("POST", "/messages", {"queue_name": REST_QUEUE, "body": "churn"}),
        soak.sqs("GetQueueAttributes", {"QueueUrl": soak.url, "AttributeNames": ["All"]}),
        soak.request("GET", "/queues"),
        soak.request("GET", "/healthz"),
    ]
    count = 0

    async def step() -> None:
        nonlocal count
        data = requests[count % len(requests)]
        count += 1
        conn = await connect(soak.port)
        try:
            status, _ = await soak.call(conn, data)
            if status == 200 and data is requests[1]:
                soak.sent += 1
        finally:
            conn.close()

    await paced(soak, CHURN_PER_S, step)


async def sampler(soak: Soak, every: float, started: float) -> None:
    assert soak.broker.proc is not None
    while not soak.stop.is_set():
        rss, fds = sample(soak.broker.proc.pid)
        soak.samples.append(Sample(time.monotonic() - started, rss, fds))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(soak.stop.wait(), every)


async def progress(soak: Soak, started: float) -> None:
    while not soak.stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(soak.stop.wait(), 60)
        last = soak.samples[-1] if soak.samples else None
        print(f"  {time.monotonic() - started:5.0f} s: {soak.stats.ok} requests, {soak.stats.errors} errors,"
              f" RSS {mib(last.rss) if last else '?'}, fds {last.fds if last else '?'}", file=sys.stderr, flush=True)


async def load(soak: Soak, seconds: float, every: float) -> dict[str, Any]:
    pid = soak.broker.proc.pid if soak.broker.proc else 0
    rss0, fds0 = sample(pid)
    started, ticks0 = time.monotonic(), cpu_ticks(pid)
    workers = [
        *(producer(soak, api) for api in ("rest", "sqs") for _ in range(PRODUCERS)),
        *(rest_consumer(soak) for _ in range(CONSUMERS)), *(sqs_consumer(soak) for _ in range(CONSUMERS)),
        abandoner(soak, "rest"), abandoner(soak, "sqs"), churner(soak),
        sampler(soak, every, started), progress(soak, started),
    ]
    tasks = [asyncio.create_task(w) for w in workers]
    await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)  # a crash ends it early
    soak.stop.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            soak.stats.error(f"worker crashed: {outcome!r}")
    wall = time.monotonic() - started
    cpu = (cpu_ticks(pid) - ticks0) / os.sysconf("SC_CLK_TCK") / wall
    await asyncio.sleep(2)  # the broker notices the last hang-ups
    _, fds_after = sample(pid)
    return {"wall": wall, "broker_cpu": cpu, "rss_start": rss0, "fds_start": fds0, "fds_after": fds_after}


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def left_in(port: int, name: str) -> int:
    """Messages still in a queue (its counter, as GET /queues says)."""
    _, every = http_json(port, "GET", "/queues")
    return int(next(q["queue_size"] for q in every if q["name"] == name))


def report(soak: Soak, run_: dict[str, Any], warmup: float) -> int:
    warm = next((s for s in soak.samples if s.at >= warmup), soak.samples[-1])
    end = soak.samples[-1]  # the last taken under load
    peak_rss = max(s.rss for s in soak.samples)
    peak_fds = max(s.fds for s in soak.samples)
    left = sum(left_in(soak.port, q) for q in (REST_QUEUE, SQS_QUEUE))
    lost = soak.sent - soak.deleted - left
    if lost:
        soak.stats.error("messages lost")
    problems = soak.broker.log_problems()
    print(f"soak: {run_['wall']:.0f} s of load, {len(soak.samples)} samples; warm-up {warmup:.0f} s;"
          f" broker CPU {100 * run_['broker_cpu']:.0f}% of its core")
    print(f"  RSS:  start {mib(run_['rss_start'])}, after warm-up {mib(warm.rss)}, peak {mib(peak_rss)},"
          f" end {mib(end.rss)}")
    print(f"  fds:  start {run_['fds_start']}, after warm-up {warm.fds}, peak {peak_fds}, end {end.fds},"
          f" after the load {run_['fds_after']}")
    print(f"  requests {soak.stats.ok} ({soak.stats.ok / run_['wall']:.0f}/s), errors {soak.stats.errors}"
          f" {soak.stats.statuses or ''}")
    print(f"  messages sent {soak.sent}, deleted {soak.deleted}, left {left}, lost {lost};"
          f" long polls abandoned {soak.abandoned}")
    failed = []
    if soak.stats.errors:
        failed.append(f"{soak.stats.errors} errors")
    if end.rss > RSS_GROWTH * warm.rss:
        failed.append(f"RSS grew past {RSS_GROWTH} x its value after warm-up")
    if run_["fds_after"] > run_["fds_start"] + FD_SLACK:
        failed.append(f"the broker holds {run_['fds_after'] - run_['fds_start']} more descriptors than before")
    if problems:
        failed.append(f"the broker logged {len(problems)} errors, first: {problems[0]}")
    print("  result: " + ("PASS" if not failed else "FAIL: " + "; ".join(failed)))
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    args = p.parse_args()
    pin_self()
    folder = Path(tempfile.mkdtemp(prefix="wonderq-soak-"))
    broker = Broker(folder, "full").start()  # full: the default
    try:
        for name in (REST_QUEUE, IDLE_QUEUE):
            broker.create_queue(name)
        urls = [create_sqs_queue(broker.port, name) for name in (SQS_QUEUE, IDLE_QUEUE + "-sqs")]
        if any(url is None for url, _ in urls):
            print(f"soak: cannot create the SQS queues: {urls}", file=sys.stderr)
            return 1
        soak = Soak(broker, str(urls[0][0]), str(urls[1][0]))
        seconds = args.minutes * 60
        result, _ = run(load(soak, seconds, args.every))
        return report(soak, result, min(60.0, seconds / 5))
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
