"""What a SQLite broker leaves on disk: a database only its owner can read, and
no empty wake-up directory in /tmp once the last broker of that file is gone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.inprocess import serving
from wonderq.backends.sqlite.wakeups import Wakeups
from wonderq.broker.app import create_app
from wonderq.settings import Settings


def test_database_is_private_and_nothing_is_left_in_tmp(tmp_path: Path) -> None:
    db = tmp_path / "private.db"
    wakeups = Path(Wakeups(str(db), lambda q, n: None).directory)
    with serving(create_app(Settings(db=str(db)))) as app, app.client() as client:
        client.post("/queues", json={"name": "a"}).raise_for_status()
        assert wakeups.is_dir() and stat.S_IMODE(wakeups.stat().st_mode) == 0o700
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert not wakeups.exists()
