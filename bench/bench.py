"""WonderQ's benchmark suite: each scenario against a fresh broker and database.

The broker runs pinned to CPU 0 (``taskset -c 0``) and the load generator
(``bench/loadgen.py``, in its own process) pinned to CPU 1, so the broker gets
exactly one core and the generator's CPU use shows whether it kept up.

    .venv/bin/python bench/bench.py [--quick] [--durability full|normal] [--only send,consume]
    .venv/bin/python bench/bench.py --backend postgresql   # PostgreSQL shares CPU 1 with the generator
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pg import BenchPostgres
from pg import fill as pg_fill

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "loadgen.py"
WONDERQ = Path(sys.executable).with_name("wonderq")
BROKER_CPU, LOADGEN_CPU = 0, 1
QUEUE = "bench"
MB = 1024 * 1024
TARGETS = {  # msgs/s, per backend
    "sqlite": {"send": 10_000, "send_batch": 40_000, "consume": 8_000},
    "postgresql": {"send": 5_000, "send_batch": 20_000, "consume": 4_000},
}


# -- the broker under test ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


class Broker:
    """``wonderq broker`` on its own port, pinned to one CPU, logging to a file."""

    def __init__(self, workdir: Path, durability: str, pg: BenchPostgres | None = None, cpu: int = 0) -> None:
        self.pg = pg
        self.cpu = cpu
        self.db: Path | str = pg.fresh_database() if pg else workdir / "wonderq.db"
        self.log = workdir / f"broker.{cpu}.{id(self)}.log"
        self.durability = durability
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        cmd = [
            "taskset", "-c", str(self.cpu), str(WONDERQ), "broker", "--port", str(self.port),
            "--db", str(self.db), "--durability", self.durability,
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited:\n{self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                if http_json(self.port, "GET", "/healthz")[0] == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError("broker did not become healthy")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def create_queue(self, name: str = QUEUE) -> int:
        status, queue = http_json(self.port, "POST", "/queues", {"name": name})
        if status != 200:
            raise RuntimeError(f"cannot create queue: {status} {queue}")
        return int(queue["id"])

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) in bytes, from /proc."""
        assert self.proc is not None
        values = {}
        with contextlib.suppress(OSError), open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024
        return values

    def log_problems(self) -> list[str]:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [line for line in lines if line.startswith(("ERROR", "CRITICAL", "Traceback"))]


def cpu_ticks(pid: int) -> int:
    """User plus system clock ticks of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def cpu_times(cpu: int) -> list[int]:
    """One CPU's line of /proc/stat: user nice system idle iowait irq softirq steal ..."""
    with open("/proc/stat") as stat:
        line = next(line for line in stat if line.startswith(f"cpu{cpu} "))
    return [int(x) for x in line.split()[1:]]


