"""The logs a service writes: what matters, one format, no line per request unless
asked (``--access-log``), and a summary of activity once a minute when something
changed state or failed."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.test_client_verbs import wait_for
from tests.conftest import free_port
from wonderq.edge.logs import Activity

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ broker\[\d+\] (INFO|WARNING|ERROR) \S")


def test_summary_only_when_something_changed_or_failed() -> None:
    activity = Activity()
    for _ in range(60):
        activity.count("GET /queues", 200, changes_state=False)  # a dashboard polling an idle broker
    assert activity.summary() is None
    for _ in range(3):
        activity.count("POST /messages", 200, changes_state=True)
    activity.count("GET /messages/consume", 503, changes_state=False)
    line = activity.summary()
    assert line is not None and line.startswith("4 requests in the last 0 s (POST /messages 3,"), line
    assert line.endswith("; 1 failed with 5xx"), line
    assert activity.summary() is None  # each summary covers the time since the last


async def test_report_logs_the_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    activity = Activity()
    activity.count("DELETE /messages/{message}", 200, changes_state=True)
    task = asyncio.create_task(activity.report(logging.getLogger("wonderq.edge"), interval=0.01))
    await asyncio.sleep(0.1)
    task.cancel()
    assert [r.getMessage() for r in caplog.records if "in the last" in r.getMessage()] == [
        "1 request in the last 0 s (DELETE /messages/{message} 1); 0 failed with 5xx"]


@pytest.mark.parametrize("access_log", [False, True])
def test_a_broker_logs_start_stop_and_requests_only_if_asked(tmp_path: Path, access_log: bool) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERQ_")}
    flags = ["--access-log"] if access_log else []
    with (tmp_path / "err").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "wonderq", "broker", "--port", str(port),
                                 "--db", str(tmp_path / "w.db"), *flags], stderr=err, env=env)
    try:
        wait_for(lambda: "listening on" in (tmp_path / "err").read_text())
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            for _ in range(20):
                c.get("/queues").raise_for_status()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    lines = (tmp_path / "err").read_text().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    assert lines[0].endswith(f"INFO listening on http://127.0.0.1:{port}"), lines
    assert lines[-1].endswith("INFO stopped"), lines
    access = [line for line in lines if '"GET /queues HTTP/1.1" 200' in line]
    assert len(access) == (20 if access_log else 0), lines
    assert len(lines) == len(access) + 2, lines


def test_asyncpg_retries_are_one_line_each_unless_debugging() -> None:
    """A PostgreSQL outage: asyncpg's pool logs a traceback a retry; outside debug, a line each."""
    import io
    import logging

    from wonderq.edge.logs import configure_logging

    configure_logging("broker", "info")
    out = io.StringIO()
    logging.getLogger().handlers[0].setStream(out)  # type: ignore[attr-defined]
    try:
        raise ConnectionRefusedError(111, "Connect call failed")
    except ConnectionRefusedError:
        logging.getLogger("asyncpg.pool").warning("Failed to restore the pool connection floor; %s", "retrying",
                                                  exc_info=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "retrying: ConnectionRefusedError(111, 'Connect call failed')" in lines[0], lines


def test_the_access_log_leaves_secrets_out_of_query_strings(caplog: pytest.LogCaptureFixture) -> None:
    """A presigned URL's signature is a credential for up to 7 days; a login's key, a token or a
    body has no place in a log either."""
    from wonderq.edge.logs import log_request
    from wonderq.edge.requests import Request

    async def never() -> dict[str, object]:
        raise AssertionError

    query = (b"Action=SendMessage&MessageBody=secret&X-Amz-Credential=AKID%2F20261207&X-Amz-Signature=abc"
             b"&size=3&Entry.1.ReceiptHandle=h&key=wq_1&reservation_token=t&queue_name=jobs&Message%42ody=x")
    caplog.set_level("INFO", "wonderq.access")
    log_request(("127.0.0.1", 5555), Request("GET", "/", query, [], b"", never, {}), "1.1", 200)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == ('127.0.0.1:5555 - "GET /?Action=SendMessage&MessageBody=…&X-Amz-Credential=…'
                    '&X-Amz-Signature=…&size=3&Entry.1.ReceiptHandle=…&key=…&reservation_token=…&queue_name=jobs'
                    '&Message%42ody=…'
                    ' HTTP/1.1" 200')
