"""WonderQ's storage alone: its SQLite backend driven in this process, with no HTTP at all.

The same loads as bench/peers.py (64 senders, batches of 10, 16 consumers that take 10
and delete them in one batch, 1 KiB bodies), each a task calling the backend's verbs
(``send``, ``send_batch``, ``claim`` + ``delete_batch``) on ``backend_for`` at the
broker's defaults (durability full: every send fsynced before it returns). Group commit,
the writer thread, the checkpoints and the counters all run; the edge, the REST API and
the sockets do not. peers.py runs it pinned to CPU 0 and sets it beside the trivial
handler: on one core a request costs about the handler's CPU plus the storage's (both run
95-99 % busy, so their rates stand for their costs), so storage / (handler + storage)
estimates the best ratio this storage allows, whatever the edge.

    taskset -c 0 .venv/bin/python bench/storage.py send /tmp/x.db --duration 10
    taskset -c 0 .venv/bin/python bench/storage.py consume /tmp/y.db
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from loadgen import cpu_seconds
from loadgen import run as run_loop
from peers import CONSUMERS, QUEUE, SENDERS, SIZE, body, closed_loops, count
from wonderq.backends import backend_for
from wonderq.models import NewMessage, QueueAttributes
from wonderq.settings import Settings

PREFILL_CHUNK = 1000  # messages a send_batch while filling the queue


async def drive(mode: str, path: Path, duration: float, warmup: float, prefill: int) -> dict[str, Any]:
    backend = backend_for(Settings(db=f"sqlite:///{path}"))
    await backend.open()
    try:
        await backend.create_queue(QUEUE, QueueAttributes())
        text = body()
        if mode == "send":
            async def send() -> int:
                await backend.send(QUEUE, NewMessage(text))
                return 1

            return await closed_loops([send] * SENDERS, warmup, duration)
        if mode == "batch":
            return await closed_loops(
                [lambda: count(backend.send_batch(QUEUE, [NewMessage(text) for _ in range(10)]))] * SENDERS,
                warmup, duration)
        for _ in range(0, prefill, PREFILL_CHUNK):
            await backend.send_batch(QUEUE, [NewMessage(text) for _ in range(PREFILL_CHUNK)])

        async def consume() -> int:
            claim = await backend.claim(QUEUE, SIZE, None)
            if claim.messages:
                await backend.delete_batch([(m.id, m.token) for m in claim.messages])
            return len(claim.messages)

        result = await closed_loops([consume] * CONSUMERS, warmup, duration)
        return result | {"drained": result["empty_receives"] > 0}
    finally:
        await backend.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("send", "batch", "consume"))
    p.add_argument("path", type=Path, help="a new SQLite database file")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--prefill", type=int, default=1_000_000,
                   help="consume: messages sent first (at ~50k/s, 11 s take 550k)")
    args = p.parse_args(argv)
    result, _ = run_loop(drive(args.mode, args.path, args.duration, args.warmup, args.prefill))
    result["cpu_pct"] = result.pop("gen_cpu_pct")  # this process is the system, not its load
    print(json.dumps(result | {"cpu_seconds_total": round(cpu_seconds(), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