class BrokerSampler(threading.Thread):
    """While the load runs: the broker's peak VmRSS and CPU use, and what else its
    CPU did: other processes' share, steal time (the hypervisor) and iowait."""

    def __init__(self, broker: Broker, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.broker, self.every, self.peak = broker, every, 0
        self.stopped = threading.Event()
        assert broker.proc is not None
        self.pid = broker.proc.pid
        self.t0, self.ticks0, self.cpu0 = time.monotonic(), cpu_ticks(self.pid), cpu_times(BROKER_CPU)
        self.db_ticks0 = broker.pg.cpu_ticks() if broker.pg else 0

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.peak = max(self.peak, self.broker.memory().get("VmRSS", 0))

    def stop(self) -> dict[str, Any]:
        self.stopped.set()
        self.join()
        wall_ticks = (time.monotonic() - self.t0) * os.sysconf("SC_CLK_TCK")
        cpu = [b - a for a, b in zip(self.cpu0, cpu_times(BROKER_CPU), strict=True)]
        total = sum(cpu[:8]) or 1
        broker = cpu_ticks(self.pid) - self.ticks0
        busy = sum(cpu[:8]) - cpu[3] - cpu[4]  # all but idle and iowait
        db = (self.broker.pg.cpu_ticks() - self.db_ticks0) if self.broker.pg else 0
        return {
            "db_cpu_pct": round(100 * db / wall_ticks, 1),
            "broker_rss_peak": max(self.peak, self.broker.memory().get("VmRSS", 0)),
            "broker_cpu_pct": round(100 * broker / wall_ticks, 1),
            "cpu0_others_pct": round(100 * max(0, busy - broker) / total, 1),
            "cpu0_steal_pct": round(100 * cpu[7] / total, 1),
            "cpu0_iowait_pct": round(100 * cpu[4] / total, 1),
        }


@contextlib.contextmanager
def fresh_broker(plan: Plan) -> Iterator[Broker]:
    workdir = Path(tempfile.mkdtemp(prefix="wonderq-bench-"))
    broker = Broker(workdir, plan.durability, plan.pg)
    try:
        yield broker
    finally:
        broker.stop()
        if plan.keep:
            print(f"  kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def fill_db(path: Path, queue_id: int, count: int, body_size: int, chunk: int = 100_000) -> float:
    """Insert ``count`` visible messages straight into a stopped broker's database."""
    t0 = time.perf_counter()
    past = int(time.time() * 1000) - 60_000
    body = "x" * body_size
    sql = "INSERT INTO messages (uuid, queue_id, body, created_at, visible_at) VALUES (?, ?, ?, ?, ?)"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")  # the broker switches back to WAL
        conn.execute("PRAGMA synchronous = OFF")
        for start in range(0, count, chunk):
            rows = ((str(uuid.uuid4()), queue_id, body, past, past) for _ in range(min(chunk, count - start)))
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "sequence" in tables:  # the broker hands out ids from this row, not from SQLite
            conn.execute("UPDATE sequence SET next_id = max(next_id, (SELECT max(id) + 1 FROM messages))")
    finally:
        conn.close()
    return time.perf_counter() - t0


# -- the load generator ----------------------------------------------------------------------


def loadgen(broker: Broker, scenario: str, *flags: str) -> dict[str, Any]:
    """Run one loadgen scenario pinned to its CPU: its JSON, plus what the broker used."""
    cmd = ["taskset", "-c", str(LOADGEN_CPU), sys.executable, str(LOADGEN), scenario,
           "--port", str(broker.port), "--queue", QUEUE, *flags]
    sampler = BrokerSampler(broker)
    sampler.start()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    measured = sampler.stop()
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {scenario} failed:\n{done.stderr[-3000:]}")
    if done.stderr.strip():
        print(f"  loadgen stderr: {done.stderr.strip()[-500:]}", file=sys.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result | measured | {"broker_memory": broker.memory()}


# -- results ------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    measured: str
    target: str
    passed: bool
    usage: dict[str, Any]  # a loadgen result: generator CPU, broker CPU and RSS
    notes: list[str] = field(default_factory=list)


def error_notes(result: dict[str, Any], broker: Broker) -> list[str]:
    notes = []
    if result.get("errors"):
        notes.append(f"{result['errors']} errors {result.get('error_kinds')}")
    if result.get("send_errors"):
        notes.append(f"{result['send_errors']} send errors {result.get('send_error_kinds')}")
    if result.get("duplicates"):
        notes.append(f"{result['duplicates']} duplicate deliveries")
    if result.get("cpu0_steal_pct", 0) >= 2:
        notes.append(f"CPU {BROKER_CPU} steal {result['cpu0_steal_pct']}%")
    if result.get("cpu0_others_pct", 0) >= 3:
        notes.append(f"other processes used {result['cpu0_others_pct']}% of CPU {BROKER_CPU}")
    problems = broker.log_problems()
    if problems:
        notes.append(f"{len(problems)} broker log errors, first: {problems[0][:120]}")
    return notes


def clean(result: dict[str, Any]) -> bool:
    return not (result.get("errors") or result.get("send_errors") or result.get("duplicates"))


def rate_row(name: str, result: dict[str, Any], broker: Broker, backend: str) -> Row:
    rate, target = result["rate"], TARGETS[backend][name]
    notes = error_notes(result, broker)
    if broker.pg:
        db, own = result["db_cpu_pct"], result["broker_cpu_pct"]
        notes.append(f"CPU: PostgreSQL {db:.0f}% of a core, broker {own:.0f}%")
    if rate < target:
        notes.insert(0, f"{rate / target:.0%} of target ({target - rate:,.0f} msgs/s short)")
    passed = rate >= target and clean(result)
    return Row(name, f"{rate:,.0f} msgs/s", f">= {target:,.0f} msgs/s", passed, result, notes)


# -- scenarios -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Durations and sizes: full, or short for a smoke run (--quick)."""

    durability: str
    duration: float
    prefill: int
    deep_small: int
    deep_big: int
    deep_rounds: int
    deep_chunk: int
    burst: int = 5000
    queues: int = 10_000  # the many-queue case
    spread_prefill: int = 200_000  # messages over those queues before consuming
    idle: int = 9_900  # idle connections beside the senders (the default cap is 10,000)
    body: int = 1024
    keep: bool = False  # keep each scenario's database and broker log
    backend: str = "sqlite"
    pg: BenchPostgres | None = None  # the server, for --backend postgresql

    def timing(self) -> list[str]:
        return ["--duration", str(self.duration), "--body-size", str(self.body)]


def plan_for(args: argparse.Namespace, pg: BenchPostgres | None) -> Plan:
    extra = {"keep": args.keep, "backend": args.backend, "pg": pg}
    if args.quick:
        return Plan(args.durability, 3, 60_000, 10_000, 100_000, 3, 3000, queues=1000, spread_prefill=50_000,
                    idle=2000, **extra)  # type: ignore[arg-type]
    return Plan(args.durability, 10, 150_000, 10_000, 1_000_000, 10, 5000, **extra)  # type: ignore[arg-type]


def scenario_send(plan: Plan) -> list[Row]:
    with fresh_broker(plan) as broker:
        broker.start().create_queue()
        result = loadgen(broker, "send", *plan.timing(), "--connections", "64")
        return [rate_row("send", result, broker, plan.backend)]


def scenario_send_batch(plan: Plan) -> list[Row]:
    with fresh_broker(plan) as broker:
        broker.start().create_queue()
        result = loadgen(broker, "send", *plan.timing(), "--connections", "64", "--batch", "10")
        return [rate_row("send_batch", result, broker, plan.backend)]


def scenario_consume(plan: Plan) -> list[Row]:
    with fresh_broker(plan) as broker:
        broker.start().create_queue()
        result = loadgen(broker, "consume", *plan.timing(), "--consumers", "16", "--size", "10",
                         "--wait", "1", "--prefill", str(plan.prefill))
        row = rate_row("consume", result, broker, plan.backend)
        fill = result["prefill"]
        row.notes.append(f"{result['duplicates']} duplicates")
        row.notes.append(f"prefill {fill['messages']:,} at {fill['rate']:,.0f}/s")
        if result["drained"]:
            row.notes.append("queue drained during the run: rate is a lower bound")
        return [row]


def scenario_latency(plan: Plan) -> list[Row]:
    with fresh_broker(plan) as broker:
        broker.start().create_queue()
        result = loadgen(broker, "latency", *plan.timing(), "--rate", "1000", "--consumers", "16",
                         "--size", "10", "--wait", "20", "--connections", "64")
        lat, lag = result["latency_ms"], result["send_lag_ms"]
        # issue 9's targets on SQLite; PostgreSQL: none
        fast = (lat["p50"] <= 3 and lat["p99"] <= 10 and lat["p999"] <= 20) or plan.backend != "sqlite"
        ok = fast and result["received"] == result["sent"] and clean(result)
        notes = [
            *error_notes(result, broker),
            f"p90 {lat['p90']:.2f} ms, max {lat['max']:.2f} ms",
            f"sent {result['sent']:,}, received {result['received']:,}, send lag p99 {lag['p99']:.1f} ms",
        ]
        measured = f"p50 {lat['p50']:.2f}, p99 {lat['p99']:.2f}, p99.9 {lat['p999']:.2f} ms"
        target = "p50 <= 3, p99 <= 10, p99.9 <= 20 ms" if plan.backend == "sqlite" else "(none: report)"
        return [Row("latency", measured, target, ok, result, notes)]


def deep_run(plan: Plan, depth: int) -> dict[str, Any]:
    """Consume rate (16 consumers, size 10, delete each) with ``depth`` messages waiting."""
    with fresh_broker(plan) as broker:
        queue_id = broker.start().create_queue()
        broker.stop()
        if plan.pg:
            fill_seconds = pg_fill(str(broker.db), queue_id, depth, plan.body)
        else:
            fill_seconds = fill_db(Path(broker.db), queue_id, depth, plan.body)
        broker.start()
        result = loadgen(broker, "deep", "--body-size", str(plan.body), "--consumers", "16", "--size", "10",
                         "--wait", "1", "--rounds", str(plan.deep_rounds), "--chunk", str(plan.deep_chunk))
        db_bytes = 0 if plan.pg else sum(p.stat().st_size for p in Path(broker.db).parent.glob("wonderq.db*"))
        extra = {"fill_seconds": fill_seconds, "db_bytes": db_bytes, "notes": error_notes(result, broker)}
        return result | extra


def scenario_deep(plan: Plan) -> list[Row]:
    small, big = deep_run(plan, plan.deep_small), deep_run(plan, plan.deep_big)
    ratio = big["rate"] / small["rate"] if small["rate"] else 0.0
    depths = f"{plan.deep_small:,} vs {plan.deep_big:,}"
    rates = f"{small['rate']:,.0f} vs {big['rate']:,.0f} msgs/s"
    notes = [
        f"{plan.deep_big:,} filled in {big['fill_seconds']:.1f} s, db {big['db_bytes'] / MB:,.0f} MB",
        *(f"{plan.deep_small:,}: {note}" for note in small["notes"]),
        *(f"{plan.deep_big:,}: {note}" for note in big["notes"]),
    ]
    rss, hwm = big["broker_rss_peak"] / MB, big["broker_memory"].get("VmHWM", 0) / MB
    ok = ratio >= 0.8 and clean(small) and clean(big)
    return [
        Row(f"deep ({depths})", f"{ratio:.0%} ({rates})", ">= 80%", ok, big, notes),
        Row(f"deep RSS ({plan.deep_big:,})", f"{rss:,.1f} MB (VmHWM {hwm:,.1f} MB)", "<= 150 MB",
            rss <= 150, big),
    ]


def scenario_bloat(plan: Plan) -> list[Row]:
    """PostgreSQL: drain a 1M queue through the broker, then compare the consume
    rate at 10k on that table (full of dead rows, left to autovacuum) with the
    rate at 10k on a fresh one."""
    if not plan.pg:
        return []
    fresh = deep_run(plan, plan.deep_small)
    with fresh_broker(plan) as broker:
        queue_id = broker.start().create_queue()
        broker.stop()
        pg_fill(str(broker.db), queue_id, plan.deep_big, plan.body)
        broker.start()
        t0 = time.perf_counter()
        drained = loadgen(broker, "deep", "--body-size", str(plan.body), "--consumers", "16", "--size", "10",
                          "--wait", "1", "--rounds", "0", "--chunk", str(plan.deep_big))
        drain_rate = plan.deep_big / (time.perf_counter() - t0)
        broker.stop()
        pg_fill(str(broker.db), queue_id, plan.deep_small, plan.body, vacuum=False)
        broker.start()
        after = loadgen(broker, "deep", "--body-size", str(plan.body), "--consumers", "16", "--size", "10",
                        "--wait", "1", "--rounds", str(plan.deep_rounds), "--chunk", str(plan.deep_chunk))
    ratio = after["rate"] / fresh["rate"] if fresh["rate"] else 0.0
    notes = [f"drained {plan.deep_big:,} at {drain_rate:,.0f} msgs/s (with the broker's start)",
             *error_notes(after, broker)]
    measured = f"{ratio:.0%} ({after['rate']:,.0f} after vs {fresh['rate']:,.0f} fresh msgs/s)"
    ok = ratio >= 0.8 and clean(after) and clean(drained)
    return [Row(f"after draining {plan.deep_big:,}", measured, ">= 80%", ok, after, notes)]


def scenario_burst(plan: Plan) -> list[Row]:
    with fresh_broker(plan) as broker:
        broker.start().create_queue()
        result = loadgen(broker, "burst", "--connections", str(plan.burst), "--body-size", str(plan.body))
        lat = result["latency_ms"]
        ok = clean(result) and result["ok_responses"] == plan.burst and result["stored"] == plan.burst
        notes = [
            *error_notes(result, broker),
            f"all answered in {result['seconds']:.2f} s; p50 {lat['p50']:.0f} ms, max {lat['max']:.0f} ms",
            f"stored {result['stored']:,}; connections opened in {result['open_seconds']:.2f} s",
        ]
        measured = f"{result['errors']} errors, {result['ok_responses']:,}/{plan.burst:,} ok"
        return [Row("burst", measured, "0 errors", ok, result, notes)]


def spread_run(plan: Plan, queues: int) -> dict[str, Any]:
    with fresh_broker(plan) as broker:
        broker.start()
        if queues == 1:  # else it makes its own (and the default cap is 10,000 queues)
            broker.create_queue()
        return loadgen(broker, "spread", *plan.timing(), "--queues", str(queues), "--connections", "64",
                       "--consumers", "16", "--size", "10", "--prefill", str(plan.spread_prefill))


def scenario_queues(plan: Plan) -> list[Row]:
    """Send, and consume with deletes, over one queue and over ``plan.queues`` queues, twice
    each, alternated (one pair alone swung the consume's ratio from 58 % to 95 %); the mean
    rates compared."""
    runs: dict[int, list[dict[str, Any]]] = {1: [], plan.queues: []}
    for queues in (1, plan.queues, plan.queues, 1):
        runs[queues].append(spread_run(plan, queues))
    one, many = runs[1][-1], runs[plan.queues][-1]
    rows = []
    for phase in ("send", "consume"):
        a, b = (sum(r[phase]["rate"] for r in runs[n]) / len(runs[n]) for n in (1, plan.queues))
        ratio = b / a if a else 0.0
        notes = [f"1 queue {a:,.0f}/s, {plan.queues:,} queues {b:,.0f}/s",
                 *(f"{n:,} queues: {k} {r[phase][k]}" for n, r in ((1, one), (plan.queues, many))
                   for k in ("errors", "duplicates", "empty_receives") if r[phase].get(k))]
        if phase == "send":
            notes.append(f"{plan.queues:,} queues made in {many['create_seconds']:.1f} s")
        usage = many | {"gen_cpu_pct": many[phase]["gen_cpu_pct"]}
        rows.append(Row(f"{phase} over {plan.queues:,} queues", f"{ratio:.0%} of one queue", ">= 80%",
                        ratio >= 0.8 and not many["errors"] and not many["duplicates"], usage, notes))
    return rows


def mean_rate(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rate": sum(r["rate"] for r in results) / len(results),
            "broker_rss_peak": max(r["broker_rss_peak"] for r in results)}


def scenario_connections(plan: Plan) -> list[Row]:
    """Single sends on 64 connections, alone and beside ``plan.idle`` idle kept-alive ones,
    twice each, alternated; the mean rates compared."""
    runs: dict[int, list[dict[str, Any]]] = {0: [], plan.idle: []}
    for idle in (0, plan.idle, plan.idle, 0):  # alternated: one run's noise is a tenth or more
        with fresh_broker(plan) as broker:
            broker.start().create_queue()
            runs[idle].append(loadgen(broker, "idle", *plan.timing(), "--connections", "64", "--idle", str(idle)))
    alone, crowded = runs[0][-1] | mean_rate(runs[0]), runs[plan.idle][-1] | mean_rate(runs[plan.idle])
    ratio = crowded["rate"] / alone["rate"] if alone["rate"] else 0.0
    per = (crowded["broker_rss_peak"] - alone["broker_rss_peak"]) / max(plan.idle, 1)
    notes = [f"64 connections {alone['rate']:,.0f}/s; with {plan.idle:,} idle {crowded['rate']:,.0f}/s",
             f"RSS {alone['broker_rss_peak'] / MB:,.0f} MB vs {crowded['broker_rss_peak'] / MB:,.0f} MB"
             f" (~{per / 1024:.1f} KiB per idle connection)",
             f"{crowded['idle_alive_after']:,} of {plan.idle:,} idle connections still open after the run"]
    ok = ratio >= 0.9 and clean(crowded) and crowded["idle_alive_after"] == plan.idle
    return [Row(f"send beside {plan.idle:,} idle connections", f"{ratio:.0%} of 64 alone", ">= 90%", ok,
                crowded, notes + error_notes(crowded, broker))]


SCENARIOS: dict[str, Callable[[Plan], list[Row]]] = {
    "send": scenario_send,
    "send_batch": scenario_send_batch,
    "consume": scenario_consume,
    "latency": scenario_latency,
    "deep": scenario_deep,
    "burst": scenario_burst,
    "bloat": scenario_bloat,
    "queues": scenario_queues,
    "connections": scenario_connections,
}


# -- the report -------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = ["scenario", "measured", "target", "result", "gen CPU", "broker CPU", "broker RSS"]
    body = [
        [r.scenario, r.measured, r.target, "PASS" if r.passed else "FAIL", f"{r.usage['gen_cpu_pct']:.0f}%",
         f"{r.usage['broker_cpu_pct']:.0f}%", f"{r.usage['broker_rss_peak'] / MB:,.0f} MB"]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
             for line in [head, *body]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def notes(rows: list[Row]) -> str:
    return "\n".join(f"- {r.scenario}: {'; '.join(r.notes)}" for r in rows if r.notes)


def broker_version() -> str:
    """The commit under test, marked dirty if src/ has local changes."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(HERE.parent), *args], capture_output=True, text=True)
        return done.stdout.strip()

    dirty = " (src/ modified)" if git("status", "--porcelain", "src") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def pin_self() -> None:
    """Keep this orchestrator (and its RSS sampler) off the broker's CPU."""
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs: broker and generator will share one", file=sys.stderr)
        return
    os.sched_setaffinity(0, {LOADGEN_CPU})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short runs, smaller deep queue (a smoke test)")
    p.add_argument("--durability", choices=("full", "normal"), default="full")
    p.add_argument("--backend", choices=tuple(TARGETS), default="sqlite")
    p.add_argument("--only", help=f"comma-separated scenarios of: {', '.join(SCENARIOS)}")
    p.add_argument("--json", type=Path, help="also write the rows here as JSON")
    p.add_argument("--keep", action="store_true", help="keep each scenario's database and broker log")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser().error(f"unknown scenario(s): {', '.join(unknown)}")
    pin_self()
    pg = BenchPostgres(LOADGEN_CPU).start() if args.backend == "postgresql" else None
    try:
        return run(args, names, plan_for(args, pg))
    finally:
        if pg:
            pg.stop()


def run(args: argparse.Namespace, names: list[str], plan: Plan) -> int:
    rows: list[Row] = []
    print(f"wonderq {broker_version()}, backend={plan.backend}, durability={plan.durability},"
          f" quick={args.quick}: broker on CPU {BROKER_CPU}, loadgen on CPU {LOADGEN_CPU}")
    for name in names:
        t0 = time.perf_counter()
        new = SCENARIOS[name](plan)
        rows += new
        for row in new:
            print(f"  {row.scenario}: {row.measured} [{'PASS' if row.passed else 'FAIL'}] "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(table(rows))
    print()
    print(notes(rows))
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2))
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
