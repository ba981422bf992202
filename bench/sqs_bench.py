"""WonderQ's SQS API against its own REST API and against moto's server, in one run.

Three operations, 1 KiB bodies, each server pinned to CPU 0 (``taskset -c 0``) and the load
generator to CPU 1, as in bench.py:

    single send      REST POST /messages             vs SQS SendMessage
    batch send       REST POST /messages (10)        vs SQS SendMessageBatch (10 entries)
    consume          REST consume(10) + one DELETE   vs SQS ReceiveMessage(10) + DeleteMessageBatch
                     per message, at DEPTH messages deep (the queue is topped up between rounds)

moto's server (the Python SQS emulator most users know) runs the same SQS requests as the peer
row; its cost per message grows with the queue's depth (every request scans the whole queue), so
every moto row is measured DEPTH deep. Its queue is filled inside its process before it serves
(filling 10,000 through its API would take a quarter of an hour), and it is too slow for a timed
window: its rows run until DURATION has passed and 10 messages are done (see until_enough).
The SQS load is raw HTTP on keep-alive connections speaking the JSON protocol (X-Amz-Target),
with a fixed, unchecked signature: WonderQ accepts any while auth is off, moto ignores it. No
SDK in the loop, so the client is not the bottleneck (the gen CPU column shows it).

    .venv/bin/python bench/sqs_bench.py                          # WonderQ (REST, SQS) and moto
    .venv/bin/python bench/sqs_bench.py --quick                  # short runs, 1,000 deep
    .venv/bin/python bench/sqs_bench.py --targets moto           # only the moto row
    .venv/bin/python bench/sqs_bench.py --backend postgresql     # WonderQ on a throwaway PostgreSQL

The speed of this kind of machine drifts by a tenth or more from one window to the next, as much
as the gaps measured. So the send rows run REST and SQS on one broker, in --runs alternating
windows each (REST, SQS, SQS, REST, ...; default 6), and their ratio is the median over the
adjacent pairs of windows; the rates shown are the means, and the notes list every window. The
consume rows alternate the same way (--consume-runs, default 3 each), each window on a broker of
its own (the queue is filled to DEPTH first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

import loadgen
from bench import BROKER_CPU, LOADGEN_CPU, Broker, cpu_ticks, free_port
from loadgen import HEAD_END, HOST, HttpError, Stats, Window
from pg import BenchPostgres

HERE = Path(__file__).resolve()
QUEUE = "bench"
MOTO_ACCOUNT = "123456789012"  # moto's default account id
SIGNATURE = (  # what an SDK sends, never checked here
    "AWS4-HMAC-SHA256 Credential=wonderq/20260101/us-east-1/sqs/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
)
OPERATIONS = ("send", "batch", "consume")
TARGETS = {"send": 0.9, "batch": 0.9, "consume": 1.5}  # SQS / REST, from issue 8


# -- the SQS load (runs in its own process, on CPU 1) --------------------------------------------


class SqsConnection(loadgen.Connection):
    """loadgen's connection, noticing ``Connection: close`` (moto's server closes after every
    response) so the next request goes on a new connection instead of failing."""

    closing = False

    def data_received(self, data: bytes) -> None:
        if not self.head_len:
            pending = bytes(self.buffer) + data
            end = pending.find(HEAD_END)
            if end >= 0 and b"\r\nconnection: close" in pending[:end].lower():
                self.closing = True
        super().data_received(data)


class Link:
    """A connection that is re-made when the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: SqsConnection | None = None
        self.reconnects = 0

    async def request(self, data: bytes, stats: Stats, messages: int = 0) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.conn is None or self.conn.closing or self.conn.lost is not None:
                if self.conn is not None:
                    self.conn.close()
                    self.reconnects += 1
                _, self.conn = await asyncio.get_running_loop().create_connection(SqsConnection, HOST, self.port)
            try:
                status, body = await self.conn.request(data)
            except (HttpError, OSError) as exc:  # closed under a request that was never read
                self.conn = None
                if attempt:
                    stats.error(type(exc).__name__)
                    return 0, b""
                continue
            stats.record(status, messages if status == 200 else 0)
            return status, body
        return 0, b""  # not reached

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def sqs_request(port: int, action: str, payload: dict[str, Any]) -> bytes:
    body = orjson.dumps(payload)
    head = (
        f"POST / HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-Amz-Target: AmazonSQS.{action}\r\n"
        f"Content-Type: application/x-amz-json-1.0\r\nX-Amz-Date: 20260101T000000Z\r\n"
        f"Authorization: {SIGNATURE}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def send_payload(url: str, size: int) -> dict[str, Any]:
    return {"QueueUrl": url, "MessageBody": "x" * size}


def batch_payload(url: str, size: int, n: int = 10) -> dict[str, Any]:
    return {"QueueUrl": url, "Entries": [{"Id": str(i), "MessageBody": "x" * size} for i in range(n)]}


def sent_in(body: bytes) -> int:
    """Messages a SendMessageBatch answer says were stored."""
    return len(orjson.loads(body).get("Successful", []))


async def closed_loop(port: int, data: bytes, per: int, stats: Stats, stop: Callable[[], bool],
                      links: list[Link]) -> None:
    link = Link(port)
    links.append(link)
    while not stop():
        await link.request(data, stats, per)
    link.close()


async def until_enough(stats: Stats, args: argparse.Namespace, start: Callable[[Callable[[], bool]], list[Any]]
                       ) -> Window:
    """For a server too slow for a timed window (moto at depth): no warm-up; workers run until
    ``duration`` has passed *and* ``minimum`` messages are done, then finish what is in flight;
    the rate is everything done over the whole wall time."""
    t0, c0 = time.perf_counter(), loadgen.cpu_seconds()

    def stop() -> bool:
        return time.perf_counter() - t0 >= args.duration and stats.messages >= args.minimum

    await asyncio.gather(*start(stop))
    return Window(time.perf_counter() - t0, loadgen.cpu_seconds() - c0, stats.messages)


async def sqs_send(args: argparse.Namespace) -> dict[str, Any]:
    """Closed loop: ``connections`` clients, each one SendMessage (or SendMessageBatch) at a time."""
    if args.batch > 1:
        data, per = sqs_request(args.port, "SendMessageBatch", batch_payload(args.url, args.body_size)), args.batch
    else:
        data, per = sqs_request(args.port, "SendMessage", send_payload(args.url, args.body_size)), 1
    stats, done, links = Stats(), [False], list[Link]()
    if args.minimum:
        window = await until_enough(stats, args, lambda stop: [
            closed_loop(args.port, data, per, stats, stop, links) for _ in range(args.connections)])
        return window.report() | loadgen.outcome(stats) | {"reconnects": sum(lk.reconnects for lk in links)}
    workers = [asyncio.create_task(closed_loop(args.port, data, per, stats, lambda: done[0], links))
               for _ in range(args.connections)]
    window = await loadgen.timed_window(stats, args.warmup, args.duration)
    done[0] = True
    await asyncio.gather(*workers)
    return window.report() | loadgen.outcome(stats) | {"reconnects": sum(lk.reconnects for lk in links)}


async def sqs_fill(port: int, url: str, total: int, size: int, connections: int = 16) -> dict[str, Any]:
    """SendMessageBatch ``total`` messages, 10 a request."""
    stats, left, t0, links = Stats(), [total], time.perf_counter(), list[Link]()

    async def worker() -> None:
        link = Link(port)
        links.append(link)
        while left[0] > 0:
            n = min(10, left[0])
            left[0] -= n
            status, body = await link.request(sqs_request(port, "SendMessageBatch", batch_payload(url, size, n)), stats)
            if status == 200:
                stats.messages += sent_in(body)
        link.close()

    await asyncio.gather(*(worker() for _ in range(min(connections, (total + 9) // 10 or 1))))
    seconds = time.perf_counter() - t0
    return {"messages": stats.messages, "errors": stats.errors, "error_kinds": stats.statuses,
            "seconds": round(seconds, 3), "rate": round(stats.messages / seconds, 1) if seconds else 0.0}


async def sqs_consume_loop(link: Link, url: str, stats: Stats, seen: set[str], enough: Callable[[], bool]) -> None:
    """ReceiveMessage(10), then one DeleteMessageBatch of what came, until ``enough()``."""
    receive = sqs_request(link.port, "ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": 10,
                                                        "WaitTimeSeconds": 1, "VisibilityTimeout": 30})
    while not enough():
        status, body = await link.request(receive, stats)
        if status != 200:
            if status == 0:
                return
            continue
        messages = orjson.loads(body).get("Messages", [])
        if not messages:
            stats.empty_receives += 1
            continue
        for m in messages:
            if m["MessageId"] in seen:
                stats.duplicates += 1
            seen.add(m["MessageId"])
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        status, body = await link.request(
            sqs_request(link.port, "DeleteMessageBatch", {"QueueUrl": url, "Entries": entries}), stats)
        if status == 200:
            stats.messages += len(orjson.loads(body).get("Successful", []))


async def sqs_consume(args: argparse.Namespace) -> dict[str, Any]:
    """Fill to ``depth``; then rounds of: consume ``chunk`` (timed), top the queue back up. Or,
    with ``--minimum``, see :func:`until_enough` (the depth drops by what it consumed)."""
    filled = {"messages": 0, "rate": 0.0} if args.prefilled else await sqs_fill(
        args.port, args.url, args.depth, args.body_size)
    total, stats, seen = Window(), Stats(), set[str]()
    links = [Link(args.port) for _ in range(args.consumers)]
    if args.minimum:
        window = await until_enough(stats, args, lambda stop: [
            sqs_consume_loop(lk, args.url, stats, seen, stop) for lk in links])
        for lk in links:
            lk.close()
        return window.report() | loadgen.outcome(stats) | {"prefill": filled, "minimum": args.minimum,
                                                            "reconnects": sum(lk.reconnects for lk in links)}
    consumed = 0
    for round_no in range(args.rounds + 1):  # round 0 warms up and is not counted
        if consumed:
            await sqs_fill(args.port, args.url, consumed, args.body_size)
        start, t0, c0 = stats.messages, time.perf_counter(), loadgen.cpu_seconds()

        def enough(start: int = start) -> bool:
            return stats.messages - start >= args.chunk

        await asyncio.gather(*(sqs_consume_loop(lk, args.url, stats, seen, enough) for lk in links))
        window = Window(time.perf_counter() - t0, loadgen.cpu_seconds() - c0, stats.messages - start)
        consumed = window.messages
        if round_no:
            total.add(window)
    for lk in links:
        lk.close()
    return total.report() | loadgen.outcome(stats) | {"prefill": filled, "rounds": args.rounds, "chunk": args.chunk,
                                                      "reconnects": sum(lk.reconnects for lk in links)}


async def rest_send(args: argparse.Namespace) -> dict[str, Any]:
    return await loadgen.scenario_send(args)


async def rest_consume(args: argparse.Namespace) -> dict[str, Any]:
    filled = await loadgen.fill(args.port, args.queue, args.depth, args.body_size)
    return await loadgen.scenario_deep(args) | {"prefill": filled}


LOADS = {
    ("rest", "send"): rest_send, ("rest", "batch"): rest_send, ("rest", "consume"): rest_consume,
    ("sqs", "send"): sqs_send, ("sqs", "batch"): sqs_send, ("sqs", "consume"): sqs_consume,
}


def load_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("api", choices=["rest", "sqs"])
    p.add_argument("operation", choices=OPERATIONS)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--url", default="", help="the SQS QueueUrl")
    p.add_argument("--queue", default=QUEUE)
    p.add_argument("--body-size", type=int, default=1024)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--consumers", type=int, default=16)
    p.add_argument("--depth", type=int, default=10_000)
    p.add_argument("--chunk", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--prefilled", action="store_true", help="consume: the queue is already DEPTH deep")
    p.add_argument("--minimum", type=int, default=0,
                   help="run until DURATION has passed and this many messages are done (see until_enough)")
    args = p.parse_args(argv)
    args.batch = 10 if args.operation == "batch" else 1
    args.size, args.wait = 10, 1  # loadgen's deep scenario: receive 10, long poll 1 s
    args.batch_delete = False  # the REST row deletes one message a request, as the issue compares
    result, _ = loadgen.run(LOADS[(args.api, args.operation)](args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


# -- the servers (on CPU 0) ----------------------------------------------------------------


class Moto:
    """moto's server, pinned like the broker, its queue prefilled; in memory, so a fresh one per
    operation."""

    def __init__(self, workdir: Path, depth: int) -> None:
        self.depth = depth
        self.port = free_port()
        self.log = workdir / f"moto.{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Moto:
        cmd = ["taskset", "-c", str(BROKER_CPU), sys.executable, str(HERE), "moto", str(self.port), str(self.depth)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited:\n{self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", "/moto-api/")
                if conn.getresponse().status == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError("moto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def create_sqs_queue(port: int, name: str) -> tuple[str | None, str]:
    """CreateQueue over the JSON protocol: (QueueUrl, or None, and what went wrong)."""
    data = sqs_request(port, "CreateQueue", {"QueueName": name})
    head, _, body = data.partition(b"\r\n\r\n")
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        conn.request("POST", "/", body, headers)
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    if response.status != 200:
        return None, f"CreateQueue answered {response.status}: {answer[:200]!r}"
    return str(orjson.loads(answer)["QueueUrl"]), ""


@dataclass
class Plan:
    duration: float
    depth: int
    chunk: int
    rounds: int
    durability: str
    pg: BenchPostgres | None


def run_load(api: str, operation: str, port: int, plan: Plan, pid: int, url: str = "",
             moto: bool = False) -> dict[str, Any]:
    """One load process on CPU 1; its JSON plus the server's CPU use over the run."""
    cmd = ["taskset", "-c", str(LOADGEN_CPU), sys.executable, str(HERE), "load", api, operation,
           "--port", str(port), "--url", url, "--duration", str(plan.duration), "--depth", str(plan.depth),
           "--chunk", str(plan.chunk), "--rounds", str(plan.rounds)]
    if moto:
        # Prefilled, and too slow for a timed window: at 10,000 deep one SendMessage takes ~1 s, a
        # batch ~5 s, a ReceiveMessage(10) ~20 s (each scans the whole queue). Requests queued on
        # its one core only wait longer, so few connections: the rate on one core is the same.
        cmd += ["--prefilled", "--minimum", "10", "--connections", "2", "--consumers", "1"]
    t0, ticks0 = time.monotonic(), cpu_ticks(pid)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        return {"failed": done.stderr.strip()[-500:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_cpu_pct"] = round(100 * (cpu_ticks(pid) - ticks0) / (wall * os.sysconf("SC_CLK_TCK")), 1)
    return result


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="wonderq-sqs-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure_wonderq(api: str, operation: str, plan: Plan) -> dict[str, Any]:
    with workdir() as folder:
        broker = Broker(folder, plan.durability, plan.pg, cpu=BROKER_CPU).start()
        try:
            assert broker.proc is not None
            if api == "rest":
                broker.create_queue(QUEUE)
                return run_load("rest", operation, broker.port, plan, broker.proc.pid)
            url, problem = create_sqs_queue(broker.port, f"{QUEUE}-{uuid.uuid4().hex[:6]}")
            if url is None:
                return {"failed": problem}
            return run_load("sqs", operation, broker.port, plan, broker.proc.pid, url)
        finally:
            broker.stop()


def measure_side_by_side(operation: str, plan: Plan, runs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """REST and SQS on one broker, in alternating windows (REST, SQS, SQS, REST, ...): adjacent
    windows see the machine at the same speed, and both APIs the same database as it grows."""
    windows: dict[str, list[dict[str, Any]]] = {"rest": [], "sqs": []}
    with workdir() as folder:
        broker = Broker(folder, plan.durability, plan.pg, cpu=BROKER_CPU).start()
        try:
            assert broker.proc is not None
            broker.create_queue(QUEUE)
            url, problem = create_sqs_queue(broker.port, f"{QUEUE}-sqs")
            if url is None:
                return {"failed": problem}, {"failed": problem}
            for n in range(runs * 2):
                api = ("rest", "sqs", "sqs", "rest")[n % 4]
                windows[api].append(run_load(api, operation, broker.port, plan, broker.proc.pid, url))
        finally:
            broker.stop()
    return mean_of(windows["rest"]), mean_of(windows["sqs"])


def measure_alternating(operation: str, plan: Plan, runs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The consume rows: each window a broker of its own (its queue filled to DEPTH first), in
    measure_side_by_side's order, so that adjacent windows see the machine at the same speed
    (one window each swung the ratio between 1.3 and 2.2)."""
    windows: dict[str, list[dict[str, Any]]] = {"rest": [], "sqs": []}
    for n in range(runs * 2):
        api = ("rest", "sqs", "sqs", "rest")[n % 4]
        windows[api].append(measure_wonderq(api, operation, plan))
    return mean_of(windows["rest"]), mean_of(windows["sqs"])


def measure_moto(operation: str, plan: Plan) -> dict[str, Any]:
    """Every operation at ``depth`` deep: moto's cost per message grows with it."""
    with workdir() as folder:
        server = Moto(folder, plan.depth).start()
        try:
            assert server.proc is not None
            url, problem = create_sqs_queue(server.port, QUEUE)  # the prefilled queue
            if url is None:
                return {"failed": problem}
            return run_load("sqs", operation, server.port, plan, server.proc.pid, url, moto=True)
        finally:
            server.stop()


# -- the report ------------------------------------------------------------------------------


def rate(result: dict[str, Any] | None) -> float | None:
    if not result or "failed" in result or not result.get("rate"):
        return None
    return float(result["rate"])


def cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return "-"
    if "failed" in result:
        return "failed"
    value = f"{result['rate']:,.0f}/s" if result["rate"] >= 100 else f"{result['rate']:.1f}/s"
    if result.get("errors"):
        value += f" ({result['errors']} err)"
    return value


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


LABELS = {
    "send": "single send",
    "batch": "batch send (10)",
    "consume": "receive(10) + delete",
}


def table(results: dict[tuple[str, str], dict[str, Any]], plan: Plan) -> str:
    header = ["operation", "REST", "SQS", "SQS/REST", "target", "moto", "SQS/moto"]
    rows = [header]
    for op in OPERATIONS:
        rest, sqs, moto = (results.get((t, op)) for t in ("rest", "sqs", "moto"))
        label = LABELS[op] + (f" at {plan.depth:,} deep" if op == "consume" else "")
        verdict, shown = "", ratio(rate(sqs), rate(rest))
        if (paired := pair_ratio(rest, sqs)) is not None:
            shown = f"{paired:.2f}x"
        if rate(sqs) and rate(rest):
            value = paired if paired is not None else rate(sqs) / rate(rest)  # type: ignore[operator]
            verdict = " PASS" if value >= TARGETS[op] else " FAIL"
        rows.append([label, cell(rest), cell(sqs), shown + verdict,
                     f">= {TARGETS[op]}x", cell(moto), ratio(rate(sqs), rate(moto))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def notes(results: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    out = []
    for (target, op), result in results.items():
        if "failed" in result:
            out.append(f"{target} {op}: failed: {result['failed'][:300]}")
            continue
        bits = [f"gen CPU {result.get('gen_cpu_pct', 0):.0f}%", f"server CPU {result.get('server_cpu_pct', 0):.0f}%"]
        if result.get("runs"):
            bits.append("runs " + ", ".join(f"{r:,}/s" for r in result["runs"]))
        if result.get("errors"):
            bits.append(f"errors {result['error_kinds']}")
        if result.get("duplicates"):
            bits.append(f"{result['duplicates']} duplicates")
        if result.get("reconnects"):
            bits.append(f"{result['reconnects']:,} reconnects")
        if result.get("prefill", {}).get("messages"):
            bits.append(f"filled {result['prefill']['messages']:,} at {result['prefill']['rate']:,.0f}/s")
        out.append(f"{target} {op}: " + ", ".join(bits))
    return out


def pair_ratio(rest: dict[str, Any] | None, sqs: dict[str, Any] | None) -> float | None:
    """The median of SQS / REST over adjacent windows (measure_side_by_side's order pairs
    rest[i] with sqs[i]); None unless both rows were measured side by side."""
    if not rest or not sqs or not rest.get("runs") or len(rest["runs"]) != len(sqs.get("runs", [])):
        return None
    return statistics.median(s / r for r, s in zip(rest["runs"], sqs["runs"], strict=True))


def mean_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run's result with the mean rate of all (a failed run fails the row), every rate kept."""
    if len(runs) == 1 or any("failed" in r for r in runs):
        return next((r for r in runs if "failed" in r), runs[0])
    return {**runs[0], "rate": sum(r["rate"] for r in runs) / len(runs), "runs": [round(r["rate"]) for r in runs]}


def moto_main(argv: list[str]) -> None:
    """moto's server with queue QUEUE already DEPTH messages deep. The messages are appended to
    moto's in-memory queue directly: through its API each send scans the whole queue (its
    attributes count every message), so filling 10,000 would take a quarter of an hour."""
    port, depth = int(argv[0]), int(argv[1])
    import moto.server
    from moto.sqs.models import Message, sqs_backends

    queue = sqs_backends[MOTO_ACCOUNT]["us-east-1"].create_queue(QUEUE)
    body = "x" * 1024
    for _ in range(depth):
        message = Message(str(uuid.uuid4()), body)
        message.mark_sent(delay_seconds=0)
        queue._messages.append(message)
    moto.server.main(["-H", HOST, "-p", str(port)])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "moto":
        moto_main(sys.argv[2:])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        return load_main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 s runs, 1,000 deep: a smoke test")
    p.add_argument("--targets", default="rest,sqs,moto", help="comma-separated: rest, sqs, moto")
    p.add_argument("--only", default=",".join(OPERATIONS), help="comma-separated: send, batch, consume")
    p.add_argument("--depth", type=int, help="queue depth of the consume rows (default 10,000)")
    p.add_argument("--duration", type=float, help="measured seconds of each send window (default 3)")
    p.add_argument("--durability", default="full", choices=["full", "normal"])
    p.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    p.add_argument("--runs", type=int, default=6, help="send rows: windows of each API, alternated on one broker")
    p.add_argument("--consume-runs", type=int, default=3,
                   help="consume rows: windows of each API, alternated, each on a broker of its own")
    p.add_argument("--json", type=Path, help="write every result here")
    args = p.parse_args()
    pg = BenchPostgres(LOADGEN_CPU).start() if args.backend == "postgresql" else None
    plan = Plan(duration=args.duration or (2 if args.quick else 3),
                depth=args.depth or (1000 if args.quick else 10_000), chunk=0,
                rounds=1 if args.quick else 3, durability=args.durability, pg=pg)
    plan.chunk = min(3000, plan.depth // 2)  # rounds never drain the queue into empty long polls
    targets, operations = args.targets.split(","), args.only.split(",")
    print(f"backend={args.backend} durability={args.durability} depth={plan.depth:,} 1 KiB bodies: "
          f"servers on CPU {BROKER_CPU}, load on CPU {LOADGEN_CPU}", flush=True)
    results: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for op in operations:
            t0 = time.perf_counter()
            if {"rest", "sqs"} <= set(targets):
                both = measure_alternating(op, plan, args.consume_runs) if op == "consume" else \
                    measure_side_by_side(op, plan, args.runs)
                results[("rest", op)], results[("sqs", op)] = both
            for target in (t for t in targets if (t, op) not in results):
                alone = measure_moto(op, plan) if target == "moto" else measure_wonderq(target, op, plan)
                results[(target, op)] = alone
            for target in targets:
                print(f"  {target} {op}: {cell(results[(target, op)])}", flush=True)
            print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        if pg:
            pg.stop()
    print()
    print(table(results, plan))
    print()
    print("\n".join(notes(results)))
    if args.json:
        args.json.write_text(json.dumps({f"{t} {o}": r for (t, o), r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
