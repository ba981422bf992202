"""``wonderq backup``: a consistent copy of a live SQLite database, taken while a
broker keeps committing sends to it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from tests.cli.test_client_verbs import wq
from tests.conftest import BrokerProcess
from wonderq import Client


def test_backup_of_a_live_database_under_writes(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    broker = BrokerProcess(db).start()
    acknowledged: list[int] = []
    stop = threading.Event()

    def write() -> None:
        with Client(broker.url) as c:
            while not stop.is_set():
                acknowledged.extend(s.id for s in c.send_batch("live", [f"m{i}" for i in range(10)]))

    try:
        with Client(broker.url) as c:
            c.create_queue("live")
            c.create_queue("bulk")  # 15 MB: the copy and its check take long enough to overlap sends
            for _ in range(10):
                c.send_batch("bulk", ["x" * 150_000] * 10)
        writer = threading.Thread(target=write)
        writer.start()
        try:
            while len(acknowledged) < 200:
                stop.wait(0.01)
            before = len(acknowledged)
            r = wq(None, "backup", str(tmp_path / "copy.db"), "--db", str(db))
            after = len(acknowledged)
            for _ in range(1000):  # the broker still commits sends (whether any landed during so short a copy
                if len(acknowledged) > after:  # is the machine's timing, not asserted)
                    break
                stop.wait(0.01)
            later = len(acknowledged)
        finally:
            stop.set()
            writer.join(10)
    finally:
        broker.stop()
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"backed up {db} to {tmp_path / 'copy.db'}: 2 queues, "), r.stdout
    assert later > after >= before, "the broker stopped taking sends"
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
    live = "(SELECT id FROM queues WHERE name = 'live')"
    ids = [row[0] for row in copy.execute(f"SELECT id FROM messages WHERE queue_id = {live} ORDER BY id")]
    assert before <= len(ids) <= len(acknowledged)  # a snapshot taken during the writes
    assert ids == sorted(acknowledged)[: len(ids)]  # a prefix of what was acknowledged: no torn batch
    assert len(ids) % 10 == 0  # each batch of 10 is one transaction: all of it or none
    assert copy.execute("SELECT count(*) FROM messages").fetchone() == (100 + len(ids),)  # and the bulk
    counts = copy.execute(f"SELECT sum(messages) FROM queue_counts WHERE queue_id = {live}").fetchone()
    assert counts == (len(ids),)  # the counters agree with the rows: one snapshot
    assert not list(tmp_path.glob(".copy.db.partial"))
    assert (tmp_path / "copy.db").stat().st_mode & 0o777 == 0o600  # every message, the keys' hashes


def test_backup_refuses_what_it_cannot_do_safely(tmp_path: Path) -> None:
    (tmp_path / "taken.db").write_text("")
    r = wq(None, "backup", str(tmp_path / "taken.db"), "--db", str(tmp_path / "missing.db"))
    assert (r.returncode, r.stderr) == (2, f"wonderq: no database at {tmp_path / 'missing.db'} (--db or WONDERQ_DB)\n")
    sqlite3.connect(tmp_path / "w.db").close()
    r = wq(None, "backup", str(tmp_path / "taken.db"), "--db", str(tmp_path / "w.db"))
    assert r.returncode == 2 and "exists; pass --force" in r.stderr
    r = wq(None, "backup", str(tmp_path / "b.db"), WONDERQ_DB="postgresql://u:p@db/wonderq")
    assert r.returncode == 2 and "pg_dump" in r.stderr


def test_a_destination_it_cannot_write_is_named_as_such(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "w.db").close()
    dest = tmp_path / "no" / "such" / "b.db"
    r = wq(None, "backup", str(dest), "--db", str(tmp_path / "w.db"))
    assert (r.returncode, r.stderr) == (2, f"wonderq: cannot write {dest}: no directory {dest.parent}\n")
    (tmp_path / "file").write_text("")
    r = wq(None, "backup", str(tmp_path / "file" / "b.db"), "--db", str(tmp_path / "w.db"))
    assert r.returncode == 2 and r.stderr.startswith(f"wonderq: cannot write {tmp_path / 'file' / 'b.db'}"), r
