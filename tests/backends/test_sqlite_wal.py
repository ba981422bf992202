"""SQLite's WAL stays bounded under steady load: past its limit the writer checkpoints
once after a commit so that its next transaction starts the WAL over (a TRUNCATE
checkpoint held the writer for tens of ms; see SqliteBackend._checkpoint)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from wonderq.backends.sqlite import backend as sqlite_backend
from wonderq.backends.sqlite.backend import SqliteBackend
from wonderq.clock import Clock
from wonderq.models import NewMessage, QueueAttributes
from wonderq.settings import Settings

LIMIT = 64  # pages


async def test_the_wal_is_restarted_under_steady_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_backend, "WAL_LIMIT_PAGES", LIMIT)
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_INTERVAL", 0.005)
    path = tmp_path / "w.db"
    db = SqliteBackend(str(path), Settings(db=f"sqlite:///{path}", durability="normal"), Clock())
    await db.open()
    try:
        queue = await db.create_queue("q", QueueAttributes())
        largest = 0
        for _ in range(40):  # 40 rounds of 32 concurrent sends: the writer is never idle for long
            await asyncio.gather(*(db.send_batch(queue.id, [NewMessage("x" * 3000)] * 4) for _ in range(32)))
            largest = max(largest, os.path.getsize(f"{path}-wal"))
        assert (await db.queue_stats(queue.id)).messages == 40 * 32 * 4
    finally:
        await db.close()
    # 40 x 32 x 4 bodies of 3 KB is ~15 MB of WAL if it never started over; it stays near its limit
    assert largest < 40 * LIMIT * 4096, largest
