"""Storage backends, chosen by the database URL's scheme and imported only when chosen::

    sqlite:///relative/path.db, sqlite:////absolute/path.db   -> backends.sqlite
    postgresql://user:password@host/db (or postgres://)       -> backends.postgres

Each backend implements :class:`~wonderq.backends.base.Backend`, whose docstrings
are the contract; the rules both share are in :mod:`~wonderq.backends.rules`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderq.clock import Clock

if TYPE_CHECKING:
    from wonderq.backends.base import Backend
    from wonderq.settings import Settings


class BadDatabaseUrl(ValueError):
    """A database URL no backend can use: an unknown scheme, or one its driver cannot parse."""


def backend_for(settings: Settings, clock: Clock | None = None) -> Backend:
    """The backend for ``settings.db`` (not opened yet); import only the one chosen."""
    url, clock = settings.db, clock or Clock()
    if url.startswith("sqlite://"):
        from wonderq.backends.sqlite import SqliteBackend

        return SqliteBackend(sqlite_path(url), settings, clock)
    if url.startswith(("postgresql://", "postgres://")):
        from wonderq.backends.postgres import PostgresBackend

        return PostgresBackend(url, settings, clock)
    raise BadDatabaseUrl(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://…")


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    path = url.removeprefix("sqlite://")
    return path[1:] if path.startswith("/") else path
