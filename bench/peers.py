"""WonderQ beside a ceiling and its peers, in one run on this machine (issue 9).

Each system under test runs pinned to CPU 0 (``taskset -c 0``), its load on CPU 1,
with 1 KiB bodies and the same concurrency for all: 64 senders, 16 consumers that
take up to 10 messages at a time. Measured, in messages per second:

- the Python HTTP ceiling: a trivial raw-ASGI app on uvicorn (bench/trivial_app.py),
  driven by the same generator as WonderQ (bench/loadgen.py);
- the storage ceiling: raw SQLite inserts (WAL, synchronous=FULL), 1 and 100 rows
  a transaction, in one process on CPU 0; and its consume: the 10 oldest rows read
  and deleted, 16 times a transaction (no claim written: the least any design that
  keeps messages as rows asks of SQLite);
- Redis as a reliable queue (LPUSH; LMOVE to a processing list + LREM), with
  ``appendfsync always`` and ``everysec``;
- RabbitMQ: a durable queue, persistent messages, publisher confirms; consumers with
  prefetch 10 and a manual ack per message;
- pgmq on PostgreSQL 15 (its SQL install, no compiled extension) through its asyncpg
  client, the database on CPU 0;
- WonderQ as a user starts it (``wonderq broker --db …``, defaults), over REST, on
  SQLite and on PostgreSQL (the database on CPU 0 beside the broker, as pgmq's);
- WonderQ's storage alone (bench/storage.py): its SQLite backend driven in one
  process on CPU 0, no HTTP. Beside the trivial handler it estimates the best any edge
  could reach with this storage on one core: storage / (handler + storage).

Every peer is started and stopped here; one that cannot be started is skipped with
one line. The table gives each system's rates and WonderQ's ratio to each, then the
issue's ratio targets with PASS/FAIL.

    .venv/bin/python bench/peers.py            # ~10 s a measurement, ~8 minutes
    .venv/bin/python bench/peers.py --quick    # ~1.5 s a measurement: a smoke test, ~2.5 minutes
    .venv/bin/python bench/peers.py --only trivial,wonderq,redis-always
    .venv/bin/python bench/peers.py --only trivial,sqlite,wonderq --rounds 3   # medians of 3 rounds

This machine's speed drifts by a quarter over minutes, and a whole run takes eight: with
``--rounds N`` every system is measured N times, in alternating order (A B C, C B A, ...),
and each rate is the median of its rounds, so the ceiling and WonderQ see the same drift.

The peers' clients come with the ``bench`` extra: ``pip install -e '.[bench]'``;
Redis and RabbitMQ from Debian (``apt-get install redis-server rabbitmq-server``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import WONDERQ, cpu_times, free_port, http_json
from loadgen import Stats, cpu_seconds, timed_window
from loadgen import run as run_loop
from pg import BenchPostgres, process_tree_ticks

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "loadgen.py"
SUT_CPU, LOAD_CPU = 0, 1  # the system under test, and its load
QUEUE = "bench"
BODY = 1024
SENDERS, CONSUMERS, SIZE = 64, 16, 10


class Skip(Exception):
    """A peer that cannot be installed or started here."""


# -- measurements ------------------------------------------------------------------------------


@dataclass
class Plan:
    duration: float
    warmup: float
    prefill: int

    def timing(self) -> list[str]:
        return ["--duration", str(self.duration), "--warmup", str(self.warmup), "--body-size", str(BODY)]


@dataclass
class System:
    """One row of the table: rates in msgs/s (None: not measured), and notes."""

    name: str
    send: float | None = None
    batch: float | None = None
    consume: float | None = None  # consume 10 + the system's own ack (one batch delete for WonderQ)
    consume_each: float | None = None  # consume 10 + one delete per message (WonderQ and the ceiling)
    gen_cpu: float = 0.0  # the highest share of CPU 1 the load used over the measurements
    sut_cpu: float = 0.0  # the highest share of CPU 0 the system used
    others_cpu: float = 0.0  # the highest share of CPU 0 other processes took meanwhile
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, result: dict[str, Any]) -> None:
        setattr(self, key, result["rate"])
        self.gen_cpu = max(self.gen_cpu, result.get("gen_cpu_pct", 0.0))
        self.sut_cpu = max(self.sut_cpu, result.get("sut_cpu_pct", 0.0))
        self.others_cpu = max(self.others_cpu, result.get("others_cpu_pct", 0.0))
        if result.get("errors"):
            self.notes.append(f"{key}: {result['errors']} errors {result.get('error_kinds')}")
        if result.get("duplicates"):
            self.notes.append(f"{key}: {result['duplicates']} duplicates")
        if result.get("drained"):
            self.notes.append(f"{key}: the queue ran dry, the rate is a lower bound")


def measured(pids: list[int], command: list[str]) -> dict[str, Any]:
    """Run one load process pinned to CPU 1; its JSON, plus the system's CPU share."""
    cmd = ["taskset", "-c", str(LOAD_CPU), *command]
    t0, ticks0, cpu0 = time.monotonic(), sum(process_tree_ticks(p) for p in pids), cpu_times(SUT_CPU)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    wall = (time.monotonic() - t0) * os.sysconf("SC_CLK_TCK")
    ticks = sum(process_tree_ticks(p) for p in pids) - ticks0
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"sut_cpu_pct": round(100 * ticks / wall, 1) if wall else 0.0,
                     "others_cpu_pct": others_share(cpu0, ticks)}


