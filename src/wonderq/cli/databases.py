"""The databases the CLI names and opens (``broker``, ``keys``, ``migrate``, ``backup``):
a URL said without its password, and how a database that cannot be used exits."""

from __future__ import annotations

import re
import sqlite3

from wonderq.cli.output import REFUSED, UNREACHABLE, USAGE

DB_FLAG = "--db or WONDERQ_DB"
PASSWORD_PARAMETER = re.compile(r"([?&][^=&#]*password=)[^&#]*", re.IGNORECASE)  # ?password=, &sslpassword=


def redact(url: str) -> str:
    """The URL without its passwords (the user info's, a ``…password=`` parameter's); a SQLite
    URL as its path. Never raises: a URL that cannot be parsed loses everything between the
    first ``:`` after its user name and its last ``@``."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    scheme, sep, rest = url.partition("://")
    user_info, at, after = rest.rpartition("@")  # the last @: a password may hold one unescaped
    if sep and at and ":" in user_info:
        url = f"{scheme}://{user_info.partition(':')[0]}:***@{after}"
    return PASSWORD_PARAMETER.sub(r"\1***", url)


def unsupported(exc: ValueError, url: str) -> str:
    """The backends' refusal of a URL's scheme, which quotes the URL, with its password hidden."""
    return str(exc).replace(url, redact(url)) if url else str(exc)


def invalid_url(exc: ValueError, source: str = DB_FLAG) -> str:
    """A database URL its backend could not parse (a port that is no number, say): usage."""
    return f"{source} is not a valid URL: {exc}"


def database_errors() -> tuple[type[Exception], ...]:
    """What opening a database raises when it is missing, unreadable or unreachable."""
    errors: tuple[type[Exception], ...] = (OSError, TimeoutError, sqlite3.Error)
    try:
        import asyncpg
    except ImportError:
        return errors
    return (*errors, asyncpg.PostgresError, asyncpg.InterfaceError)


def failure_status(exc: BaseException, url: str) -> int:
    """The exit status of the database at ``url`` that could not be used: unreachable if its
    server did not answer, usage if it says the database named does not exist, else refused."""
    if url.startswith("sqlite:"):
        return REFUSED
    if isinstance(exc, OSError | TimeoutError):
        return UNREACHABLE
    try:
        import asyncpg
    except ImportError:
        return REFUSED
    return USAGE if isinstance(exc, asyncpg.InvalidCatalogNameError) else REFUSED
