"""WonderQ's load generator: a minimal keep-alive HTTP/1.1 client on asyncio (uvloop).

One request in flight per connection (no pipelining); requests are framed with
Content-Length and responses read by their Content-Length, which the broker
always sends. Each scenario prints one JSON object on stdout, including the
generator's own CPU time over the measured window, so a run can show that the
generator was not the bottleneck.

    python bench/loadgen.py send --port 3213 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import resource
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

HOST = "127.0.0.1"
HEAD_END = b"\r\n\r\n"


class HttpError(Exception):
    """The connection broke before a response arrived."""


# -- the client ------------------------------------------------------------------


def build_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def parse_head(head: bytes) -> tuple[int, int]:
    """Status code and Content-Length of a response head (-1: chunked)."""
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at + 2)
        return status, int(lower[at + 17 : end if end >= 0 else len(lower)])
    if b"\r\ntransfer-encoding: chunked" in lower:
        return status, -1
    raise HttpError(f"response without a length: {head[:200]!r}")


def dechunk(buffer: bytearray, pos: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``pos``: (body, end offset), or None if incomplete."""
    chunks: list[bytes] = []
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buffer[pos:eol]).split(b";")[0], 16)
        start = eol + 2
        if len(buffer) < start + size + 2:
            return None
        if size == 0:  # no trailers from this server
            return b"".join(chunks), start + 2
        chunks.append(bytes(buffer[start : start + size]))
        pos = start + size + 2


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost: Exception | None = None
        self.head_len = 0  # 0 until the response head has arrived
        self.length = 0  # of the body; -1 when chunked
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.head_len:
            end = self.buffer.find(HEAD_END)
            if end < 0:
                return
            self.status, self.length = parse_head(bytes(self.buffer[:end]))
            self.head_len = end + 4
        if self.length >= 0:
            end = self.head_len + self.length
            done = (bytes(self.buffer[self.head_len : end]), end) if len(self.buffer) >= end else None
        else:
            done = dechunk(self.buffer, self.head_len)
        if done is not None:
            del self.buffer[: done[1]]
            self.head_len = 0
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((self.status, done[0]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or HttpError("connection closed")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection lost: {self.lost}"))

    def start(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Write a request; the future resolves to (status, body)."""
        if self.lost is not None or self.transport is None:
            raise HttpError(f"connection lost: {self.lost}")
        assert self.waiter is None, "one request in flight per connection"
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    async def request(self, data: bytes) -> tuple[int, bytes]:
        return await self.start(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int) -> Connection:
    _, conn = await asyncio.get_running_loop().create_connection(Connection, HOST, port)
    return conn


async def connect_many(port: int, n: int, concurrency: int = 500) -> list[Connection]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Connection:
        async with gate:
            return await connect(port)

    return list(await asyncio.gather(*(one() for _ in range(n))))


def close_all(conns: Iterable[Connection]) -> None:
    for conn in conns:
        conn.close()


# -- measuring ---------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Stats:
    ok: int = 0  # 2xx responses
    messages: int = 0  # messages sent or consumed (a batch counts its messages)
    errors: int = 0  # non-2xx responses and broken connections
    statuses: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    empty_receives: int = 0
    closing: bool = False  # set while the scenario closes its own connections


    def record(self, status: int, messages: int = 0) -> None:
        if 200 <= status < 300:
            self.ok += 1
            self.messages += messages
        else:
            self.error(str(status))

    def error(self, kind: str) -> None:
        if self.closing:
            return
        self.errors += 1
        self.statuses[kind] = self.statuses.get(kind, 0) + 1


@dataclass
class Window:
    """Wall time, generator CPU and messages over a measured interval."""

    wall: float = 0.0
    cpu: float = 0.0
    messages: int = 0

    def add(self, other: Window) -> None:
        self.wall += other.wall
        self.cpu += other.cpu
        self.messages += other.messages

    def report(self) -> dict[str, Any]:
        return {
            "seconds": round(self.wall, 3),
            "messages": self.messages,
            "rate": round(self.messages / self.wall, 1) if self.wall else 0.0,
            "gen_cpu_seconds": round(self.cpu, 3),
            "gen_cpu_pct": round(100 * self.cpu / self.wall, 1) if self.wall else 0.0,
        }


async def timed_window(stats: Stats, warmup: float, duration: float) -> Window:
    """Sleep through the warm-up, then measure ``duration`` seconds."""
    await asyncio.sleep(warmup)
    t0, c0, m0 = time.perf_counter(), cpu_seconds(), stats.messages
    await asyncio.sleep(duration)
    return Window(time.perf_counter() - t0, cpu_seconds() - c0, stats.messages - m0)


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max of durations given in seconds, in milliseconds."""
    ordered = sorted(values)
    points = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
    result = {name: round(percentile(ordered, pct) * 1000, 3) for name, pct in points.items()}
    result["max"] = round(ordered[-1] * 1000, 3) if ordered else float("nan")
    return result


# -- request bodies -------------------------------------------------------------------


def send_body(queue: str, size: int, prefix: str = "") -> bytes:
    body = prefix + "x" * (size - len(prefix))
    return orjson.dumps({"queue_name": queue, "body": body})


def batch_body(queue: str, size: int, batch: int) -> bytes:
    return orjson.dumps({"queue_name": queue, "messages": [{"body": "x" * size}] * batch})


def consume_request(queue: str, size: int, wait: int, visibility: int = 30) -> bytes:
    query = f"queue_name={queue}&size={size}&wait_time={wait}&visibility_timeout={visibility}"
    return build_request("GET", f"/messages/consume?{query}")


def delete_request(message: dict[str, Any]) -> bytes:
    path = f"/messages/{message['id']}?reservation_token={message['reservation_token']}"
    return build_request("DELETE", path)


def batch_delete_request(messages: list[dict[str, Any]]) -> bytes:
    entries = [{"id": m["id"], "reservation_token": m["reservation_token"]} for m in messages]
    return build_request("POST", "/messages/delete", orjson.dumps({"messages": entries}))


# -- workers ---------------------------------------------------------------------------

Stop = Callable[[], bool]
OnMessages = Callable[[list[dict[str, Any]], float], None]


async def call(conn: Connection, data: bytes, stats: Stats, messages: int = 0) -> tuple[int, bytes]:
    """One request; a broken connection counts as an error (status 0)."""
    try:
        status, body = await conn.request(data)
    except (HttpError, OSError) as exc:
        stats.error(type(exc).__name__)
        return 0, b""
    stats.record(status, messages)
    return status, body


async def send_loop(port: int, data: bytes, per_request: int, stats: Stats, stop: Stop) -> None:
    conn = await connect(port)
    try:
        while not stop():
            status, _ = await call(conn, data, stats, per_request)
            if status == 0:
                conn = await connect(port)
    finally:
        conn.close()


async def consume_loop(
    conn: Connection, request: bytes, stats: Stats, seen: set[int], stop: Stop,
    on_messages: OnMessages | None = None, batch_delete: bool = False,
) -> None:
    """Receive, then delete each message with its token (or all of them in one
    batch delete), until ``stop()``."""
    while not stop():
        status, body = await call(conn, request, stats)
        if status != 200:
            if conn.lost is not None:
                return
            continue
        received_at = time.perf_counter_ns() / 1e9
        messages = orjson.loads(body)
        if not messages:
            stats.empty_receives += 1
            continue
        if on_messages is not None:
            on_messages(messages, received_at)
        await delete_all(conn, messages, stats, seen, batch_delete)


async def delete_all(
    conn: Connection, messages: list[dict[str, Any]], stats: Stats, seen: set[int], batch: bool = False
) -> None:
    for message in messages:
        if message["id"] in seen:
            stats.duplicates += 1
        seen.add(message["id"])
    if not batch:
        for message in messages:
            await call(conn, delete_request(message), stats, 1)
        return
    status, body = await call(conn, batch_delete_request(messages), stats)
    if status == 200:
        deleted = orjson.loads(body)["deleted"]
        stats.messages += deleted
        if deleted < len(messages):
            stats.error("not_deleted")


async def fill(port: int, queue: str, total: int, size: int, connections: int = 64) -> dict[str, Any]:
    """Send ``total`` messages in batches of 10 (the last batch may be smaller)."""
    stats, left = Stats(), [total]
    full, t0 = batch_body(queue, size, 10), time.perf_counter()

    async def worker() -> None:
        conn = await connect(port)
        while left[0] > 0:
            n = min(10, left[0])
            left[0] -= n
            data = full if n == 10 else batch_body(queue, size, n)
            await call(conn, build_request("POST", "/messages", data), stats, n)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(min(connections, (total + 9) // 10 or 1))))
    seconds = time.perf_counter() - t0
    return {"messages": stats.messages, "errors": stats.errors, "seconds": round(seconds, 3),
            "rate": round(stats.messages / seconds, 1) if seconds else 0.0}


async def queue_size(port: int, queue: str) -> int | None:
    conn = await connect(port)
    try:
        status, body = await conn.request(build_request("GET", "/queues"))
    finally:
        conn.close()
    if status != 200:
        return None
    return next((q["queue_size"] for q in orjson.loads(body) if q["name"] == queue), None)


def outcome(stats: Stats) -> dict[str, Any]:
    return {"ok_responses": stats.ok, "errors": stats.errors, "error_kinds": stats.statuses,
            "duplicates": stats.duplicates, "empty_receives": stats.empty_receives}


# -- scenarios ---------------------------------------------------------------------------


async def scenario_send(args: argparse.Namespace) -> dict[str, Any]:
    """Closed loop: ``connections`` clients each POST one message (or a batch) at a time."""
    if args.batch > 1:
        data, per = batch_body(args.queue, args.body_size, args.batch), args.batch
    else:
        data, per = send_body(args.queue, args.body_size), 1
    request, stats, done = build_request("POST", "/messages", data), Stats(), [False]
    workers = [
        asyncio.create_task(send_loop(args.port, request, per, stats, lambda: done[0]))
        for _ in range(args.connections)
    ]
    window = await timed_window(stats, args.warmup, args.duration)
    done[0] = True
    await asyncio.gather(*workers)
    return window.report() | outcome(stats) | {"connections": args.connections, "batch": args.batch}


async def scenario_consume(args: argparse.Namespace) -> dict[str, Any]:
    """Pre-fill, then ``consumers`` clients receive ``size`` and delete each message."""
    filled = await fill(args.port, args.queue, args.prefill, args.body_size)
    stats, seen, done = Stats(), set[int](), [False]
    conns = await connect_many(args.port, args.consumers)
    request = consume_request(args.queue, args.size, args.wait)
    workers = [
        asyncio.create_task(consume_loop(c, request, stats, seen, lambda: done[0], batch_delete=args.batch_delete))
        for c in conns
    ]
    window = await timed_window(stats, args.warmup, args.duration)
    done[0] = True
    await asyncio.gather(*workers)
    close_all(conns)
    left = await queue_size(args.port, args.queue)
    return window.report() | outcome(stats) | {"prefill": filled, "left_in_queue": left,
                                               "drained": left == 0, "consumers": args.consumers,
                                               "delete": args.delete}


async def scenario_deep(args: argparse.Namespace) -> dict[str, Any]:
    """Rounds of: top the queue up to its starting depth, then time consuming ``chunk``."""
    total, stats, seen = Window(), Stats(), set[int]()
    conns = await connect_many(args.port, args.consumers)
    request, consumed = consume_request(args.queue, args.size, args.wait), 0
    for round_no in range(args.rounds + 1):  # round 0 warms up and is not counted
        if consumed:
            await fill(args.port, args.queue, consumed, args.body_size)
        window = await consume_count(conns, request, stats, seen, args.chunk, args.batch_delete)
        consumed = window.messages
        if round_no:
            total.add(window)
    close_all(conns)
    left = await queue_size(args.port, args.queue)
    extra = {"rounds": args.rounds, "chunk": args.chunk, "left_in_queue": left}
    return total.report() | outcome(stats) | extra


async def consume_count(
    conns: list[Connection], request: bytes, stats: Stats, seen: set[int], count: int, batch_delete: bool = False
) -> Window:
    start = stats.messages
    t0, c0 = time.perf_counter(), cpu_seconds()

    def enough() -> bool:
        return stats.messages - start >= count

    await asyncio.gather(*(consume_loop(c, request, stats, seen, enough, batch_delete=batch_delete) for c in conns))
    return Window(time.perf_counter() - t0, cpu_seconds() - c0, stats.messages - start)


@dataclass
class LatencyRun:
    """Shared state of the latency scenario."""

    warm_from: float  # perf_counter seconds: sends before this are not sampled
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)  # actual minus scheduled send time
    received: int = 0

    def on_messages(self, messages: list[dict[str, Any]], received_at: float) -> None:
        for message in messages:
            stamp = message["body"][:20]
            if not stamp.isdigit():
                continue  # not sent by this run
            sent_at = int(stamp) / 1e9
            self.received += 1
            if sent_at >= self.warm_from:
                self.latencies.append(received_at - sent_at)


async def scenario_latency(args: argparse.Namespace) -> dict[str, Any]:
    """Open loop: send at ``rate``/s while long-polling consumers receive and delete."""
    stats, seen, done = Stats(), set[int](), [False]
    run = LatencyRun(time.perf_counter() + args.warmup)
    consumers = await connect_many(args.port, args.consumers)
    request = consume_request(args.queue, args.size, args.wait)
    workers = [
        asyncio.create_task(consume_loop(c, request, stats, seen, lambda: done[0], run.on_messages,
                                         batch_delete=args.batch_delete))
        for c in consumers
    ]
    await asyncio.sleep(0.5)  # let every consumer park in its long poll
    c0, t0, sends = cpu_seconds(), time.perf_counter(), Stats()
    sent = await paced_sends(args, sends, run)
    window = Window(time.perf_counter() - t0, cpu_seconds() - c0, sent)
    await wait_for(lambda: run.received >= sent, args.drain)
    done[0] = stats.closing = True
    close_all(consumers)
    await asyncio.gather(*workers)
    result = window.report() | outcome(stats)
    result |= {"send_errors": sends.errors, "send_error_kinds": sends.statuses}
    return result | {"latency_ms": summary_ms(run.latencies), "send_lag_ms": summary_ms(run.lags),
                     "sent": sent, "received": run.received, "samples": len(run.latencies),
                     "target_rate": args.rate, "consumers": args.consumers}


async def paced_sends(args: argparse.Namespace, stats: Stats, run: LatencyRun) -> int:
    """Send ``rate * duration`` messages on schedule, each stamped as it is written."""
    loop, pool = asyncio.get_running_loop(), asyncio.Queue[Connection]()
    for conn in await connect_many(args.port, args.connections):
        pool.put_nowait(conn)
    tasks, total = set[asyncio.Task[None]](), int(args.rate * (args.warmup + args.duration))
    start = loop.time()
    for i in range(total):
        due = start + i / args.rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        conn = await pool.get()
        run.lags.append(max(0.0, loop.time() - due))
        task = asyncio.create_task(stamped_send(conn, args, stats, pool))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    close_all(pool.get_nowait() for _ in range(pool.qsize()))
    return stats.messages


async def stamped_send(
    conn: Connection, args: argparse.Namespace, stats: Stats, pool: asyncio.Queue[Connection]
) -> None:
    body = send_body(args.queue, args.body_size, f"{time.perf_counter_ns():020d}")
    await call(conn, build_request("POST", "/messages", body), stats, 1)
    pool.put_nowait(conn)


async def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not condition() and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    return condition()


async def scenario_burst(args: argparse.Namespace) -> dict[str, Any]:
    """Open ``connections`` connections, then write one send on each at once."""
    raise_file_limit()
    stats, t_open = Stats(), time.perf_counter()
    conns = await connect_many(args.port, args.connections)
    opened = time.perf_counter() - t_open
    settled = await wait_for(lambda: not accept_backlog(args.port), 30)
    settle_seconds = time.perf_counter() - t_open - opened
    request = build_request("POST", "/messages", send_body(args.queue, args.body_size))
    c0, t0 = cpu_seconds(), time.perf_counter()
    latencies = await asyncio.wait_for(burst(conns, request, stats), args.timeout)
    window = Window(time.perf_counter() - t0, cpu_seconds() - c0, stats.messages)
    close_all(conns)
    stored = await queue_size(args.port, args.queue)
    return window.report() | outcome(stats) | {
        "connections": len(conns), "open_seconds": round(opened, 3), "latency_ms": summary_ms(latencies),
        "stored": stored, "accepted_before_burst": settled, "accept_wait_seconds": round(settle_seconds, 3),
    }


async def burst(conns: list[Connection], request: bytes, stats: Stats) -> list[float]:
    t0 = time.perf_counter()
    futures = [conn.start(request) for conn in conns]
    latencies: list[float] = []

    async def settle(future: asyncio.Future[tuple[int, bytes]]) -> None:
        try:
            status, _ = await future
        except (HttpError, OSError) as exc:
            stats.error(type(exc).__name__)
            return
        latencies.append(time.perf_counter() - t0)
        stats.record(status, 1)

    await asyncio.gather(*(settle(f) for f in futures))
    return latencies


async def scenario_spread(args: argparse.Namespace) -> dict[str, Any]:
    """Sends, then receives with deletes, spread round-robin over ``queues`` queues
    (one queue: ``--queue``), each phase timed over ``duration``. The queues are
    made first and filled between the phases, ``prefill`` messages in all."""
    names = [args.queue] if args.queues == 1 else [f"q{i:05d}" for i in range(args.queues)]
    t0 = time.perf_counter()
    if args.queues > 1:
        await spread_requests(args.port, [build_request("POST", "/queues", orjson.dumps({"name": n}))
                                          for n in names])
    created = time.perf_counter() - t0
    sent, send = await spread_phase(args, [build_request("POST", "/messages", send_body(n, args.body_size))
                                           for n in names], args.connections)
    per_queue = -(-args.prefill // len(names))
    await spread_requests(args.port, [build_request("POST", "/messages",
                                                    batch_body(n, args.body_size, min(10, per_queue - k)))
                                      for k in range(0, per_queue, 10) for n in names])
    received, consume = await spread_phase(args, [consume_request(n, args.size, 0) for n in names],
                                           args.consumers, consuming=True)
    return {"queues": args.queues, "create_seconds": round(created, 3), "send": send | outcome(sent),
            "consume": consume | outcome(received), "rate": send["rate"],
            "gen_cpu_pct": max(send["gen_cpu_pct"], consume["gen_cpu_pct"]),
            "errors": sent.errors + received.errors, "duplicates": received.duplicates}


async def spread_phase(
    args: argparse.Namespace, requests: list[bytes], connections: int, consuming: bool = False
) -> tuple[Stats, dict[str, Any]]:
    """``connections`` clients take turns over ``requests``; a consumer deletes what it gets."""
    stats, seen, turn, done = Stats(), set[int](), itertools.count(), [False]

    async def client() -> None:
        conn = await connect(args.port)
        while not done[0]:
            status, body = await call(conn, requests[next(turn) % len(requests)], stats, 0 if consuming else 1)
            messages = orjson.loads(body) if consuming and status == 200 else []
            if messages:
                await delete_all(conn, messages, stats, seen, args.batch_delete)
            elif consuming:
                stats.empty_receives += 1
        conn.close()

    workers = [asyncio.create_task(client()) for _ in range(connections)]
    window = await timed_window(stats, args.warmup, args.duration)
    done[0] = True
    await asyncio.gather(*workers)
    return stats, window.report()


async def spread_requests(port: int, requests: list[bytes], connections: int = 32) -> None:
    """Send every request once, over ``connections`` connections; any failure is fatal."""
    stats, pending = Stats(), iter(requests)

    async def worker() -> None:
        conn = await connect(port)
        for request in pending:
            await call(conn, request, stats)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    if stats.errors:
        raise HttpError(f"{stats.errors} requests failed: {stats.statuses}")


async def scenario_idle(args: argparse.Namespace) -> dict[str, Any]:
    """The send scenario with ``idle`` more connections held open, each kept alive
    after one request, so the broker carries them while it works."""
    raise_file_limit()
    probe = build_request("GET", "/healthz")
    idle = await connect_many(args.port, args.idle)
    warm = Stats()
    for start in range(0, len(idle), 500):
        await asyncio.gather(*(call(c, probe, warm) for c in idle[start:start + 500]))
    result = await scenario_send(args)
    alive = sum(1 for c in idle if c.lost is None)
    close_all(idle)
    return result | {"idle": args.idle, "idle_alive_after": alive, "idle_warm_errors": warm.errors}


def accept_backlog(port: int) -> int:
    """Connections to ``port`` the server has not accepted yet: its listen queue plus
    handshakes the kernel left half-open (SYN_RECV) while that queue was full."""
    local, waiting = f"0100007F:{port:04X}", 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1] != local:
                continue
            if fields[3] == "0A":  # LISTEN: rx_queue is the accept queue
                waiting += int(fields[4].split(":")[1], 16)
            elif fields[3] == "03":  # SYN_RECV
                waiting += 1
    return waiting


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


Result = Coroutine[Any, Any, dict[str, Any]]
SCENARIOS: dict[str, Callable[[argparse.Namespace], Result]] = {
    "send": scenario_send,
    "consume": scenario_consume,
    "deep": scenario_deep,
    "latency": scenario_latency,
    "burst": scenario_burst,
    "spread": scenario_spread,
    "idle": scenario_idle,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--port", type=int, default=3213)
    p.add_argument("--queue", default="bench")
    p.add_argument("--body-size", type=int, default=1024)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument("--connections", type=int, default=64, help="sending connections")
    p.add_argument("--batch", type=int, default=1, help="messages per send (1-10)")
    p.add_argument("--consumers", type=int, default=16)
    p.add_argument("--size", type=int, default=10, help="messages per receive")
    p.add_argument("--wait", type=int, default=1, help="receive wait_time (long poll) seconds")
    p.add_argument("--delete", choices=("each", "batch"), default="each",
                   help="consume, deep, latency: one DELETE per message, or one POST /messages/delete per receive")
    p.add_argument("--prefill", type=int, default=200_000, help="consume: messages sent first")
    p.add_argument("--rate", type=float, default=1000.0, help="latency: sends per second")
    p.add_argument("--drain", type=float, default=10.0, help="latency: seconds to wait for the tail")
    p.add_argument("--chunk", type=int, default=5000, help="deep: messages consumed per round")
    p.add_argument("--rounds", type=int, default=5, help="deep: measured rounds (after one warm-up)")
    p.add_argument("--timeout", type=float, default=120.0, help="burst: seconds for all responses")
    p.add_argument("--queues", type=int, default=1, help="spread: queues the load is spread over")
    p.add_argument("--idle", type=int, default=0, help="idle: connections held open besides the senders")
    return p


def run(coroutine: Result) -> tuple[dict[str, Any], str]:
    """Run on uvloop when it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine), "asyncio"
    return uvloop.run(coroutine), "uvloop"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.batch_delete = args.delete == "batch"
    result, loop_name = run(SCENARIOS[args.scenario](args))
    result |= {"scenario": args.scenario, "loop": loop_name}
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
