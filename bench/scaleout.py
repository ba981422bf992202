"""Several brokers on one PostgreSQL database: wake-up latency and throughput.

    .venv/bin/python bench/scaleout.py [--samples 300] [--duration 10]

1. Cross-broker wake-up: a consumer long-polls broker B (or C); once it is
   parked, a message is sent through broker A; the latency is from the send's
   start to the consumer's answer. Target p99 <= 50 ms.
2. Two brokers, broker 1 on CPU 0 and broker 2 on CPU 1, each driven by its own
   load generator sending single messages on 64 connections, for the same
   seconds: the total rate, and where the CPU went (PostgreSQL vs brokers).
   With two cores for two brokers, PostgreSQL and two generators, this is a
   figure to report, not a target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import LOADGEN, QUEUE, Broker, cpu_ticks, pin_self
from loadgen import build_request, connect
from pg import BenchPostgres


async def wake_latency(a: Broker, waiters: list[Broker], samples: int) -> list[float]:
    sender = await connect(a.port)
    parked = [await connect(b.port) for b in waiters]
    consume = build_request("GET", f"/messages/consume?queue_name={QUEUE}&wait_time=20")
    delays = []
    for i in range(samples):
        waiter = parked[i % len(parked)]
        answer = waiter.start(consume)
        await asyncio.sleep(0.02)  # let it park
        started = time.perf_counter()
        await sender.request(build_request("POST", "/messages", json.dumps(
            {"queue_name": QUEUE, "body": str(i)}).encode()))
        _, body = await answer
        delays.append((time.perf_counter() - started) * 1000)
        message = json.loads(body)[0]
        path = f"/messages/{message['id']}?reservation_token={message['reservation_token']}"
        await waiter.request(build_request("DELETE", path))
    return delays


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def two_brokers(brokers: list[Broker], pg: BenchPostgres, duration: float) -> dict[str, float]:
    ticks = {b.port: cpu_ticks(b.proc.pid) for b in brokers if b.proc}
    db0, t0 = pg.cpu_ticks(), time.monotonic()
    gens = [
        subprocess.Popen(
            ["taskset", "-c", str(b.cpu), sys.executable, str(LOADGEN), "send", "--port", str(b.port),
             "--queue", QUEUE, "--duration", str(duration), "--connections", "64"],
            stdout=subprocess.PIPE, text=True,
        )
        for b in brokers
    ]
    results = [json.loads(g.communicate()[0].strip().splitlines()[-1]) for g in gens]
    wall = (time.monotonic() - t0) * 100  # clock ticks per core
    used = {f"broker {i + 1} CPU %": (cpu_ticks(b.proc.pid) - ticks[b.port]) / wall * 100
            for i, b in enumerate(brokers) if b.proc}
    return {"total msgs/s": sum(r["rate"] for r in results),
            **{f"broker {i + 1} msgs/s": r["rate"] for i, r in enumerate(results)},
            **used, "PostgreSQL CPU %": (pg.cpu_ticks() - db0) / wall * 100}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--duration", type=float, default=10.0)
    args = p.parse_args()
    pin_self()
    pg = BenchPostgres(cpu=1).start()
    workdir = Path(tempfile.mkdtemp(prefix="wonderq-scaleout-"))
    brokers: list[Broker] = []
    try:
        brokers = [Broker(workdir, "full", pg, cpu=cpu) for cpu in (0, 1, 0)]
        db = brokers[0].db
        for b in brokers:
            b.db = db  # all three on one database
            b.start()
        brokers[0].create_queue()
        delays = asyncio.run(wake_latency(brokers[0], brokers[1:], args.samples))
        print(f"cross-broker wake-up over {len(delays)} samples: p50 {statistics.median(delays):.1f} ms,"
              f" p99 {percentile(delays, 99):.1f} ms, max {max(delays):.1f} ms (target p99 <= 50 ms)")
        brokers.pop().stop()
        for key, value in two_brokers(brokers, pg, args.duration).items():
            print(f"two brokers: {key}: {value:,.0f}")
    finally:
        for b in brokers:
            b.stop()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
