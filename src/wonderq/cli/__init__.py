"""The ``wonderq`` command: one parser, one dispatch.

Its verbs live by kind: :mod:`.client_verbs` (``queues``, ``send``, ``receive``,
… over the Python client), :mod:`.servers` (``broker``, ``dev``, ``user``, ``up``),
:mod:`.copy` (``migrate``: copy a SQLite database into PostgreSQL), :mod:`.backup`
(``backup``: an online copy of a SQLite database), :mod:`.keys` (``keys``: the REST
API's keys, in the database); what they
print and how they exit is :mod:`.output`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from wonderq import __version__
from wonderq.cli import backup, client_verbs, keys, servers
from wonderq.cli.output import (
    INTERRUPTED,
    OK,
    TOP_EPILOG,
    USAGE,
    VERB_EPILOG,
    Parser,
    Run,
    UsageError,
    complain,
    finish,
)
from wonderq.settings import Settings

if TYPE_CHECKING:
    from wonderq.cli.output import Verbs


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="wonderq", description="A durable SQS-style message queue.", epilog=TOP_EPILOG)
    top.add_argument("--version", action="version", version=f"wonderq {__version__}")
    verbs = top.add_subparsers(dest="verb", required=True, parser_class=Parser)
    servers.register(verbs)
    add_copy(verbs)
    backup.register(verbs)
    keys.register(verbs)
    client_verbs.register(verbs)
    finish(top)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.load(vars(args), flag_names=args.flag_names)
    except ValueError as exc:
        return complain(exc, USAGE)
    runner: Run = args.run
    try:
        return runner(args, settings)
    except UsageError as exc:
        return complain(exc, USAGE)
    except KeyboardInterrupt as exc:
        return complain("interrupted", INTERRUPTED, exc)
    except BrokenPipeError:  # stdout's reader left (`wonderq queues | head -1`): that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def add_copy(verbs: Verbs) -> None:
    p = verbs.add_parser(
        "migrate", help="copy queues and messages from SQLite to PostgreSQL",
        description="Copy every queue and message (ids, bodies, visibility state, reservation tokens)"
        " from a SQLite database to PostgreSQL, in one transaction. Stop the brokers on the SQLite"
        " file first: it is only read.", epilog=VERB_EPILOG,
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="the SQLite database: sqlite:///path/wonderq.db (or a path)")
    p.add_argument("--to", dest="target", required=True, metavar="URL",
                   help="the PostgreSQL database: postgresql://user:password@host/db")
    p.add_argument("--force", action="store_true",
                   help="if the target already holds queues or messages, DELETE them all first"
                   " (without it such a target is refused and left unchanged)")
    p.set_defaults(run=copy_to_postgres)


def copy_to_postgres(args: argparse.Namespace, settings: Settings) -> int:
    from wonderq.cli.copy import run

    return run(args.source, args.target, args.force)