def others_share(before: list[int], own_ticks: int) -> float:
    """How much of CPU 0 went to other processes since ``before``: busy minus the system's own."""
    delta = [b - a for a, b in zip(before, cpu_times(SUT_CPU), strict=True)]
    total = sum(delta[:8]) or 1
    busy = total - delta[3] - delta[4]  # all but idle and iowait
    return round(100 * max(0, busy - own_ticks) / total, 1)


def loadgen(pids: list[int], port: int, scenario: str, *flags: str) -> dict[str, Any]:
    return measured(pids, [sys.executable, str(LOADGEN), scenario, "--port", str(port), "--queue", QUEUE, *flags])


def driver(pids: list[int], plan: Plan, kind: str, mode: str, **options: str | int) -> dict[str, Any]:
    """This script's own load for a peer (``drive``), in a process of its own on CPU 1."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    return measured(pids, [sys.executable, __file__, "drive", kind, mode, "--duration", str(plan.duration),
                           "--warmup", str(plan.warmup), "--prefill", str(plan.prefill), *flags])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Skip(f"{what} exited with status {proc.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise Skip(f"{what} did not listen on port {port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def need(program: str, package: str) -> str:
    found = shutil.which(program) or (program if os.path.exists(program) else None)
    if not found:
        raise Skip(f"{program} not found (apt-get install -y {package})")
    return found


def need_module(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise Skip(f"Python module {module} missing (pip install -e '.[bench]')") from None


# -- the systems ------------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"wonderq-peers-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def pinned_server(command: Callable[[int], list[str]], what: str) -> Iterator[tuple[int, int]]:
    """``command(port)`` run on the system's CPU until its port answers; its port and pid."""
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", str(SUT_CPU), *command(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, what)
        yield port, proc.pid
    finally:
        stop(proc)


