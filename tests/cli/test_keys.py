"""``wonderq keys`` on the database directly: the token printed once, a list that
never shows a secret, revocation; and a real broker that takes a key made so and,
within about a second, stops taking it once revoked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.test_client_verbs import wq
from tests.conftest import BrokerProcess, free_port
from wonderq.broker.keys import SHOWN_ONCE
from wonderq.cli.databases import redact


def create(db: str, *args: str) -> str:
    r = wq(None, "keys", "create", "--db", db, *args)
    assert r.returncode == 0, r.stderr
    assert SHOWN_ONCE in r.stderr
    (token,) = r.stdout.split()  # the token alone on stdout: $(wonderq keys create …) is it
    return token


def test_create_says_which_database_and_that_it_made_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key made in the wrong directory protects nothing: stderr says where it went."""
    monkeypatch.chdir(tmp_path)
    r = wq(None, "keys", "create", "--scope", "admin")
    key = r.stdout.split("_")[1]
    assert (r.returncode, r.stderr) == (0, f"created key {key} (admin on every queue) in a new database at"
                                           f" {tmp_path / 'wonderq.db'}; {SHOWN_ONCE}\n")
    r = wq(None, "keys", "create", "--scope", "read", "--queues", "a")
    assert f"(read on a) in the database {tmp_path / 'wonderq.db'}; " in r.stderr
    r = wq(None, "keys", "create", "--scope", "read", WONDERQ_DB=str(tmp_path / "no" / "w.db"))
    assert (r.returncode, r.stdout) == (2, "") and "no directory" in r.stderr and not (tmp_path / "no").exists()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_create_names_a_postgresql_database_without_its_password(db_url: str) -> None:
    r = wq(None, "keys", "create", "--scope", "admin", WONDERQ_DB=db_url)
    assert r.returncode == 0 and f" in the database {redact(db_url)}; " in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("db", "status", "said"),
    [
        ("postgresql://u:se%40cret@[::1/db", 2, "wonderq: --db is not a valid URL: Invalid IPv6 URL\n"),
        ("postgresql://u:secret@127.0.0.1:port/db", 2,
         "wonderq: --db or WONDERQ_DB is not a valid URL: invalid literal for int() with base 10: 'port'\n"),
        ("mysql://u:secret@db/w", 2, "wonderq: unsupported database URL 'mysql://u:***@db/w': use sqlite:///path"
         " or postgresql://…\n"),
        ("postgresql://u:secret@127.0.0.1:{free}/db", 3, "wonderq: cannot use the database postgresql://u:***@"),
    ],
)
def test_a_database_it_cannot_use_is_one_line_with_its_status(db: str, status: int, said: str) -> None:
    r = wq(None, "keys", "list", "--db", db.format(free=free_port()))
    assert r.returncode == status and r.stderr.startswith(said) and r.stderr.count("\n") == 1, r
    assert "secret" not in r.stderr


def test_create_list_revoke(db_url: str) -> None:
    token = create(db_url, "--scope", "write", "--queues", "orders-*, audit", "--name", "ci")
    assert token.startswith("wq_")
    key_id = token.split("_")[1]
    r = wq(None, "keys", "list", "--json", WONDERQ_DB=db_url)
    (listed,) = json.loads(r.stdout)
    assert listed["id"] == key_id and listed["revoked_at"] is None
    assert (listed["name"], listed["scope"], listed["queues"]) == ("ci", "write", ["orders-*", "audit"])
    assert token.split("_", 2)[2] not in r.stdout
    r = wq(None, "keys", "revoke", key_id, "--db", db_url)
    assert r.returncode == 0 and r.stdout.startswith(f"revoked key {key_id} (write on orders-*, audit) at "), r
    table = wq(None, "keys", "list", "--db", db_url).stdout.splitlines()
    assert table[0].split() == ["id", "name", "scope", "queues", "created", "revoked"]
    assert table[1].startswith(f"{key_id}  ci") and not table[1].endswith("-")  # revoked: a time


def test_what_it_refuses(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    r = wq(None, "keys", "list", "--db", db)
    assert (r.returncode, r.stderr) == (2, f"wonderq: no database at {db} (--db or WONDERQ_DB)\n")
    r = wq(None, "keys", "create", "--db", db, "--scope", "write", "--queues", "a*b")
    assert r.returncode == 2 and "a queue pattern is a name, or a prefix ending in *" in r.stderr
    assert wq(None, "keys", "create", "--db", db, "--scope", "root").returncode == 2  # argparse
    create(db, "--scope", "read")
    r = wq(None, "keys", "revoke", "0123456789abcdef", "--db", db)
    assert (r.returncode, r.stderr) == (1, "wonderq: no key '0123456789abcdef'\n")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_running_broker_takes_a_key_and_drops_it_when_revoked(db_url: str, tmp_path: Path) -> None:
    db = db_url.removeprefix("sqlite:///")
    token = create(db, "--scope", "admin")
    create(db, "--scope", "read")  # still a key after the revoke: auth stays on (no key at all is open on loopback)
    broker = BrokerProcess(Path(db)).start()
    try:
        assert httpx.get(broker.url + "/queues").status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(broker.url + "/queues", headers=auth).status_code == 200
        assert wq(None, "keys", "revoke", token, "--db", db).returncode == 0  # a whole token names its key
        deadline = time.monotonic() + 30  # the ring reloads about once a second
        while httpx.get(broker.url + "/queues", headers=auth).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.1)
        assert httpx.get(broker.url + "/queues", headers=auth).status_code == 401
    finally:
        broker.stop()


def test_a_reader_that_leaves_early_is_no_database_error(tmp_path: Path) -> None:
    """`keys list --json | head -1`: the closed pipe was told as "cannot use the database"."""
    import os
    import subprocess
    import sys

    db = str(tmp_path / "w.db")
    create(db, "--scope", "read")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left before anything is written
    try:
        done = subprocess.run([sys.executable, "-m", "wonderq", "keys", "list", "--json", "--db", db],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and done.stderr == "", done.stderr
