"""What the CLI prints and how it exits: exit statuses, errors on stderr,
tables, ages and JSON, for every verb alike."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wonderq.settings import Settings, variable

Run = Callable[[argparse.Namespace, Settings], int]  # a verb: exit status

OK, REFUSED, USAGE, UNREACHABLE, EMPTY, CANNOT_START, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
FAILED = REFUSED  # a server's status when it failed while running
EXIT_CODES = (  # one table for every verb
    (OK, "ok (a server stopped by Ctrl-C; one stopped by SIGTERM shuts down cleanly, then ends by that"
         " signal, as a service manager expects: 143 in a shell; up exits 0)"),
    (REFUSED, "the broker said no (its error code and message on stderr), or the database did"
              " (keys, migrate, backup); a server failed while running"),
    (USAGE, "bad usage: a flag, an argument, a WONDERQ_* variable, a malformed URL, a database"
            " or directory named that does not exist"),
    (UNREACHABLE, "broker unreachable (client verbs), or not ready (ready); PostgreSQL unreachable (keys,"
                  " migrate)"),
    (EMPTY, "receive found no message"),
    (CANNOT_START, "a server could not start: its port is in use, its database cannot be opened"),
    (INTERRUPTED, "interrupted by Ctrl-C (but tail, and a server, stop with 0; a server still starting"
                  " exits 130)"),
)
WIDTH = 92  # of the epilogs' lines
EXIT_STATUS = "exit status:\n" + "\n".join(
    textwrap.fill(what, WIDTH, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7) for code, what in EXIT_CODES
)
VERB_EPILOG = EXIT_STATUS  # finish() puts the verb's variables before it
TOP_EPILOG = (
    "environment: a setting's flag can also be set by its WONDERQ_* variable (a flag wins);\n"
    "  `wonderq VERB --help` tells a verb's flags and lists their variables.\n\n"
    f"{EXIT_STATUS}"
)
TALKS_TO_THE_BROKER = (
    "  and, with no flag, WONDERQ_API_KEY (the key sent to the broker) and WONDERQ_CA_FILE\n"
    "  (the CA certificates trusted for an https:// broker)"
)


class Formatter(argparse.HelpFormatter):
    """Descriptions wrapped as usual; a text with line breaks (the epilogs' tables) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    """``wonderq``'s parsers: every one with :class:`Formatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)


if TYPE_CHECKING:
    Verbs = argparse._SubParsersAction[Parser]


def finish(parser: argparse.ArgumentParser) -> None:
    """Once every flag is added, for ``parser`` and each verb under it: the flags that set a
    setting, kept (``flag_names``) for :meth:`Settings.load` to name a bad value's flag, and
    listed with their variables before the epilog (so the list is true by construction)."""
    flags = setting_flags(parser)
    parser.set_defaults(flag_names=flags)
    if flags:
        parser.epilog = f"{environment(flags)}\n\n{parser.epilog}" if parser.epilog else environment(flags)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb in action.choices.values():
                finish(verb)


def setting_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting a flag of ``parser`` sets, and that flag (``url``: ``--broker-url``)."""
    names = {f.name for f in fields(Settings)}
    return {a.dest: a.option_strings[0] for a in parser._actions if a.dest in names and a.option_strings}


def environment(flags: dict[str, str]) -> str:
    """The variable of each flag, in lines of at most :data:`WIDTH` characters."""
    lines = ["environment: each of these flags can be set by its variable instead (a flag wins):"]
    line = " "
    for field, flag in flags.items():
        pair = f" {flag} {variable(field)},"
        if len(line) + len(pair) > WIDTH:
            lines.append(line)
            line = " "
        line += pair
    lines.append(line.rstrip(","))
    return "\n".join([*lines, TALKS_TO_THE_BROKER] if "url" in flags else lines)


def bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (else exit 2, from the parser)."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}-{high}, not {value}")
        return value

    integer.__name__ = "integer"
    return integer


class UsageError(Exception):
    """Bad input the parser could not see (exit 2)."""


def complain(what: object, status: int, exc: BaseException | None = None) -> int:
    """``wonderq: <what>`` and the exception's notes on stderr; returns ``status``."""
    notes = getattr(exc if exc is not None else what, "__notes__", ())
    sys.stdout.flush()  # what was printed comes first
    print(f"wonderq: {what}", *notes, sep="\n", file=sys.stderr)
    return status




def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def age(seconds: float | None) -> str:
    """``12.5s``, ``3m07s``, ``2h05m``, ``4d03h``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], left: Sequence[str] = ("name",)) -> None:
    """A plain-text table: columns two spaces apart, right-aligned except those named in ``left``."""
    cells = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(
            c.ljust(w) if h in left else c.rjust(w) for c, w, h in zip(row, widths, headers, strict=True)
        ).rstrip())


def to_json(value: Any) -> Any:
    """Dataclasses as objects, datetimes as ISO 8601 in UTC."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if hasattr(value, "__dataclass_fields__"):
        return to_json(asdict(value))
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def print_json(value: Any, indent: int | None = 2) -> None:
    print(json.dumps(to_json(value), indent=indent, ensure_ascii=False), flush=True)
