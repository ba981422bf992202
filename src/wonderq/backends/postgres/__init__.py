"""The PostgreSQL backend: :mod:`.backend` (pool, batches, LISTEN/NOTIFY, vacuum),
:mod:`.queries` (its statements) and :mod:`.schema` (tables and upgrades)."""

from wonderq.backends.postgres.backend import PostgresBackend

__all__ = ["PostgresBackend"]
