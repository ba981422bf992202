"""``wonderq migrate``: a SQLite database's queues and messages, moved to PostgreSQL
by the real command, then checked over HTTP on a broker running on PostgreSQL."""

from __future__ import annotations

import hashlib
import re
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_client_verbs import wq
from tests.conftest import BrokerProcess, free_port, fresh_database

SUMMARY = re.compile(r"^migrated (\d+) queues and (\d+) messages from .+ in \d+\.\d s$")
FAR = 600  # seconds: a delay or visibility timeout that cannot run out during a test


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    """``wonderq migrate *args``, run in this process."""
    return wq(None, "migrate", *args)


def create(c: httpx.Client, name: str, **attributes: Any) -> dict[str, Any]:
    r = c.post("/queues", json={"name": name, **attributes})
    assert r.status_code == 200, r.text
    return dict(r.json())


def send(c: httpx.Client, queue: str, body: str, delay: int | None = None) -> int:
    r = c.post("/messages", json={"queue_name": queue, "body": body, "delay_seconds": delay})
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def consume(c: httpx.Client, queue: str, size: int, visibility: int) -> list[dict[str, Any]]:
    params = {"queue_name": queue, "size": size, "wait_time": 0, "visibility_timeout": visibility}
    r = c.get("/messages/consume", params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


def snapshot(c: httpx.Client) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Every queue with its counts (less the moving age), and every message of each."""
    queues = [{k: v for k, v in q.items() if k != "oldest_message_age"} for q in c.get("/queues").json()]
    return queues, {q["name"]: c.get(f"/queues/{q['id']}/messages?size=1000").json() for q in queues}


def fill(c: httpx.Client) -> dict[str, Any]:
    """Queues and messages in every state; returns what the checks need."""
    create(c, "dead")
    create(c, "jobs", visibility_timeout=120, retention_seconds=86_400, max_message_size=4096,
           redrive_target="dead", max_receive_count=5)
    create(c, "flaky", redrive_target="dead", max_receive_count=1)
    temp = create(c, "temp")
    assert c.delete(f"/queues/{temp['id']}").status_code == 200  # the highest queue id, gone
    for i in range(8):
        send(c, "jobs", f"job-{i}")
    r = c.post("/messages", json={"queue_name": "jobs", "messages": [{"body": "batch-a"}, {"body": "b"}]})
    assert r.status_code == 200, r.text
    for i in range(3):
        send(c, "jobs", f"later-{i}", delay=FAR)
    held = consume(c, "jobs", 3, FAR)  # job-0..2: in flight, with tokens
    send(c, "flaky", "poison")
    consume(c, "flaky", 1, 0)
    assert consume(c, "flaky", 1, 0) == []  # over its receive limit: moved to "dead"
    send(c, "dead", "twice-0")
    send(c, "dead", "twice-1")
    first = consume(c, "dead", 10, 0)  # received and released at once...
    second = consume(c, "dead", 10, FAR)  # ...and received again: in flight
    assert len(first) == len(second) == 3, (first, c.get("/queues/flaky/messages").json())
    assert all(m["receive_count"] >= 2 for m in second)
    last = send(c, "jobs", "deleted")
    assert c.delete(f"/messages/{last}").status_code == 200  # the highest message id, gone
    return {"temp": temp["id"], "last": last, "held": held, "stale": first, "current": second}


def digest(db: Path) -> dict[str, str]:
    files = [db, db.with_name(db.name + "-wal")]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.exists()}


def test_migrate_keeps_queues_messages_and_their_state(
    broker_factory: type[BrokerProcess], postgres: str, tmp_path: Path
) -> None:
    db = tmp_path / "wonderq.db"
    source = broker_factory(db, log_dir=tmp_path).start()
    with httpx.Client(base_url=source.url, timeout=30) as c:
        made = fill(c)
        before = snapshot(c)
    source.stop(signal.SIGKILL)  # as after a crash: the latest commits may be in the WAL only
    files = digest(db)
    target = fresh_database(postgres)

    result = migrate("--from", f"sqlite:///{db}", "--to", target)

    assert result.returncode == 0, result.stderr
    summary = SUMMARY.match(result.stdout.strip())
    assert summary, result.stdout
    assert summary.groups() == ("3", str(sum(len(m) for m in before[1].values())))
    assert digest(db) == files  # only read
    with httpx.Client(base_url=broker_factory(target, log_dir=tmp_path).start().url, timeout=30) as c:
        assert snapshot(c) == before  # ids, attributes, counts; every message field, tokens too
        check_states(c, before[0], made)


def check_states(c: httpx.Client, queues: list[dict[str, Any]], made: dict[str, Any]) -> None:
    jobs = next(q for q in queues if q["name"] == "jobs")
    assert (jobs["queue_size"], jobs["retrievable_size"], jobs["in_flight_size"], jobs["delayed_size"]) == (
        13, 7, 3, 3)
    visible = consume(c, "jobs", 10, FAR)  # neither the held ones nor the delayed ones
    assert [m["body"] for m in visible] == [f"job-{i}" for i in range(3, 8)] + ["batch-a", "b"]
    for m in made["held"]:
        r = c.delete(f"/messages/{m['id']}", params={"reservation_token": m["reservation_token"]})
        assert r.status_code == 200, r.text
    for stale, current in zip(made["stale"], made["current"], strict=True):
        r = c.delete(f"/messages/{stale['id']}", params={"reservation_token": stale["reservation_token"]})
        assert r.status_code == 409, r.text
        r = c.delete(f"/messages/{current['id']}", params={"reservation_token": current["reservation_token"]})
        assert r.status_code == 200, r.text
    assert consume(c, "jobs", 10, FAR) == []  # the delayed ones still are
    assert send(c, "jobs", "new") > made["last"]  # no message id reused
    assert create(c, "new")["id"] > made["temp"]  # nor a queue id


def sqlite_with(tmp_path: Path, broker_factory: type[BrokerProcess], name: str, *queues: str) -> Path:
    """A SQLite database holding these queues, one message each, written by a broker."""
    db = tmp_path / name / "wonderq.db"
    db.parent.mkdir()
    b = broker_factory(db, log_dir=tmp_path).start()
    with httpx.Client(base_url=b.url, timeout=30) as c:
        for q in queues:
            create(c, q)
            send(c, q, f"in {q}")
    b.stop()
    return db


def target_holds(broker_factory: type[BrokerProcess], url: str, tmp_path: Path) -> dict[str, list[str]]:
    """Each queue of the PostgreSQL database with its message bodies, and its count."""
    b = broker_factory(url, log_dir=tmp_path).start()
    with httpx.Client(base_url=b.url, timeout=30) as c:
        queues, messages = snapshot(c)
    b.stop()
    assert all(q["queue_size"] == len(messages[q["name"]]) for q in queues)
    return {name: [m["body"] for m in ms] for name, ms in messages.items()}


def test_non_empty_target_is_refused_without_force(
    broker_factory: type[BrokerProcess], postgres: str, tmp_path: Path
) -> None:
    first = sqlite_with(tmp_path, broker_factory, "first", "a", "b")
    second = sqlite_with(tmp_path, broker_factory, "second", "c")
    target = fresh_database(postgres)
    assert migrate("--from", str(first), "--to", target).returncode == 0  # a bare path is SQLite too

    refused = migrate("--from", f"sqlite:///{second}", "--to", target)

    assert refused.returncode == 1
    assert "already holds 2 queues" in refused.stderr and "--force" in refused.stderr
    assert refused.stdout == ""
    assert target_holds(broker_factory, target, tmp_path) == {"a": ["in a"], "b": ["in b"]}

    forced = migrate("--from", f"sqlite:///{second}", "--to", target, "--force")

    assert forced.returncode == 0, forced.stderr
    assert SUMMARY.match(forced.stdout.strip()), forced.stdout
    assert target_holds(broker_factory, target, tmp_path) == {"c": ["in c"]}


@pytest.mark.parametrize(
    ("source", "target", "code", "message"),
    [
        ("postgresql://u:secret@h/db", "{pg}", 2, "only SQLite -> PostgreSQL"),
        ("{db}", "sqlite:///other.db", 2, "only SQLite -> PostgreSQL"),
        ("{db}", "mysql://u:secret@h/db", 2, "--to must be a PostgreSQL URL"),
        ("{db}", "postgresql://u:secret@127.0.0.1:port/db", 2, "--to is not a valid URL"),
        ("{db}", "postgresql://u:se%40cret@[::1/db", 2, "--to is not a valid URL: Invalid IPv6 URL"),
        ("{tmp}/missing.db", "{pg}", 2, "no SQLite database at"),
        ("{tmp}/junk.db", "{pg}", 1, "cannot read"),
        ("{tmp}/other.db", "{pg}", 1, "is not a WonderQ database"),
        ("{db}", "postgresql://u:secret@127.0.0.1:{free}/db", 3, "cannot connect to PostgreSQL"),
        ("{db}", "{server}/no_such_database", 2, "does not exist"),
    ],
)
def test_bad_arguments_fail_clearly(
    broker_factory: type[BrokerProcess], postgres: str, tmp_path: Path,
    source: str, target: str, code: int, message: str,
) -> None:
    db = sqlite_with(tmp_path, broker_factory, "src", "a")
    (tmp_path / "junk.db").write_bytes(b"not a database, just text " * 100)
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    values = {"db": f"sqlite:///{db}", "tmp": str(tmp_path), "pg": fresh_database(postgres),
              "server": postgres.rsplit("/", 1)[0], "free": str(free_port())}

    result = migrate("--from", source.format(**values), "--to", target.format(**values))

    assert result.returncode == code, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "secret" not in result.stderr


def test_missing_arguments_are_usage_errors() -> None:
    result = migrate("--from", "sqlite:///wonderq.db")
    assert result.returncode == 2
    assert "--to" in result.stderr


def test_counts_are_rebuilt_from_a_file_without_counters(
    broker_factory: type[BrokerProcess], postgres: str, tmp_path: Path
) -> None:
    db = sqlite_with(tmp_path, broker_factory, "old", "a", "b")
    with sqlite3.connect(db) as conn:  # as a file of schema version 1 has it
        conn.execute("DROP TABLE IF EXISTS queue_counts")
        conn.execute("PRAGMA user_version = 1")
    target = fresh_database(postgres)

    assert migrate("--from", f"sqlite:///{db}", "--to", target).returncode == 0
    assert target_holds(broker_factory, target, tmp_path) == {"a": ["in a"], "b": ["in b"]}


def test_fifo_dedup_ids_survive_the_move(broker_factory: type[BrokerProcess], postgres: str, tmp_path: Path) -> None:
    """A FIFO message sent before the migration is still a duplicate after it."""
    db = tmp_path / "fifo.db"
    headers = {"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": "application/x-amz-json-1.0"}
    send_once = {"QueueUrl": "http://localhost/000000000000/orders.fifo", "MessageBody": "x",
                 "MessageGroupId": "g", "MessageDeduplicationId": "once"}
    source = broker_factory(db, log_dir=tmp_path).start()
    with httpx.Client(base_url=source.url, timeout=30) as c:
        create(c, "orders.fifo")
        first = c.post("/", json=send_once, headers=headers).json()["MessageId"]
        (m,) = consume(c, "orders.fifo", 1, FAR)
        assert c.delete(f"/messages/{m['id']}").status_code == 200
    source.stop()
    target = fresh_database(postgres)
    assert migrate("--from", f"sqlite:///{db}", "--to", target).returncode == 0
    with httpx.Client(base_url=broker_factory(target, log_dir=tmp_path).start().url, timeout=30) as c:
        assert c.post("/", json=send_once, headers=headers).json()["MessageId"] == first
        assert consume(c, "orders.fifo", 1, 0) == []


def test_api_keys_survive_the_move(broker_factory: type[BrokerProcess], postgres: str, tmp_path: Path) -> None:
    """A token made on SQLite works on PostgreSQL after the move; a revoked one stays revoked."""
    db = tmp_path / "keys.db"
    tokens = {}
    for scope in ("admin", "read"):
        made = wq(None, "keys", "create", "--db", str(db), "--scope", scope)
        assert made.returncode == 0, made.stderr
        tokens[scope] = made.stdout.strip()
    assert wq(None, "keys", "revoke", tokens["read"], "--db", str(db)).returncode == 0
    target = fresh_database(postgres)
    moved = migrate("--from", f"sqlite:///{db}", "--to", target)
    assert moved.returncode == 0, moved.stderr
    broker = broker_factory(target, log_dir=tmp_path).start()
    for scope, status in (("admin", 200), ("read", 401)):
        r = httpx.get(broker.url + "/queues", headers={"Authorization": f"Bearer {tokens[scope]}"})
        assert r.status_code == status, (scope, r.text)
