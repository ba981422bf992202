"""docs/sqs.md's compatibility table is current: it lists every action of the
SQS API, each passing over both protocols (``make sqs-table`` remakes it)."""

from __future__ import annotations

from pathlib import Path

from tools.sqs_table import actions

DOC = Path(__file__).resolve().parents[3] / "docs" / "sqs.md"


def test_the_table_lists_every_action_passing() -> None:
    assert len(actions()) == 23
    rows = [line.split("|")[1:-1] for line in DOC.read_text().splitlines() if line.startswith("| ")][1:]
    table = {cells[0].strip(): (cells[1].strip(), cells[2].strip()) for cells in rows}
    assert set(table) == set(actions()), "docs/sqs.md is stale: run make sqs-table"
    assert all(marks == ("✅", "✅") for marks in table.values()), table
