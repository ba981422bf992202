"""``wonderq keys create|list|revoke``: the REST API's keys, straight in the database.

Like ``wonderq backup``, these work on ``--db`` (WONDERQ_DB) with no broker
running, so the first key can be made before authentication is on. A running
broker sees a new or revoked key within about a second (its key ring reloads).
``create`` prints the token alone on stdout (``export WONDERQ_API_KEY=$(wonderq
keys create --scope admin)``) and, on stderr, that it will not be shown again:
only its SHA-256 is stored. It also says there which database it wrote the key to, and that
it made a new one if there was none (a key in the wrong directory protects nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from wonderq.backends import BadDatabaseUrl, backend_for, sqlite_path
from wonderq.backends.base import Backend
from wonderq.broker import keys
from wonderq.broker.access import SCOPES, queue_patterns
from wonderq.cli.databases import DB_FLAG, database_errors, failure_status, invalid_url, redact, unsupported
from wonderq.cli.output import OK, REFUSED, VERB_EPILOG, UsageError, complain, print_json, table
from wonderq.errors import WonderQError
from wonderq.models import ApiKey
from wonderq.settings import Settings

if TYPE_CHECKING:
    from wonderq.cli.output import Verbs

T = TypeVar("T")
MAX_NAME = 80


def register(verbs: Verbs) -> None:
    p = verbs.add_parser(
        "keys", help="create, list and revoke the REST API's keys (in the database)",
        description="Manage API keys in the database directly (--db or WONDERQ_DB); no broker needed."
        " A running broker sees changes within about a second.", epilog=VERB_EPILOG,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a key and print its token once", epilog=VERB_EPILOG)
    create.add_argument("--scope", required=True, choices=SCOPES,
                        help="read (list, peek), write (also send, receive, delete), admin (also queue changes)")
    create.add_argument("--queues", metavar="Q,Q", default="",
                        help="limit it to these queues: names or prefixes ending in * (default: every queue)")
    create.add_argument("--name", default="", help="a note of whose key it is")
    listing = actions.add_parser("list", help="every key, revoked ones too (never a secret)", epilog=VERB_EPILOG)
    listing.add_argument("--json", action="store_true", help="as JSON")
    revoke = actions.add_parser("revoke", help="revoke a key (a running broker stops taking it within ~1 s)",
                                epilog=VERB_EPILOG)
    revoke.add_argument("id", metavar="ID", help="the key's id (wq_<id>_…)")
    for sub in (create, listing, revoke):
        sub.add_argument("--db", help="database path or URL (WONDERQ_DB, default ./wonderq.db)")
        sub.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    action: Callable[[Backend], Awaitable[int]]
    if args.action == "create":
        action = creator(args, where(settings))
    else:
        if settings.db.startswith("sqlite:") and not Path(sqlite_path(settings.db)).is_file():
            raise UsageError(f"no database at {sqlite_path(settings.db)} ({DB_FLAG})")
        action = list_keys(args.json) if args.action == "list" else revoker(args.id)
    try:
        db = backend_for(settings)
    except BadDatabaseUrl as exc:  # a scheme no backend has
        raise UsageError(unsupported(exc, settings.db)) from None
    try:
        return asyncio.run(on_database(db, action))
    except WonderQError as exc:
        return complain(exc.message, REFUSED)
    except BrokenPipeError:  # stdout's reader left (`keys list | head -1`): main() says nothing
        raise
    except database_errors() as exc:  # the database could not be opened or reached
        return complain(f"cannot use the database {redact(settings.db)}: {exc}", failure_status(exc, settings.db))


def where(settings: Settings) -> str:
    """Where ``create`` writes the key, to say so: a new SQLite database is made if none is there
    (the first key may come before the broker ever starts), but not in a missing directory."""
    if not settings.db.startswith("sqlite:"):
        return f"the database {redact(settings.db)}"
    path = Path(sqlite_path(settings.db))
    if path.is_file():
        return f"the database {path}"
    if not path.parent.is_dir():
        raise UsageError(f"no directory {path.parent} for the database {path} ({DB_FLAG})")
    return f"a new database at {path}"


async def on_database(db: Backend, action: Callable[[Backend], Awaitable[T]]) -> T:
    try:
        await db.open()
    except BadDatabaseUrl as exc:  # a URL the backend cannot parse
        raise UsageError(invalid_url(exc)) from exc
    try:
        return await action(db)
    finally:
        await db.close()


def creator(args: argparse.Namespace, where: str) -> Callable[[Backend], Awaitable[int]]:
    try:
        queues = queue_patterns(args.queues)
    except ValueError as exc:
        raise UsageError(f"--queues: {exc}") from None
    if len(args.name) > MAX_NAME or not args.name.isprintable():
        raise UsageError(f"--name must be up to {MAX_NAME} printable characters")

    async def create(db: Backend) -> int:
        key, token = await keys.create(db, args.scope, queues, args.name)
        print(token, flush=True)
        print(f"created key {key.id} ({describe(key)}) in {where}; {keys.SHOWN_ONCE}", file=sys.stderr)
        return OK

    return create


def describe(key: ApiKey) -> str:
    return f"{key.scope} on {', '.join(key.queues) if key.queues else 'every queue'}"


def instant(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def when(ms: int | None) -> str:
    moment = instant(ms)
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def list_keys(as_json: bool) -> Callable[[Backend], Awaitable[int]]:
    async def show(db: Backend) -> int:
        found = await db.list_keys()
        if as_json:
            print_json([{"id": k.id, "name": k.name, "scope": k.scope, "queues": list(k.queues),
                         "created_at": instant(k.created_at), "revoked_at": instant(k.revoked_at)} for k in found])
            return OK
        table(("id", "name", "scope", "queues", "created", "revoked"),
              ((k.id, k.name or "-", k.scope, ",".join(k.queues) or "*", when(k.created_at), when(k.revoked_at))
               for k in found), left=("id", "name", "scope", "queues", "created", "revoked"))
        return OK

    return show


def revoker(key_id: str) -> Callable[[Backend], Awaitable[int]]:
    key_id = key_id.removeprefix(keys.PREFIX).split("_")[0]  # a whole token names its key too

    async def revoke(db: Backend) -> int:
        key = await db.revoke_key(key_id)
        print(f"revoked key {key.id} ({describe(key)}) at {when(key.revoked_at)}")
        return OK

    return revoke
