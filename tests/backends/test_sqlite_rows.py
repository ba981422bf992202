"""SQLite builds a Message from a row's values in order (queries.messages), because
sqlite3.Row looks a column up by name at a cost that grows with its position. That holds
only while every statement that returns messages names Message's fields, in order."""

from __future__ import annotations

import sqlite3

import pytest

from wonderq.backends.sqlite import queries, reads, schema
from wonderq.models import Message

STATEMENTS = [queries.CLAIM, queries.FIFO_CLAIM, queries.CHANGE_VISIBILITY, reads.PEEK]
PARAMS = {"queue": 1, "now": 0, "size": 1, "until": 0, "prefix": "p-"}


@pytest.fixture
def conn() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    schema.upgrade(conn)
    return conn


@pytest.mark.parametrize("statement", STATEMENTS)
def test_statements_that_return_messages_name_its_fields_in_order(conn: sqlite3.Connection, statement: str) -> None:
    cursor = conn.execute(statement, PARAMS if ":" in statement else (1, 0, 1, None)[:statement.count("?")])
    assert tuple(d[0] for d in cursor.description) == Message.FIELDS


def test_a_row_by_position_is_the_row_by_name(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO messages (queue_id, uuid, body, created_at, visible_at, group_id)"
                 " VALUES (1, 'u', 'b', 1, 2, 'g')")
    row = conn.execute(reads.PEEK, (1, 0, 1, 1024)).fetchone()
    assert queries.messages(conn.execute(reads.PEEK, (1, 0, 1, 1024))) == [Message.from_row(row)]
