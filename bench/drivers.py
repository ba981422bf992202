"""asyncpg vs psycopg 3 (async, with its pool) on the broker's own statements.

    .venv/bin/pip install 'psycopg[binary,pool]'   # not a dependency of WonderQ
    .venv/bin/python bench/drivers.py

Each driver, in one process pinned to CPU 0 with PostgreSQL on CPU 1, runs
the same work through 8 pooled connections: transactions of one INSERT of a
1 KiB message (the shape of a group-commit batch of one), and transactions of
an INSERT … SELECT FROM unnest of 100 messages. Reported: transactions/s and
the client's CPU per transaction, which is what the broker pays.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable

from pg import BenchPostgres

SETUP = "CREATE TABLE m (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, q bigint, body text)"
ONE = "INSERT INTO m (q, body) VALUES ($1, $2) RETURNING id"
MANY = "INSERT INTO m (q, body) SELECT 1, b FROM unnest($1::text[]) AS u(b) RETURNING id"
BODY = "x" * 1024
SECONDS = 5.0
WORKERS = 8


async def measure(run: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    done, t0, c0 = 0, time.perf_counter(), time.process_time()

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() - t0 < SECONDS:
            await run()
            done += 1

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return done / wall, cpu / done * 1e6


async def with_asyncpg(url: str) -> dict[str, tuple[float, float]]:
    import asyncpg

    pool = await asyncpg.create_pool(url, min_size=WORKERS, max_size=WORKERS)

    async def one() -> None:
        async with pool.acquire() as c, c.transaction():
            await c.fetchval(ONE, 1, BODY)

    async def many() -> None:
        async with pool.acquire() as c, c.transaction():
            await c.fetch(MANY, [BODY] * 100)

    result = {"1 row": await measure(one), "100 rows": await measure(many)}
    await pool.close()
    return result


async def with_psycopg(url: str) -> dict[str, tuple[float, float]]:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(url, min_size=WORKERS, max_size=WORKERS, open=False)
    await pool.open()
    one_sql, many_sql = ONE.replace("$1", "%s").replace("$2", "%s"), MANY.replace("$1", "%s")

    async def one() -> None:
        async with pool.connection() as c, c.transaction():
            await (await c.execute(one_sql, (1, BODY))).fetchone()

    async def many() -> None:
        async with pool.connection() as c, c.transaction():
            await (await c.execute(many_sql, ([BODY] * 100,))).fetchall()

    result = {"1 row": await measure(one), "100 rows": await measure(many)}
    await pool.close()
    return result


def main() -> int:
    os.sched_setaffinity(0, {0})
    pg = BenchPostgres(cpu=1).start()
    try:
        for name, bench in (("asyncpg", with_asyncpg), ("psycopg", with_psycopg)):
            url = pg.fresh_database()
            asyncio.run(setup(url))
            for shape, (rate, cpu_us) in asyncio.run(bench(url)).items():
                print(f"{name:8} {shape:8}: {rate:8,.0f} transactions/s, client CPU {cpu_us:6,.0f} us each")
    finally:
        pg.stop()
    return 0


async def setup(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.execute(SETUP)
    await conn.close()


if __name__ == "__main__":
    sys.exit(main())
