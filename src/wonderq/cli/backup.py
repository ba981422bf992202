"""``wonderq backup DEST``: an online copy of a live SQLite database.

A WAL database is three files that change under a running broker, so copying
``wonderq.db`` by hand can produce a torn copy. This uses SQLite's backup API
instead: the whole database is copied in one step inside one read transaction,
which sees one consistent snapshot (every commit before it, none after) and does
not block the broker's writer. The copy is written next to DEST, checked with
``PRAGMA integrity_check``, made a single self-contained file (``journal_mode =
DELETE``) and only then renamed to DEST, so DEST is never half written; like the
broker's own database it is readable by its owner only (it holds every message and
the API keys' hashes). An
existing DEST is refused unless ``--force``. PostgreSQL is backed up with its own
tools (``pg_dump``), so a ``postgresql://`` source is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from wonderq.backends import sqlite_path
from wonderq.cli.output import OK, REFUSED, VERB_EPILOG, UsageError, complain, plural
from wonderq.settings import Settings

if TYPE_CHECKING:
    from wonderq.cli.output import Verbs

BUSY_TIMEOUT_MS = 5000  # waiting for the broker's checkpointer, at worst


def register(verbs: Verbs) -> None:
    p = verbs.add_parser(
        "backup", help="copy a live SQLite database safely (SQLite's online backup)",
        description="Copy the broker's SQLite database to DEST while the broker runs: one consistent"
        " snapshot, checked, written atomically. PostgreSQL: use pg_dump.", epilog=VERB_EPILOG,
    )
    p.add_argument("dest", metavar="DEST", help="the file to write (a path)")
    p.add_argument("--db", help="the database to copy (WONDERQ_DB, default ./wonderq.db)")
    p.add_argument("--force", action="store_true", help="replace DEST if it exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.db.startswith("sqlite:"):
        raise UsageError("backup copies SQLite databases; back up PostgreSQL with pg_dump")
    source, dest = Path(sqlite_path(settings.db)), Path(args.dest).absolute()
    if not source.is_file():
        raise UsageError(f"no database at {source} (--db or WONDERQ_DB)")
    if dest.exists() and not args.force:
        raise UsageError(f"{dest} exists; pass --force to replace it")
    if dest.resolve() == source.resolve():
        raise UsageError("DEST is the database itself")
    if not dest.parent.is_dir():
        raise UsageError(f"cannot write {dest}: no directory {dest.parent}")
    try:
        queues, messages = backup(source, dest)
    except Unwritable as exc:
        return complain(f"cannot write {dest}: {exc.__cause__}", REFUSED)
    except sqlite3.Error as exc:
        return complain(f"backup of {source} to {dest} failed: {exc}", REFUSED)
    size = dest.stat().st_size / 2**20
    print(f"backed up {source} to {args.dest}: {plural(queues, 'queue')},"
          f" {plural(messages, 'message')}, {size:.1f} MiB")
    return OK


class Unwritable(Exception):
    """DEST's directory refused the copy (its ``__cause__`` says why): not the database's fault."""


def backup(source: Path, dest: Path) -> tuple[int, int]:
    """Copy ``source`` to ``dest`` through a temporary file; return its queue and message counts."""
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        partial.unlink(missing_ok=True)
        os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))  # as private as the broker's
        copy_file = sqlite3.connect(partial)
    except (OSError, sqlite3.Error) as exc:
        raise Unwritable from exc
    try:
        with contextlib.closing(copy_file) as copy, \
                contextlib.closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)) as src:
            src.backup(copy)  # pages=-1: all of it in one step, one snapshot
            copy.execute("PRAGMA journal_mode = DELETE")
            (check,) = copy.execute("PRAGMA integrity_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its integrity check: {check}")
            (queues,) = copy.execute("SELECT count(*) FROM queues").fetchone()
            (messages,) = copy.execute("SELECT count(*) FROM messages").fetchone()
        try:
            os.replace(partial, dest)
        except OSError as exc:
            raise Unwritable from exc
    finally:
        partial.unlink(missing_ok=True)
    return int(queues), int(messages)
