"""The SQLite backend: :mod:`.backend` (writer thread, group commit, checkpoints),
:mod:`.queries` (its statements), :mod:`.schema` (tables and upgrades) and
:mod:`.wakeups` (wake-ups between processes sharing the file)."""

from wonderq.backends.sqlite.backend import SqliteBackend

__all__ = ["SqliteBackend"]
