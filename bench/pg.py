"""PostgreSQL for the benchmarks: a throwaway server on the load generator's CPU.

The server (and every backend process it forks) is pinned to CPU 1, beside the
load generator, so the broker keeps CPU 0 to itself. ``cpu_ticks`` adds up the
CPU time of all its processes, to say how a run's time split between the
database and the broker.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pgcluster import PostgresCluster, create_database  # noqa: E402

FILL = """
INSERT INTO wonderq.messages (uuid, queue_id, body, created_at, visible_at)
SELECT gen_random_uuid(), $1, repeat('x', $2), $3, $3 FROM generate_series(1, $4)
"""


COUNT = """
INSERT INTO wonderq.queue_counts AS c (queue_id, shard, messages, sent) VALUES ($1, 0, $2, $2)
ON CONFLICT (queue_id, shard) DO UPDATE SET messages = c.messages + $2, sent = c.sent + $2
"""


class BenchPostgres:
    def __init__(self, cpu: int) -> None:
        self.cluster = PostgresCluster(cpu=cpu)

    def start(self) -> BenchPostgres:
        self.cluster.init().start()
        return self

    def stop(self) -> None:
        self.cluster.destroy()

    def fresh_database(self) -> str:
        return create_database(self.cluster.url)

    def cpu_ticks(self) -> int:
        """User + system ticks of the server and all its processes so far."""
        assert self.cluster.proc is not None
        return process_tree_ticks(self.cluster.proc.pid)


def fill(url: str, queue_id: int, count: int, body_size: int, vacuum: bool = True) -> float:
    """Insert ``count`` visible messages straight into the database (and their
    count into the counters); then VACUUM ANALYZE as a long-running database
    would have, unless told not to. Returns seconds."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            past = int(time.time() * 1000) - 60_000
            for start in range(0, count, 100_000):
                await conn.execute(FILL, queue_id, body_size, past, min(100_000, count - start))
            await conn.execute(COUNT, queue_id, count)
            if vacuum:
                await conn.execute("VACUUM ANALYZE wonderq.messages")
        finally:
            await conn.close()

    t0 = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - t0


def process_tree_ticks(root: int) -> int:
    """CPU ticks of a process, its live children (PostgreSQL's backends, say) and
    the children it has reaped (a backend whose connection closed)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(entry) == root:
            total += sum(int(f) for f in fields[11:15])
        elif int(fields[1]) == root:
            total += int(fields[11]) + int(fields[12])
    return total
