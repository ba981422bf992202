"""PostgreSQL: a statement that takes rows runs its SKIP LOCKED selection once.

Written as a subquery in FROM, the selection could be planned as the inner side of a nested
loop and run again for each outer row; SKIP LOCKED then skips the rows the statement has just
updated and returns the next ones, so one claim of 1 took every visible message of its queue
(schemathesis found it, on a plan that a small table's statistics chose). In a MATERIALIZED CTE
it runs once, whatever the plan: every LockRows node must be under the CTE's subplan."""

from __future__ import annotations

import json
from collections.abc import Iterator

import asyncpg
import pytest

from tests.conftest import fresh_database
from wonderq.backends.postgres import queries, schema

STATEMENTS = {  # each with parameters of the right types
    "CLAIM": (1, 1, 30, 0),
    "FIFO_CLAIM": (1, 1, 30, 0),
    "MOVE_TO": (1, 1, 2),
    "MOVE_BACK": (1, 1),
}


def lock_rows_outside_ctes(plan: dict[str, object], in_cte: bool = False) -> Iterator[str]:
    """The LockRows nodes of a plan that are not inside a CTE's subplan."""
    in_cte = in_cte or str(plan.get("Subplan Name", "")).startswith("CTE ")
    if plan.get("Node Type") == "LockRows" and not in_cte:
        yield str(plan.get("Parent Relationship"))
    children = plan.get("Plans", [])
    assert isinstance(children, list)
    for child in children:
        yield from lock_rows_outside_ctes(child, in_cte)


@pytest.mark.parametrize("name", sorted(STATEMENTS))
async def test_the_locking_selection_runs_once(postgres: str, name: str) -> None:
    conn = await asyncpg.connect(fresh_database(postgres))
    try:
        await schema.upgrade(conn)
        # the plan that took every message: a nested loop with the selection inside
        await conn.execute("SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off")
        (explained,) = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {getattr(queries, name)}",
                                                      *STATEMENTS[name]))
        assert list(lock_rows_outside_ctes(explained["Plan"])) == []
    finally:
        await conn.close()