def trivial_server() -> contextlib.AbstractContextManager[tuple[int, int]]:
    uvicorn = need(str(Path(sys.executable).with_name("uvicorn")), "uvicorn (pip)")
    return pinned_server(lambda port: [uvicorn, "trivial_app:app", "--app-dir", str(HERE), "--port", str(port),
                                       "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                                       "--log-level", "warning"], "uvicorn")


HTTP_RUNS = {  # loadgen's scenario and flags for each column
    "send": ("send", ["--connections", str(SENDERS)]),
    "batch": ("send", ["--connections", str(SENDERS), "--batch", "10"]),
    "consume": ("consume", ["--delete", "batch"]),
    "consume_each": ("consume", ["--delete", "each"]),
}


def measure_http(name: str, plan: Plan, server: Callable[[], contextlib.AbstractContextManager[tuple[int, int]]],
                 columns: tuple[str, ...] = tuple(HTTP_RUNS), also: tuple[int, ...] = ()) -> System:
    """loadgen's scenarios, each against a fresh server from ``server()``; ``also``: more
    processes whose CPU counts as the system's (its database)."""
    system = System(name)
    for key in columns:
        scenario, flags = HTTP_RUNS[key]
        if scenario == "consume":
            flags = [*flags, "--consumers", str(CONSUMERS), "--size", str(SIZE), "--wait", "1",
                     "--prefill", str(plan.prefill)]
        with server() as (port, pid):
            system.add(key, loadgen([pid, *also], port, scenario, *plan.timing(), *flags))
    return system


def trivial_edge_server() -> contextlib.AbstractContextManager[tuple[int, int]]:
    return pinned_server(lambda port: [sys.executable, str(HERE / "trivial_app.py"), str(port)],
                         "the trivial app on WonderQ's edge")


def measure_trivial_edge(plan: Plan) -> System:
    system = measure_http("ceiling: trivial app, WonderQ's edge", plan, trivial_edge_server)
    system.notes.append("the same answers through wonderq.edge (App, routes, connections): what the edge costs")
    return system


def measure_trivial(plan: Plan) -> System:
    system = measure_http("ceiling: raw ASGI on uvicorn", plan, trivial_server)
    system.notes.append("consume answers 10 made-up messages; deletes answer success")
    return system


def wonderq_server(db: Callable[[Path], str]) -> Callable[[], Any]:
    """A factory of fresh brokers, each on the database ``db(its temporary folder)`` names."""
    @contextlib.contextmanager
    def server() -> Iterator[tuple[int, int]]:
        with workdir("wonderq") as tmp:
            port = free_port()
            log = (tmp / "broker.log").open("wb")
            cmd = ["taskset", "-c", str(SUT_CPU), str(WONDERQ), "broker", "--port", str(port), "--db", db(tmp)]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if proc.poll() is not None:
                        raise RuntimeError(f"broker exited:\n{(tmp / 'broker.log').read_text()[-2000:]}")
                    with contextlib.suppress(OSError):
                        if http_json(port, "GET", "/healthz")[0] == 200:
                            break
                    time.sleep(0.05)
                status, answer = http_json(port, "POST", "/queues", {"name": QUEUE})
                if status != 200:
                    raise RuntimeError(f"cannot create the queue: {status} {answer}")
                yield port, proc.pid
            finally:
                stop(proc)
                log.close()

    return server


def measure_wonderq(plan: Plan) -> System:
    system = measure_http("WonderQ REST, SQLite", plan, wonderq_server(lambda tmp: str(tmp / "wonderq.db")))
    system.notes.append("`wonderq broker --db FILE` with its defaults")
    return system


@contextlib.contextmanager
def postgres() -> Iterator[BenchPostgres]:
    try:
        pg = BenchPostgres(SUT_CPU).start()
    except Exception as exc:  # no PostgreSQL installed, initdb failed, ...
        raise Skip(f"PostgreSQL did not start: {str(exc)[:200]}") from exc
    try:
        yield pg
    finally:
        pg.stop()


def measure_wonderq_pg(plan: Plan) -> System:
    need_module("asyncpg")
    with postgres() as pg:
        assert pg.cluster.proc is not None
        server = wonderq_server(lambda tmp: pg.fresh_database())
        system = measure_http("WonderQ REST, PostgreSQL", plan, server, ("send", "batch", "consume"),
                              also=(pg.cluster.proc.pid,))
    system.notes.append("broker and PostgreSQL share CPU 0")
    return system


def on_cpu0(system: System, key: str, command: list[str], timeout: float) -> None:
    """A measurement that is a process of its own on CPU 0 (its load inside it), printing JSON
    with its rate, ``cpu_pct`` and ``cpu_seconds_total``: added to ``system`` under ``key``."""
    cpu0 = cpu_times(SUT_CPU)
    done = subprocess.run(["taskset", "-c", str(SUT_CPU), sys.executable, *command],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} {command[1]} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    own = round(result["cpu_seconds_total"] * os.sysconf("SC_CLK_TCK"))
    system.add(key, result | {"sut_cpu_pct": result["cpu_pct"], "others_cpu_pct": others_share(cpu0, own)})


def measure_sqlite(plan: Plan) -> System:
    system = System("ceiling: raw SQLite inserts")
    with workdir("sqlite") as tmp:
        for key, rows in (("send", 1), ("batch", 100)):
            on_cpu0(system, key, [__file__, "sqlite", str(tmp / f"raw{rows}.db"), "--rows", str(rows),
                                  "--duration", str(plan.duration), "--warmup", str(plan.warmup)], timeout=300)
        on_cpu0(system, "consume", [__file__, "sqlite", str(tmp / "take.db"), "--prefill", str(2 * plan.prefill),
                                    "--duration", str(plan.duration), "--warmup", str(plan.warmup)], timeout=600)
    system.notes.append("one process on CPU 0, no load generator; send = 1 row a transaction, batch = 100 rows;"
                        " consume = 16 x (read the 10 oldest, delete them) a transaction")
    return system


def measure_storage(plan: Plan) -> System:
    system = System("WonderQ's storage alone, SQLite")
    with workdir("storage") as tmp:
        for key in ("send", "batch", "consume"):
            on_cpu0(system, key, [str(HERE / "storage.py"), key, str(tmp / f"{key}.db"), "--duration",
                                  str(plan.duration), "--warmup", str(plan.warmup),
                                  "--prefill", str(2 * plan.prefill)], timeout=600)  # no HTTP: drains twice as fast
    system.notes.append("the SQLite backend's verbs called in one process on CPU 0 (bench/storage.py): no HTTP")
    return system


@contextlib.contextmanager
def redis_server(fsync: str) -> Iterator[tuple[int, int]]:
    binary = need("redis-server", "redis-server")
    need_module("redis")
    with workdir("redis") as tmp:
        port = free_port()
        cmd = ["taskset", "-c", str(SUT_CPU), binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
               "--appendonly", "yes", "--appendfsync", fsync, "--save", "", "--daemonize", "no",
               "--logfile", str(tmp / "redis.log"), "--protected-mode", "no"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, proc, "redis-server")
            yield port, proc.pid
        finally:
            stop(proc)


def measure_redis(plan: Plan, fsync: str) -> System:
    system = System(f"Redis 7, appendfsync {fsync}")
    with redis_server(fsync) as (port, pid):
        for key, mode in (("send", "send"), ("batch", "batch"), ("consume", "consume")):
            system.add(key, driver([pid], plan, "redis", mode, port=port))
    system.notes.append("LPUSH (batch: one LPUSH of 10); consume: 10 LMOVE, then 10 LREM, each pipelined")
    return system


@contextlib.contextmanager
def rabbitmq_server() -> Iterator[tuple[int, int]]:
    script = need("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server")
    epmd_binary = need("epmd", "erlang-base")
    need_module("pika")
    with workdir("rabbitmq") as tmp:
        port, epmd_port = free_port(), free_port()
        (tmp / "enabled_plugins").write_text("[].\n")
        (tmp / "rabbitmq.conf").write_text("log.console = false\n")
        env = os.environ | {
            "HOME": str(tmp), "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_NODENAME": f"wonderq-peers-{port}@localhost", "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(tmp / "mnesia"), "RABBITMQ_LOG_BASE": str(tmp / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(tmp / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(tmp / "rabbitmq"), "RABBITMQ_PID_FILE": str(tmp / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1",  # one scheduler: it has one core
        }
        epmd = subprocess.Popen(["taskset", "-c", str(SUT_CPU), epmd_binary, "-port", str(epmd_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = (tmp / "server.log").open("wb")
        proc = subprocess.Popen(["taskset", "-c", str(SUT_CPU), script], env=env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=tmp)
        try:
            wait_port(port, proc, "rabbitmq-server", timeout=90)
            yield port, proc.pid
        finally:
            stop(proc, 60)
            stop(epmd)
            log.close()


def measure_rabbitmq(plan: Plan) -> System:
    system = System("RabbitMQ, confirms")
    with rabbitmq_server() as (port, pid):
        for key, mode in (("send", "send"), ("batch", "batch"), ("consume", "consume")):
            system.add(key, driver([pid], plan, "rabbitmq", mode, port=port))
    system.notes.append("durable classic queue, persistent messages; batch: 10 published, then their confirms")
    return system


def measure_pgmq(plan: Plan) -> System:
    need_module("pgmq")
    need_module("asyncpg")
    system = System("pgmq on PostgreSQL 15")
    with postgres() as pg:
        assert pg.cluster.proc is not None
        pid = pg.cluster.proc.pid
        url = pg.fresh_database()
        install_pgmq(url)
        for key, mode in (("send", "send"), ("batch", "batch"), ("consume", "consume")):
            system.add(key, driver([pid], plan, "pgmq", mode, url=url))
    system.notes.append("asyncpg client; consume: pgmq.read of 10, then pgmq.delete of their ids")
    return system


def install_pgmq(url: str) -> None:
    """pgmq's SQL-only install: the script its Python package ships, no extension."""
    import importlib.resources

    import asyncpg

    sql = (importlib.resources.files("pgmq.sql") / "pgmq.sql").read_text()

    async def install() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(install())


# -- the drivers: this script's load for the peers, run as ``peers.py drive KIND MODE`` ---------------


Op = Callable[[], Awaitable[int]]  # one request: how many messages it moved


async def closed_loops(ops: list[Op], warmup: float, duration: float) -> dict[str, Any]:
    """Run each op in a loop of its own; measure ``duration`` after ``warmup``."""
    stats, done = Stats(), [False]

    async def loop(op: Op) -> None:
        while not done[0]:
            try:
                moved = await op()
            except Exception as exc:
                stats.error(type(exc).__name__)
                await asyncio.sleep(0.01)
                continue
            if moved:
                stats.messages += moved
            else:
                stats.empty_receives += 1

    tasks = [asyncio.create_task(loop(op)) for op in ops]
    window = await timed_window(stats, warmup, duration)
    done[0] = True
    await asyncio.gather(*tasks)
    return window.report() | {"errors": stats.errors, "error_kinds": stats.statuses,
                              "empty_receives": stats.empty_receives}


def body(i: int = 0) -> str:
    prefix = f"{i:012d}"
    return prefix + "x" * (BODY - len(prefix))


async def drive_redis(args: argparse.Namespace) -> dict[str, Any]:
    import redis.asyncio as redis

    r = redis.Redis(host="127.0.0.1", port=args.port, max_connections=SENDERS + CONSUMERS)
    await r.flushall()
    payload = body()
    if args.mode == "send":
        result = await closed_loops([lambda: one(r.lpush(QUEUE, payload))] * SENDERS, args.warmup, args.duration)
    elif args.mode == "batch":
        many = [payload] * 10
        result = await closed_loops([lambda: ten(r.lpush(QUEUE, *many))] * SENDERS, args.warmup, args.duration)
    else:
        for start in range(0, args.prefill, 1000):
            await r.lpush(QUEUE, *(body(i) for i in range(start, min(args.prefill, start + 1000))))

        def consumer(n: int) -> Op:
            async def op() -> int:
                pipe = r.pipeline(transaction=False)
                for _ in range(SIZE):
                    pipe.lmove(QUEUE, f"processing:{n}", "RIGHT", "LEFT")
                items = [item for item in await pipe.execute() if item is not None]
                if items:
                    pipe = r.pipeline(transaction=False)
                    for item in items:
                        pipe.lrem(f"processing:{n}", 1, item)
                    await pipe.execute()
                return len(items)
            return op

        result = await closed_loops([consumer(n) for n in range(CONSUMERS)], args.warmup, args.duration)
        result["drained"] = await r.llen(QUEUE) == 0
    await r.aclose()
    return result


class Rabbit:
    """One pika AsyncioConnection with a channel in confirm mode."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.pending: set[int] = set()
        self.next_tag = 0
        self.settled: asyncio.Future[None] | None = None
        self.nacked = 0

    async def open(self) -> Rabbit:
        import pika
        from pika.adapters.asyncio_connection import AsyncioConnection

        loop = asyncio.get_running_loop()
        opened: asyncio.Future[Any] = loop.create_future()
        params = pika.ConnectionParameters(host="127.0.0.1", port=self.port, heartbeat=0)
        self.conn = AsyncioConnection(
            params, on_open_callback=opened.set_result,
            on_open_error_callback=lambda _, exc: opened.set_exception(RuntimeError(str(exc))),
            custom_ioloop=loop,
        )
        await opened
        channel: asyncio.Future[Any] = loop.create_future()
        self.conn.channel(on_open_callback=channel.set_result)
        self.channel = await channel
        return self

    async def rpc(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        method(*args, callback=done.set_result, **kwargs)
        return await done

    async def confirming(self) -> None:
        await self.rpc(self.channel.confirm_delivery, self.on_confirm)

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        tags = {t for t in self.pending if t <= method.delivery_tag} if method.multiple else {method.delivery_tag}
        if method.NAME.endswith("Nack"):
            self.nacked += len(tags)
        self.pending -= tags
        if not self.pending and self.settled is not None and not self.settled.done():
            self.settled.set_result(None)

    async def publish(self, payloads: list[bytes]) -> int:
        import pika

        properties = pika.BasicProperties(delivery_mode=2)
        for payload in payloads:
            self.channel.basic_publish("", QUEUE, payload, properties)
            self.next_tag += 1
            self.pending.add(self.next_tag)
        self.settled = asyncio.get_running_loop().create_future()
        await self.settled
        return len(payloads)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


async def drive_rabbitmq(args: argparse.Namespace) -> dict[str, Any]:
    admin = await Rabbit(args.port).open()
    with contextlib.suppress(Exception):
        await admin.rpc(admin.channel.queue_delete, QUEUE)
    await admin.rpc(admin.channel.queue_declare, QUEUE, durable=True)
    if args.mode in ("send", "batch"):
        publishers = [await Rabbit(args.port).open() for _ in range(SENDERS)]
        for p in publishers:
            await p.confirming()
        payloads = [body().encode()] * (1 if args.mode == "send" else 10)
        result = await closed_loops([lambda p=p: p.publish(payloads) for p in publishers],  # type: ignore[misc]
                                    args.warmup, args.duration)
        result["nacked"] = sum(p.nacked for p in publishers)
        for p in publishers:
            p.close()
    else:
        fillers = [await Rabbit(args.port).open() for _ in range(CONSUMERS)]
        chunk, left = [body().encode()] * 100, [args.prefill]

        async def fill(p: Rabbit) -> None:
            await p.confirming()
            while left[0] > 0:
                left[0] -= len(chunk)
                await p.publish(chunk)
            p.close()

        await asyncio.gather(*(fill(p) for p in fillers))
        stats = Stats()
        consumers = [await Rabbit(args.port).open() for _ in range(CONSUMERS)]
        for c in consumers:
            await c.rpc(c.channel.basic_qos, prefetch_count=SIZE)

            def on_message(channel: Any, method: Any, properties: Any, payload: bytes) -> None:
                channel.basic_ack(method.delivery_tag)
                stats.messages += 1

            c.channel.basic_consume(QUEUE, on_message, auto_ack=False)
        window = await timed_window(stats, args.warmup, args.duration)
        result = window.report() | {"errors": 0}
        left = await admin.rpc(admin.channel.queue_declare, QUEUE, passive=True)
        result["drained"] = left.method.message_count == 0
        for c in consumers:
            c.close()
    admin.close()
    await asyncio.sleep(0.1)
    return result


async def drive_pgmq(args: argparse.Namespace) -> dict[str, Any]:
    from pgmq.async_queue import PGMQueue

    q = PGMQueue(conn_string=args.url, pool_size=SENDERS, init_extension=False)
    await q.init()
    with contextlib.suppress(Exception):
        await q.drop_queue(QUEUE)
    await q.create_queue(QUEUE)
    message = {"body": body()}
    if args.mode == "send":
        result = await closed_loops([lambda: one(q.send(QUEUE, message))] * SENDERS, args.warmup, args.duration)
    elif args.mode == "batch":
        many = [message] * 10
        result = await closed_loops([lambda: count(q.send_batch(QUEUE, many))] * SENDERS, args.warmup, args.duration)
    else:
        for _ in range(0, args.prefill, 1000):
            await q.send_batch(QUEUE, [message] * 1000)

        async def consume() -> int:
            messages = await q.read(QUEUE, vt=30, qty=SIZE) or []
            if messages:
                await q.delete_batch(QUEUE, [m.msg_id for m in messages])
            return len(messages)

        result = await closed_loops([consume] * CONSUMERS, args.warmup, args.duration)
        result["drained"] = False
    await q.close()
    return result


async def one(awaitable: Awaitable[Any]) -> int:
    await awaitable
    return 1


async def ten(awaitable: Awaitable[Any]) -> int:
    await awaitable
    return 10


async def count(awaitable: Awaitable[list[Any]]) -> int:
    return len(await awaitable)


DRIVERS = {"redis": drive_redis, "rabbitmq": drive_rabbitmq, "pgmq": drive_pgmq}


RAW_TABLE = ("CREATE TABLE messages (id INTEGER PRIMARY KEY, queue_id INTEGER NOT NULL, body TEXT NOT NULL,"
             " created_at INTEGER NOT NULL, visible_at INTEGER NOT NULL)")
RAW_INDEX = "CREATE INDEX messages_visible ON messages (queue_id, visible_at, id)"
RAW_INSERT = "INSERT INTO messages (queue_id, body, created_at, visible_at) VALUES (?, ?, ?, ?)"
RAW_TAKE = ("SELECT id, body, created_at FROM messages WHERE queue_id = 1 AND visible_at <= ?"
            " ORDER BY visible_at, id LIMIT 10")
RAW_DELETE = "DELETE FROM messages WHERE id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def raw_connection(path: Path) -> sqlite3.Connection:
    """A durable database with WonderQ's message table at its simplest (one index)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(RAW_TABLE)
    conn.execute(RAW_INDEX)
    return conn


def raw_sqlite(path: Path, rows: int, duration: float, warmup: float, prefill: int = 0) -> dict[str, Any]:
    """Durable inserts of ``rows`` 1 KiB rows a transaction, in one loop; with ``prefill``,
    the consume ceiling instead (:func:`raw_take`)."""
    conn = raw_connection(path)
    payload, done, measuring = body(), 0, False
    if prefill:
        ms = int(time.time() * 1000)
        conn.execute("BEGIN")
        conn.executemany(RAW_INSERT, [(1, payload, ms, ms)] * prefill)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    end = time.perf_counter() + warmup
    t0 = c0 = 0.0
    while True:
        now = time.perf_counter()
        if now >= end:
            if measuring:
                break
            measuring, done, t0, c0, end = True, 0, now, cpu_seconds(), now + duration
        ms = int(time.time() * 1000)
        conn.execute("BEGIN IMMEDIATE")
        if prefill:
            taken = raw_take(conn, ms)
            done += taken
            if taken < CONSUMERS * SIZE:
                break  # drained: the window ends here
        else:
            conn.executemany(RAW_INSERT, [(1, payload, ms, ms)] * rows)
            done += rows
        conn.execute("COMMIT")
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    conn.close()
    return {"rate": round(done / wall, 1), "messages": done, "seconds": round(wall, 3),
            "cpu_pct": round(100 * cpu / wall, 1), "cpu_seconds_total": round(cpu_seconds(), 3)}


def raw_take(conn: sqlite3.Connection, ms: int) -> int:
    """The least a consume of 10 and its delete can ask of SQLite: the 10 oldest rows read,
    then deleted by id, for each of the 16 consumers in one durable transaction (a group
    commit as large as the consumers allow); no claim is written, no queue counted."""
    taken = 0
    for _ in range(CONSUMERS):
        ids = [row[0] for row in conn.execute(RAW_TAKE, (ms,)).fetchall()]
        if len(ids) < SIZE:
            break
        conn.execute(RAW_DELETE, ids)
        taken += len(ids)
    return taken


# -- the table -----------------------------------------------------------------------------------------


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def ratio(mine: float | None, theirs: float | None) -> str:
    return "—" if not mine or not theirs else f"{mine / theirs:.2f}x"


def markdown(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in [head, *body]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def report(systems: dict[str, System]) -> str:
    head = ["system", "send", "batch send (10)", "consume+ack", "consume+delete each", "sys CPU", "gen CPU",
            "others on CPU 0",
            "WonderQ / it (send, batch, consume)"]
    rows = []
    for key, s in systems.items():
        against = systems.get("wonderq") if key != "pgmq" else systems.get("wonderq-pg")
        ratios = "" if key.startswith("wonderq") or against is None else " / ".join(
            ratio(getattr(against, k), getattr(s, k)) for k in ("send", "batch", "consume"))
        rows.append([s.name, rate(s.send), rate(s.batch), rate(s.consume), rate(s.consume_each),
                     f"{s.sut_cpu:.0f}%", f"{s.gen_cpu:.0f}%", f"{s.others_cpu:.0f}%", ratios])
    out = [markdown(head, rows), ""]
    for s in systems.values():
        if s.others_cpu >= 10:
            s.notes.append(f"other processes took up to {s.others_cpu:.0f}% of CPU 0 meanwhile: its rates are low")
    out += [f"- {s.name}: {'; '.join(s.notes)}" for s in systems.values() if s.notes]
    out += ["", markdown(["target (issue 9)", "measured", "result"], targets(systems))]
    return "\n".join(out)


Check = tuple[str, float | None, float | None, float | None]  # name, mine, theirs, floor


def targets(systems: dict[str, System]) -> list[list[str]]:
    wq, pgwq = systems.get("wonderq"), systems.get("wonderq-pg")
    trivial, raw, pgmq = systems.get("trivial"), systems.get("sqlite"), systems.get("pgmq")
    checks: list[Check] = []
    if wq and trivial:
        checks.append(("send >= 0.60 x the trivial handler", wq.send, trivial.send, 0.60))
        checks.append(("consume 10 + batch delete >= 0.50 x the trivial handler (msgs)", wq.consume,
                       trivial.consume, 0.50))
        checks.append(("consume 10 + 10 deletes vs the trivial handler (msgs)", wq.consume_each,
                       trivial.consume_each, None))
    if wq and (edge := systems.get("trivial-edge")):
        checks.append(("send vs the trivial app on WonderQ's own edge (report)", wq.send, edge.send, None))
        checks.append(("consume 10 + batch delete vs the same (report)", wq.consume, edge.consume, None))
    if wq and raw:
        checks.append(("batch send >= 0.60 x raw SQLite, 100 rows a transaction", wq.batch, raw.batch, 0.60))
    checks += bounds(systems)
    for key in ("redis-always", "rabbitmq"):
        if wq and key in systems:
            peer = systems[key]
            checks.append((f"send vs {peer.name} (report)", wq.send, peer.send, None))
            checks.append((f"consume vs {peer.name} (report)", wq.consume, peer.consume, None))
    if pgwq and pgmq:
        checks.append(("PostgreSQL: send >= 1.0 x pgmq", pgwq.send, pgmq.send, 1.0))
        checks.append(("PostgreSQL: consume >= 1.0 x pgmq", pgwq.consume, pgmq.consume, 1.0))
    rows = []
    for name, mine, theirs, floor in checks:
        value = ratio(mine, theirs)
        verdict = "report" if floor is None else (
            "PASS" if mine and theirs and mine / theirs >= floor else "FAIL")
        rows.append([name, value, verdict])
    return rows


def bounds(systems: dict[str, System]) -> list[Check]:
    """About the best each SQLite target could reach with WonderQ's storage as it is, and
    with raw SQLite's least work for a consume: on one core a request costs the trivial
    handler's CPU plus the storage's, and both run 95-99 % busy, so the rate is about
    1 / (1/handler + 1/storage) at most, whatever the edge and the REST API cost. (An
    fsync's idle wait could overlap HTTP work: an estimate, not a proof.)"""
    store, trivial, raw = systems.get("storage"), systems.get("trivial"), systems.get("sqlite")
    if trivial is None:
        return []

    def bound(of: System | None, key: str) -> float | None:
        mine, http = getattr(of, key, None), getattr(trivial, key)
        return 1 / (1 / mine + 1 / http) if mine and http else None

    rows: list[Check] = []
    if store:
        rows += [
            ("storage alone (no HTTP): send vs the trivial handler (report)", store.send, trivial.send, None),
            ("storage alone: consume + batch delete vs the trivial handler (report)", store.consume,
             trivial.consume, None),
            ("bound: send, storage + the trivial handler's HTTP (report)", bound(store, "send"), trivial.send, None),
            ("bound: consume + batch delete, the same (report)", bound(store, "consume"), trivial.consume, None)]
    if store and raw:
        rows.append(("bound: batch send vs raw SQLite, the same (report)", bound(store, "batch"), raw.batch, None))
    if raw and raw.consume:
        rows += [
            ("raw SQLite alone: read 10 + delete vs the trivial handler (report)", raw.consume, trivial.consume,
             None),
            ("bound: consume, raw SQLite + the trivial handler's HTTP (report)", bound(raw, "consume"),
             trivial.consume, None)]
    return rows


MEASURES: dict[str, Callable[[Plan], System]] = {
    "trivial": measure_trivial,
    "trivial-edge": measure_trivial_edge,
    "sqlite": measure_sqlite,
    "redis-always": lambda plan: measure_redis(plan, "always"),
    "redis-everysec": lambda plan: measure_redis(plan, "everysec"),
    "rabbitmq": measure_rabbitmq,
    "pgmq": measure_pgmq,
    "wonderq": measure_wonderq,
    "wonderq-pg": measure_wonderq_pg,
    "storage": measure_storage,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    drive = sub.add_parser("drive", help="(internal) the load for one peer")
    drive.add_argument("kind", choices=sorted(DRIVERS))
    drive.add_argument("mode", choices=("send", "batch", "consume"))
    raw = sub.add_parser("sqlite", help="(internal) raw SQLite inserts")
    raw.add_argument("path", type=Path)
    raw.add_argument("--rows", type=int, default=1)
    raw.add_argument("--prefill", type=int, default=0, help="rows to consume instead of inserting")
    for q in (drive, raw):
        q.add_argument("--duration", type=float, default=10.0)
        q.add_argument("--warmup", type=float, default=1.0)
    drive.add_argument("--prefill", type=int, default=150_000)
    drive.add_argument("--port", type=int, default=0)
    drive.add_argument("--url", default="")
    p.add_argument("--quick", action="store_true", help="~1.5 s a measurement, a smaller prefill")
    p.add_argument("--only", help=f"comma-separated, of: {', '.join(MEASURES)}")
    p.add_argument("--json", type=Path, help="also write the rates here")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every system this many times, in alternating order; report the medians")
    return p


def measure_round(plan: Plan, names: list[str]) -> dict[str, System]:
    """Each system once, in this order; one that cannot run is skipped with one line."""
    systems: dict[str, System] = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            systems[name] = MEASURES[name](plan)
        except Skip as exc:
            print(f"  skipped {name}: {exc}", flush=True)
            continue
        except Exception as exc:
            print(f"  skipped {name}: failed: {str(exc).strip().splitlines()[-1][:300]}", flush=True)
            continue
        s = systems[name]
        print(f"  {s.name}: send {rate(s.send)}, batch {rate(s.batch)}, consume {rate(s.consume)} msgs/s "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return systems


def median_system(runs: list[System]) -> System:
    """One system's rounds as one: each rate the median of its rounds (--rounds), so that a
    machine whose speed drifts over minutes drifts for the ceiling and WonderQ alike; the
    rounds run in alternating order (A B C, C B A, ...) for the same reason."""
    if len(runs) == 1:
        return runs[0]
    merged = System(runs[0].name, notes=list(dict.fromkeys(n for r in runs for n in r.notes)))
    for key in ("send", "batch", "consume", "consume_each"):
        values = [v for r in runs if (v := getattr(r, key)) is not None]
        setattr(merged, key, statistics.median(values) if values else None)
        if len(values) > 1:
            merged.notes.append(f"{key} over {len(values)} rounds: {', '.join(rate(v) for v in values)}")
    for key in ("gen_cpu", "sut_cpu", "others_cpu"):
        setattr(merged, key, max(getattr(r, key) for r in runs))
    return merged


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "drive":
        result, _ = run_loop(DRIVERS[args.kind](args))
        print(json.dumps(result))
        return 0
    if args.command == "sqlite":
        print(json.dumps(raw_sqlite(args.path, args.rows, args.duration, args.warmup, args.prefill)))
        return 0
    names = args.only.split(",") if args.only else list(MEASURES)
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        parser().error(f"unknown system(s): {', '.join(unknown)}")
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {LOAD_CPU})  # keep this orchestrator off the system's CPU
    plan = Plan(1.5, 0.5, 30_000) if args.quick else Plan(10.0, 1.0, 400_000)
    print(f"peers: systems on CPU {SUT_CPU}, load on CPU {LOAD_CPU}; {SENDERS} senders, {CONSUMERS} consumers "
          f"of {SIZE}, {BODY} B bodies, {plan.duration:g} s a measurement; load average {os.getloadavg()[0]:.2f}",
          flush=True)
    rounds = [measure_round(plan, names if r % 2 == 0 else names[::-1]) for r in range(args.rounds)]
    systems = {name: median_system([r[name] for r in rounds if name in r]) for name in names
               if any(name in r for r in rounds)}
    if not (HERE / "sqs_bench.py").exists():
        print("  skipped moto: its SQS server (and WonderQ's SQS API) are measured by bench/sqs_bench.py,"
              " not on this branch", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}\n")
    print(report(systems))
    if args.json:
        args.json.write_text(json.dumps({k: s.__dict__ for k, s in systems.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
