"""The ``wonderq`` command."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from wonderq import commands
from wonderq.settings import DURABILITY, LOG_LEVELS, Settings


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="wonderq", description="A durable SQS-style message queue.")
    verbs = top.add_subparsers(dest="verb", required=True)
    broker = verbs.add_parser("broker", help="run the broker (port 3213)")
    broker.add_argument("--host", help="address to bind (WONDERQ_HOST, default 127.0.0.1)")
    broker.add_argument("--port", type=int, help="port (WONDERQ_PORT, default 3213)")
    broker.add_argument("--db", help="database path or URL (WONDERQ_DB, default ./wonderq.db)")
    broker.add_argument(
        "--cluster", type=int, nargs="?", const=os.cpu_count() or 1,
        help="run N worker processes on the port (WONDERQ_CLUSTER; N defaults to the CPU count)",
    )
    broker.add_argument(
        "--durability", choices=DURABILITY, help="full (fsync each commit; default) or normal"
    )
    broker.add_argument("--log-level", choices=LOG_LEVELS, help="default info")
    broker.add_argument(
        "--pool-size", type=int, help="PostgreSQL connections per process (WONDERQ_POOL_SIZE, default 10)"
    )
    add_migrate(verbs)
    commands.register(verbs)
    top.epilog = commands.TOP_EPILOG
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.verb == "migrate":
        return run_migrate(args)
    if args.verb in commands.VERBS:
        return commands.run(args)
    try:
        settings = Settings.load(vars(args))
    except ValueError as exc:
        print(f"wonderq: {exc}", file=sys.stderr)
        return 2
    if args.verb == "broker":
        from wonderq.broker import Broker
        from wonderq.server import configure_logging, serve

        configure_logging(settings)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once it has shut down
            serve(lambda: Broker(settings), settings, settings.port)
    return 0


def add_migrate(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = verbs.add_parser(
        "migrate", help="copy queues and messages from SQLite to PostgreSQL",
        description="Copy every queue and message (ids, bodies, visibility state, reservation tokens)"
        " from a SQLite database to PostgreSQL, in one transaction. Stop the brokers on the SQLite"
        " file first: it is only read. Exit status: 0 done, 1 refused or failed, 2 usage.",
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="URL",
                         help="the SQLite database: sqlite:///path/wonderq.db (or a path)")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL",
                         help="the PostgreSQL database: postgresql://user:password@host/db")
    migrate.add_argument("--force", action="store_true",
                         help="if the target already holds queues or messages, DELETE them all first"
                         " (without it such a target is refused and left unchanged)")


def run_migrate(args: argparse.Namespace) -> int:
    from wonderq.migrate import run

    return run(args.source, args.target, args.force)
