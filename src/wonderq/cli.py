"""The ``wonderq`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

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
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.load(vars(args))
    except ValueError as exc:
        print(f"wonderq: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.verb == "broker":
        from wonderq.broker import Broker
        from wonderq.server import serve

        serve(lambda: Broker(settings), settings, settings.port)
    return 0
