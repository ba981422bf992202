"""The PostgreSQL backend's API key statements (the contract is in ``Backend``'s docstrings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wonderq.backends.postgres.queues import NOW, Txn
from wonderq.errors import Conflict, NotFound
from wonderq.models import ApiKey

if TYPE_CHECKING:
    import asyncpg

KEY_COLUMNS = "id, name, scope, queues, secret_hash, created_at, revoked_at"
INSERT_KEY = f"""
INSERT INTO wonderq.keys (id, name, scope, queues, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, {NOW})
ON CONFLICT (id) DO NOTHING
RETURNING {KEY_COLUMNS}
"""


async def create_key(txn: Txn, key_id: str, name: str, scope: str, queues: Sequence[str],
                     secret_hash: str) -> ApiKey:
    row = await txn.conn.fetchrow(INSERT_KEY, key_id, name, scope, ",".join(queues), secret_hash)
    if row is None:
        raise Conflict(f"a key with id {key_id!r} exists already")
    return ApiKey.from_row(row)


LIST_KEYS = f"SELECT {KEY_COLUMNS} FROM wonderq.keys ORDER BY created_at, id"
LIST_ACTIVE_KEYS = f"SELECT {KEY_COLUMNS} FROM wonderq.keys WHERE revoked_at IS NULL ORDER BY created_at, id"


async def list_keys(conn: asyncpg.Connection, active_only: bool) -> list[ApiKey]:
    return [ApiKey.from_row(row) for row in await conn.fetch(LIST_ACTIVE_KEYS if active_only else LIST_KEYS)]


REVOKE_KEY = f"""
UPDATE wonderq.keys SET revoked_at = coalesce(revoked_at, {NOW}) WHERE id = $1
RETURNING {KEY_COLUMNS}
"""


async def revoke_key(txn: Txn, key_id: str) -> ApiKey:
    row = await txn.conn.fetchrow(REVOKE_KEY, key_id)
    if row is None:
        raise NotFound(f"no key {key_id!r}")
    return ApiKey.from_row(row)
