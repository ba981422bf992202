"""The SQLite backend's API key statements (the contract is in ``Backend``'s docstrings)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from wonderq.backends.sqlite.txn import Txn
from wonderq.errors import Conflict, NotFound
from wonderq.models import ApiKey

KEY_COLUMNS = "id, name, scope, queues, secret_hash, created_at, revoked_at"
INSERT_KEY = f"""
INSERT INTO keys (id, name, scope, queues, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING
RETURNING {KEY_COLUMNS}
"""


def create_key(txn: Txn, key_id: str, name: str, scope: str, queues: Sequence[str], secret_hash: str) -> ApiKey:
    row = txn.conn.execute(INSERT_KEY, (key_id, name, scope, ",".join(queues), secret_hash, txn.now)).fetchone()
    if row is None:
        raise Conflict(f"a key with id {key_id!r} exists already")
    return ApiKey.from_row(row)


LIST_KEYS = f"SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at, id"
LIST_ACTIVE_KEYS = f"SELECT {KEY_COLUMNS} FROM keys WHERE revoked_at IS NULL ORDER BY created_at, id"


def list_keys(conn: sqlite3.Connection, active_only: bool) -> list[ApiKey]:
    return [ApiKey.from_row(row) for row in conn.execute(LIST_ACTIVE_KEYS if active_only else LIST_KEYS)]


REVOKE_KEY = f"UPDATE keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? RETURNING {KEY_COLUMNS}"


def revoke_key(txn: Txn, key_id: str) -> ApiKey:
    row = txn.conn.execute(REVOKE_KEY, (txn.now, key_id)).fetchone()
    if row is None:
        raise NotFound(f"no key {key_id!r}")
    return ApiKey.from_row(row)
