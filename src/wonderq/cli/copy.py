"""``wonderq migrate``: copy a SQLite database's queues and messages into PostgreSQL.

Everything is kept as it is: queues with their ids and attributes; messages with
their ids, UUIDs, bodies, times, visibility state (``visible_at``, ``token``,
``receive_count``), attributes, group and dedup ids; the per-queue counters; the
REST API's keys (their hashes, so every token keeps working). So
delayed messages stay delayed, and a consumer holding a message can still
delete it with its reservation token after the switch.

Run it while no broker writes to the SQLite file. The file is opened read-only
and read in one transaction (one consistent snapshot). The target is written in
one transaction, all or nothing, with its tables locked against brokers
meanwhile; a target that already holds queues or messages is refused unless
``force`` (which empties it first). Afterwards the target's id sequences are
moved past every id the SQLite database ever handed out, so no id is reused.
Times are absolute (epoch ms): the PostgreSQL server's clock is assumed to agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from wonderq.backends import sqlite_path
from wonderq.backends.sqlite.queries import MESSAGE_COLUMNS
from wonderq.backends.sqlite.txn import QUEUE_COLUMNS
from wonderq.cli.databases import failure_status, invalid_url
from wonderq.cli.output import INTERRUPTED, OK, REFUSED, USAGE
from wonderq.settings import database_url

CHUNK = 5000  # rows per COPY
QUEUE_FIELDS = [c.strip() for c in QUEUE_COLUMNS.split(",")]
MESSAGE_FIELDS = [c.split(" AS ")[0].strip() for c in MESSAGE_COLUMNS.split(",")]  # as stored


class MigrateError(Exception):
    """A failure reported in one line; ``code`` is the exit status (the CLI's table)."""

    code = REFUSED

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(MigrateError):
    code = USAGE


def run(source: str, target: str, force: bool = False) -> int:
    """The command: print a one-line summary or error; return the exit status."""
    started = time.monotonic()
    try:
        path = source_path(source, target)
        queues, messages = asyncio.run(copy(open_source(path), target, force))
    except MigrateError as exc:
        print(f"wonderq migrate: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("wonderq migrate: interrupted; nothing was migrated", file=sys.stderr)
        return INTERRUPTED
    print(f"migrated {queues} queues and {messages} messages from {path}"
          f" in {time.monotonic() - started:.1f} s")
    return OK


def source_path(source: str, target: str) -> str:
    """The SQLite file's path, if the direction is SQLite -> PostgreSQL."""
    url = database_url(source)  # a bare path means SQLite, as for the broker
    if not url.startswith("sqlite://"):
        scheme = url.partition("://")[0]  # never echo a URL: it may hold a password
        raise UsageError(f"--from must be a SQLite database (sqlite:///path), not {scheme}:"
                         " only SQLite -> PostgreSQL is supported")
    if not target.startswith(("postgresql://", "postgres://")):
        raise UsageError("--to must be a PostgreSQL URL (postgresql://user@host/db):"
                         " only SQLite -> PostgreSQL is supported")
    return sqlite_path(url)


LIST_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"


def open_source(path: str) -> sqlite3.Connection:
    """Open the file read-only and start the read transaction (the snapshot)."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no SQLite database at {path} (--from)")
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        conn.execute("BEGIN")
        tables = {row[0] for row in conn.execute(LIST_TABLES)}
    except sqlite3.Error as exc:
        raise MigrateError(f"cannot read {path}: {exc}") from exc
    if not {"queues", "messages", "sequence"} <= tables:
        raise MigrateError(f"{path} is not a WonderQ database")
    return conn


async def copy(source: sqlite3.Connection, target: str, force: bool) -> tuple[int, int]:
    """Copy everything in one target transaction; return (queues, messages)."""
    try:
        import asyncpg
    except ImportError:
        raise MigrateError("asyncpg is not installed: pip install 'wonderq[postgres]'") from None
    from wonderq.backends.postgres.schema import upgrade

    conn: Any = None
    try:
        conn = await connect(asyncpg, target)
        await upgrade(conn)
        async with conn.transaction():
            await prepare_target(conn, force)
            queues = await copy_rows(conn, source.execute(READ_QUEUES), "queues", QUEUE_FIELDS)
            messages = await copy_rows(conn, source.execute(READ_MESSAGES), "messages", MESSAGE_FIELDS)
            await copy_counts(conn, source)
            await copy_if_present(conn, source, "dedups", READ_DEDUPS, DEDUP_FIELDS)
            await copy_if_present(conn, source, "keys", READ_KEYS, KEY_FIELDS)
            await advance_sequences(conn, source)
        return queues, messages
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise MigrateError(f"PostgreSQL: {str(exc) or type(exc).__name__}; nothing was migrated") from exc
    except sqlite3.Error as exc:
        raise MigrateError(f"reading SQLite: {exc}; nothing was migrated") from exc
    finally:
        source.close()
        if conn is not None:
            with contextlib.suppress(OSError, TimeoutError, asyncpg.InterfaceError):
                await conn.close(timeout=5)


async def connect(asyncpg: Any, target: str) -> Any:
    try:
        return await asyncpg.connect(target, timeout=10)
    except ValueError as exc:  # a malformed URL (port, options)
        raise UsageError(invalid_url(exc, "--to")) from exc
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        why = str(exc) or type(exc).__name__  # unreachable (3), no such database (2), or refused (1)
        raise MigrateError(f"cannot connect to PostgreSQL: {why}", failure_status(exc, target)) from exc


LOCK_TARGET = "LOCK TABLE wonderq.queues, wonderq.messages IN EXCLUSIVE MODE"
TARGET_HOLDS = "SELECT (SELECT count(*) FROM wonderq.queues), EXISTS (SELECT FROM wonderq.messages)"
EMPTY_TARGET = "TRUNCATE wonderq.queues, wonderq.messages, wonderq.dedups, wonderq.keys"


async def prepare_target(conn: Any, force: bool) -> None:
    """Lock out brokers; refuse a target holding data, or empty it with ``force``."""
    await conn.execute(LOCK_TARGET)
    queues, messages = await conn.fetchrow(TARGET_HOLDS)
    if not (queues or messages):
        return
    if not force:
        raise MigrateError(f"the target already holds {queues} queues and {'some' if messages else 'no'}"
                           " messages; nothing was written (--force deletes them first)")
    await conn.execute(EMPTY_TARGET)


READ_QUEUES = f"SELECT {', '.join(QUEUE_FIELDS)} FROM queues ORDER BY id"
READ_MESSAGES = f"SELECT {', '.join(MESSAGE_FIELDS)} FROM messages ORDER BY id"


async def copy_rows(conn: Any, cursor: sqlite3.Cursor, table: str, fields: list[str]) -> int:
    """COPY what ``cursor`` reads into a table, CHUNK rows at a time; return how many."""
    total = 0
    while rows := cursor.fetchmany(CHUNK):
        await conn.copy_records_to_table(table, schema_name="wonderq", columns=fields, records=rows)
        total += len(rows)
    return total


DEDUP_FIELDS = ["queue_id", "key", "id", "message_id", "expires_at"]
READ_DEDUPS = f"SELECT {', '.join(DEDUP_FIELDS)} FROM dedups"
KEY_FIELDS = ["id", "name", "scope", "queues", "secret_hash", "created_at", "revoked_at"]
READ_KEYS = f"SELECT {', '.join(KEY_FIELDS)} FROM keys ORDER BY created_at, id"
HAS_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"


async def copy_if_present(conn: Any, source: sqlite3.Connection, table: str, read: str, fields: list[str]) -> None:
    """A table that a source of an older schema may lack: FIFO queues' dedup ids still in
    their window (so none is delivered twice across the move), the REST API's keys (revoked
    ones too: the same tokens work after the move)."""
    if source.execute(HAS_TABLE, (table,)).fetchone():
        await copy_rows(conn, source.execute(read), table, fields)


COUNT_FIELDS = ["queue_id", "shard", "messages", "sent", "received", "deleted", "expired"]
READ_COUNTS = f"SELECT {', '.join(COUNT_FIELDS)} FROM queue_counts ORDER BY queue_id, shard"
TARGET_COUNTS = "SELECT to_regclass('wonderq.queue_counts') IS NOT NULL"
EMPTY_COUNTS = "TRUNCATE wonderq.queue_counts"
RECOUNT = """
INSERT INTO wonderq.queue_counts (queue_id, shard, messages)
SELECT queue_id, 0, count(*) FROM wonderq.messages GROUP BY queue_id
"""


async def copy_counts(conn: Any, source: sqlite3.Connection) -> None:
    """The per-queue counters (schema version 2 on): copied if the SQLite file
    keeps them, else the message counts computed afresh."""
    if not await conn.fetchval(TARGET_COUNTS):
        return
    await conn.execute(EMPTY_COUNTS)  # leftovers of deleted queues, or --force's
    if source.execute(HAS_TABLE, ("queue_counts",)).fetchone():
        await copy_rows(conn, source.execute(READ_COUNTS), "queue_counts", COUNT_FIELDS)
    else:
        await conn.execute(RECOUNT)


# The highest ids SQLite ever handed out: deleted rows' ids count too.
LAST_QUEUE_ID = """
SELECT max(coalesce((SELECT max(id) FROM queues), 0),
           coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'queues'), 0))
"""
LAST_MESSAGE_ID = "SELECT max(coalesce((SELECT max(id) FROM messages), 0), next_id - 1) FROM sequence"
# Move an identity sequence to at least $2 (never back): the next id is above both.
ADVANCE_SEQUENCE = """
SELECT setval(seq, greatest($2, last, 1), greatest($2, last) > 0)
FROM (SELECT seq, coalesce(pg_sequence_last_value(seq), 0) AS last
      FROM (SELECT pg_get_serial_sequence($1, 'id')::regclass AS seq) AS s) AS t
"""


async def advance_sequences(conn: Any, source: sqlite3.Connection) -> None:
    for table, sql in (("queues", LAST_QUEUE_ID), ("messages", LAST_MESSAGE_ID)):
        last = source.execute(sql).fetchone()[0] or 0
        await conn.execute(ADVANCE_SEQUENCE, f"wonderq.{table}", last)
