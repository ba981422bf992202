"""Write docs/sqs.md's compatibility table from what the SQS tests did.

Runs tests/broker/sqs (botocore in-process, both protocols, both backends)
with every call recorded, then marks an action as working over a protocol
when the tests called it over that protocol and got a 200, and all the tests
(on both backends) passed. Run with ``make sqs-table``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wonderq.backends import backend_for  # noqa: E402
from wonderq.broker.caps import InFlightCap  # noqa: E402
from wonderq.broker.moves import MoveTasks  # noqa: E402
from wonderq.broker.sqs import SqsApi  # noqa: E402
from wonderq.clock import Clock  # noqa: E402
from wonderq.settings import Settings  # noqa: E402

NOTES = {
    "CreateQueue": "idempotent for the same attributes, else QueueNameExists; `tags` on create",
    "ListQueues": "QueueNamePrefix, MaxResults, NextToken",
    "GetQueueAttributes": "every documented attribute, Approximate* counts included",
    "SetQueueAttributes": "at once on every broker sharing the database",
    "PurgeQueue": "one purge a minute per queue and broker, else PurgeQueueInProgress (403)",
    "SendMessage": "message and system attributes, MD5 digests, FIFO dedup",
    "SendMessageBatch": "per-entry failures; empty, >10, duplicate ids, >1 MiB fail the request",
    "ReceiveMessage": "long polling, attribute selection (All, .*, prefix.*), FIFO group order",
    "DeleteMessage": "a stale receipt handle fails; deleting twice succeeds",
    "ChangeMessageVisibility": "a stale receipt handle fails",
    "AddPermission": "kept as the queue's Policy; not enforced",
    "RemovePermission": "kept as the queue's Policy; not enforced",
    "StartMessageMoveTask": "back to each message's source, or to a destination; rate limit",
    "ListMessageMoveTasks": "tasks of the broker that runs them",
    "CancelMessageMoveTask": "tasks of the broker that runs them",
}


def record() -> tuple[int, list[tuple[str, str, int]]]:
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, WONDERQ_SQS_RECORD=folder)
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "tests/broker/sqs",
                               "--ignore", "tests/broker/sqs/test_table.py"],
                              cwd=ROOT, env=env, check=False)
        calls = [tuple(c) for f in Path(folder).glob("*.json") for c in json.loads(f.read_text())]
    return done.returncode, calls  # type: ignore[return-value]


def actions() -> list[str]:
    """The SQS API's action table (a backend is made, never opened)."""
    settings = Settings(db=str(Path(tempfile.gettempdir()) / "unused.db"))
    db = backend_for(settings, Clock())
    return sorted(SqsApi(db, settings, Clock(), MoveTasks(db, Clock()), InFlightCap(db, 1, Clock())).actions)


def table(passed: bool, calls: list[tuple[str, str, int]]) -> str:
    ok: dict[tuple[str, str], bool] = defaultdict(bool)
    for action, protocol, status in calls:
        ok[action, protocol] |= status == 200
    rows = ["| Action | JSON | Query | Notes |", "|---|---|---|---|"]
    for action in actions():
        marks = ["✅" if passed and ok[action, p] else "❌" for p in ("json", "query")]
        rows.append(f"| {action} | {marks[0]} | {marks[1]} | {NOTES.get(action, '')} |")
    return "\n".join(rows)


def main() -> int:
    returncode, calls = record()
    doc = ROOT / "docs" / "sqs.md"
    head, marker, _ = doc.read_text().partition("<!-- table -->")
    _, end, tail = _.partition("<!-- /table -->")
    doc.write_text(f"{head}{marker}\n{table(returncode == 0, calls)}\n{end}{tail}")
    print(f"docs/sqs.md: {len(actions())} actions, tests {'passed' if returncode == 0 else 'FAILED'}")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
