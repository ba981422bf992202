"""Where the broker's time goes under one load: py-spy samples `wonderq broker`
(its defaults, pinned to CPU 0) while bench/loadgen.py drives it from CPU 1, and
the top frames are printed by own time and by time including callees.

    .venv/bin/python bench/profile.py send              # single sends on 64 connections
    .venv/bin/python bench/profile.py batch             # batches of 10
    .venv/bin/python bench/profile.py consume           # receive 10 + delete each
    .venv/bin/python bench/profile.py consume-batch     # receive 10 + one batch delete
    .venv/bin/python bench/profile.py latency           # 1,000 sends/s, 16 long-polling consumers
    .venv/bin/python bench/profile.py idle              # single sends beside 9,900 idle connections
    .venv/bin/python bench/profile.py send --sqs        # the same through the SQS API (bench/sqs_bench.py)
    .venv/bin/python bench/profile.py send --svg out.svg  # also a flame graph

py-spy (the bench extra) must be able to ptrace the broker: root, or
kernel.yama.ptrace_scope = 0.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import LOADGEN, LOADGEN_CPU, QUEUE, Broker, http_json

HERE = Path(__file__).resolve().parent
PY_SPY = Path(sys.executable).with_name("py-spy")
PREFILL = 100_000
LOADS = {  # name: (script, its arguments)
    "send": (LOADGEN, ["send", "--connections", "64"]),
    "batch": (LOADGEN, ["send", "--connections", "64", "--batch", "10"]),
    "consume": (LOADGEN, ["consume", "--consumers", "16", "--size", "10", "--prefill", str(PREFILL)]),
    "latency": (LOADGEN, ["latency", "--rate", "1000", "--consumers", "16", "--size", "10", "--wait", "20"]),
    "idle": (LOADGEN, ["idle", "--connections", "64", "--idle", "9900"]),
    "consume-batch": (LOADGEN, ["consume", "--consumers", "16", "--size", "10", "--prefill", str(PREFILL),
                                "--delete", "batch"]),
}


def load_command(args: argparse.Namespace, broker: Broker) -> list[str]:
    pin = ["taskset", "-c", str(LOADGEN_CPU), sys.executable]
    if args.sqs:
        operation = args.load.removesuffix("-batch")
        return [*pin, str(HERE / "sqs_bench.py"), "load", "sqs", operation, "--port", str(broker.port),
                "--url", f"http://127.0.0.1:{broker.port}/000000000000/{QUEUE}", "--duration", str(args.seconds + 3)]
    script, flags = LOADS[args.load]
    return [*pin, str(script), *flags, "--port", str(broker.port), "--queue", QUEUE,
            "--duration", str(args.seconds + 3)]


def filled(broker: Broker, count: int, timeout: float = 120) -> None:
    """Wait until the prefill of ``count`` messages is done: the queue has stopped
    growing (the consumers have begun) after reaching most of it."""
    deadline, peak = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        _, queues = http_json(broker.port, "GET", "/queues")
        size = next((q["queue_size"] for q in queues if q["name"] == QUEUE), 0)
        if peak >= 0.9 * count and size < peak:
            return
        peak = max(peak, size)
        time.sleep(0.1)
    raise RuntimeError("the queue was not filled in time")


def frames(raw: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Own sample counts per frame (function and line), and inclusive counts per
    WonderQ function, from py-spy's collapsed stacks ("f (path:line);g (path:line) n")."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n, calls = int(count), stack.split(";")
        total += n
        own[short(calls[-1])] += n
        for name in {short(c, line=False) for c in calls if "/wonderq/" in c}:
            inclusive[name] += n
    return own, inclusive, total


def short(frame: str, line: bool = True) -> str:
    """``send (/x/wonderq/broker/rest.py:180)`` -> ``send broker/rest.py:180``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")")
    path = path.split("/wonderq/", 1)[1] if "/wonderq/" in path else path.rsplit("/", 1)[-1]
    return f"{name} {path if line else path.rsplit(':', 1)[0]}"


def report(title: str, counts: collections.Counter[str], total: int, top: int) -> None:
    print(f"\n{title} ({total:,} samples)")
    for name, n in counts.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("load", choices=sorted(LOADS))
    p.add_argument("--sqs", action="store_true", help="drive the SQS API instead of the REST API")
    p.add_argument("--seconds", type=int, default=10, help="seconds sampled")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--svg", type=Path, help="also write a flame graph here")
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="wonderq-profile-"))
    broker = Broker(workdir, "full")
    try:
        broker.start().create_queue()
        assert broker.proc is not None
        load = subprocess.Popen(load_command(args, broker), stdout=subprocess.DEVNULL)
        if args.load.startswith("consume"):
            filled(broker, PREFILL)  # sample the consumers, not the prefill
        raw = workdir / "profile.txt"
        spy = [str(PY_SPY), "record", "--pid", str(broker.proc.pid), "--duration", str(args.seconds),
               "--rate", "250", "--threads", "--nonblocking", "--full-filenames"]
        subprocess.run([*spy, "--format", "raw", "--output", str(raw)], check=True, capture_output=True)
        if args.svg:
            subprocess.run([*spy, "--output", str(args.svg)], check=True, capture_output=True)
        load.wait(60)
        own, inclusive, total = frames(raw)
        report("own time", own, total, args.top)
        report("WonderQ functions, including callees", inclusive, total, args.top)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
