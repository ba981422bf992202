"""The ``wonderq`` client verbs against a real broker on each backend (one per module;
every test uses its own queues). Each verb runs in this process through ``wonderq.cli.main``
with its own stdin, stdout, stderr and environment; where a real process is the point
(signals, raw bytes on stdin, a file as stdin) it runs as ``python -m wonderq``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BrokerProcess, free_port
from wonderq import Client
from wonderq.cli import main
from wonderq.cli.client_verbs import send_lines
from wonderq.cli.output import UsageError


def wq(url: str | None, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """``wonderq *args`` with WONDERQ_URL set to ``url``, as its exit status and output."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: v for k, v in saved.items() if not k.startswith("WONDERQ_")} | env)
    if url is not None:
        os.environ["WONDERQ_URL"] = url
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO((stdin or "").encode()), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: usage errors and --help
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = old_stdin
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["wonderq", *args], code, out.getvalue(), err.getvalue())


def unique(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def url(module_broker: BrokerProcess) -> str:
    return module_broker.url


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client(url) as c:
        yield c


def row(output: str, name: str) -> list[str]:
    """The cells of a table's row for ``name`` (names have no spaces)."""
    for line in output.splitlines():
        cells = line.split()
        if name in cells:
            return cells
    raise AssertionError(f"no row for {name} in:\n{output}")


def bodies(client: Client, queue: str) -> list[str]:
    return [m.body for m in client.peek(queue, size=1000)]


# -- queues --


def test_create_human_and_json(url: str, client: Client) -> None:
    dlq, name = unique("dlq"), unique()
    r = wq(url, "create", dlq)
    assert r.returncode == 0 and r.stdout.startswith(f"created queue {dlq} (id "), r
    r = wq(url, "create", name, "--visibility-timeout", "60", "--delay", "5", "--retention", "3600",
           "--max-message-size", "2048", "--redrive-target", dlq, "--max-receive-count", "3")
    assert r.returncode == 0, r.stderr
    assert f"dead letters to {dlq} after 3 receives" in r.stdout
    q = client.get_queue(name)
    assert (q.visibility_timeout, q.delay_seconds, q.retention_seconds) == (60, 5, 3600)
    assert (q.max_message_size, q.redrive_target, q.max_receive_count) == (2048, dlq, 3)

    other = unique()
    r = wq(url, "create", other, "--json", "--visibility-timeout", "7")
    data = json.loads(r.stdout)
    assert (data["name"], data["visibility_timeout"], data["id"]) == (other, 7, client.get_queue(other).id)
    assert data["created_at"].endswith("Z")

    r = wq(url, "create", other)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("wonderq: queue_exists: "), r.stderr
    r = wq(url, "create", "12345")
    assert r.returncode == 1 and "wonderq: invalid_parameter: " in r.stderr


def test_queues_human_and_json(url: str, client: Client) -> None:
    name = unique()
    client.create_queue(name)
    client.send_batch(name, ["a", "b", "c"])
    client.send(name, "later", delay_seconds=600)
    client.receive(name, size=1, wait=0)
    q = client.get_queue(name)

    r = wq(url, "queues")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0].split() == ["id", "name", "messages", "visible", "in", "flight",
                                               "delayed", "oldest", "age"]
    cells = row(r.stdout, name)
    assert cells[:6] == [str(q.id), name, "4", "2", "1", "1"] and cells[6].endswith("s")

    r = wq(url, "queues", "--json")
    entry = next(e for e in json.loads(r.stdout) if e["name"] == name)
    assert (entry["id"], entry["messages"], entry["visible"], entry["in_flight"], entry["delayed"]) == (
        q.id, 4, 2, 1, 1)
    assert entry["visibility_timeout"] == 30 and entry["oldest_message_age"] >= 0


def test_stats_one_and_all(url: str, client: Client) -> None:
    name, empty = unique(), unique()
    q = client.create_queue(name)
    client.create_queue(empty)
    client.send_batch(name, ["a", "b"])

    r = wq(url, "stats", name)
    assert r.returncode == 0, r.stderr
    assert row(r.stdout, name)[:5] == [name, "2", "2", "0", "0"]
    assert empty not in r.stdout and "total" not in r.stdout
    r = wq(url, "stats", str(q.id), "--json")  # all digits: an id
    assert {k: v for k, v in json.loads(r.stdout).items() if k != "oldest_message_age"} == {
        "id": q.id, "name": name, "messages": 2, "visible": 2, "in_flight": 0, "delayed": 0}

    r = wq(url, "stats")
    assert row(r.stdout, name)[:5] == [name, "2", "2", "0", "0"]
    assert row(r.stdout, empty) == [empty, "0", "0", "0", "0", "-"]
    assert int(row(r.stdout, "total")[1]) >= 2
    r = wq(url, "stats", "--json")
    assert {"name": empty, "messages": 0} .items() <= next(
        s for s in json.loads(r.stdout) if s["name"] == empty).items()

    for args in (("stats", "nope"), ("stats", "nope", "--json"), ("purge", "nope"), ("delete-queue", "nope")):
        r = wq(url, *args)
        assert r.returncode == 1 and r.stdout == "", (args, r)
        assert r.stderr == "wonderq: queue_not_found: queue 'nope' does not exist\n", r.stderr


def test_purge_and_delete_queue(url: str, client: Client) -> None:
    name = unique()
    client.create_queue(name)
    client.send_batch(name, ["a", "b", "c"])
    r = wq(url, "purge", name)
    assert (r.returncode, r.stdout) == (0, f"purged 3 messages from {name}\n")
    client.send(name, "d")
    assert json.loads(wq(url, "purge", name, "--json").stdout) == {"queue": name, "purged": 1}
    assert bodies(client, name) == []

    r = wq(url, "delete-queue", name)
    assert (r.returncode, r.stdout) == (0, f"deleted queue {name}\n")
    q = client.create_queue(name)
    r = wq(url, "delete-queue", str(q.id), "--json")
    assert json.loads(r.stdout) == {"queue": q.id, "deleted": True}
    assert name not in [x.name for x in client.list_queues()]


# -- send --


def test_send_bodies_human_and_json(url: str, client: Client) -> None:
    name = unique()
    client.create_queue(name)
    r = wq(url, "send", name, "hello", "two words", "multi\nline")
    assert (r.returncode, r.stdout) == (0, f"sent 3 messages to {name}\n")
    r = wq(url, "send", name, "one")
    assert r.stdout.startswith("sent message ") and r.stdout.endswith(f") to {name}\n")
    data = json.loads(wq(url, "send", name, "x", "y", "--json").stdout)
    assert data["queue"] == name and data["sent"] == 2
    assert [set(m) for m in data["messages"]] == [{"id", "message_id"}] * 2
    assert bodies(client, name) == ["hello", "two words", "multi\nline", "one", "x", "y"]

    small = unique()
    client.create_queue(small, max_message_size=1024)
    r = wq(url, "send", small, "x" * 2000)
    assert r.returncode == 1 and r.stderr.startswith("wonderq: payload_too_large: "), r.stderr


def test_send_stdin_lines(url: str, client: Client, tmp_path: Path) -> None:
    name = unique()
    client.create_queue(name)
    lines = [f"line {i}" for i in range(25)]
    r = wq(url, "send", name, stdin="\n".join(lines) + "\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"sent 25 messages to {name}\n", "")
    assert bodies(client, name) == lines

    r = wq(url, "send", name, "--json", "--progress", stdin="a\r\n\nb")  # CRLF; empty lines skipped
    data = json.loads(r.stdout)
    assert (data["sent"], len(data["messages"])) == (2, 2)
    assert "2 sent, " in r.stderr and "[" not in r.stderr  # the count, not a bar: no size known
    assert bodies(client, name)[25:] == ["a", "b"]

    assert wq(url, "send", name, stdin="").stdout == f"sent 0 messages to {name}\n"
    r = wq(url, "send", unique(), stdin="a\nb\n")
    assert r.returncode == 1 and r.stderr.startswith("wonderq: queue_not_found: ")
    assert "0 messages had been sent" in r.stderr
    raw = subprocess.run([sys.executable, "-m", "wonderq", "send", name], input=b"a\n\xff\n", timeout=60,
                         capture_output=True, env=os.environ | {"WONDERQ_URL": url})
    assert raw.returncode == 2
    assert raw.stderr == b"wonderq: line 2 of stdin is not UTF-8\nwonderq: 0 messages had been sent\n"


def test_send_progress_from_a_file(url: str, client: Client, tmp_path: Path) -> None:
    name = unique()
    client.create_queue(name)
    (tmp_path / "in.txt").write_text("".join(f"{i}\n" for i in range(30)))
    with (tmp_path / "in.txt").open() as f:
        r = subprocess.run([sys.executable, "-m", "wonderq", "send", name, "--progress"], stdin=f,
                           capture_output=True, text=True, env=os.environ | {"WONDERQ_URL": url}, timeout=60)
    assert r.returncode == 0 and r.stdout == f"sent 30 messages to {name}\n"
    assert "[" + "#" * 30 + "] 100%  30 sent" in r.stderr


class Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_at = fail_at

    def send_batch(self, queue: str, batch: list[str]) -> list[int]:
        if len(self.batches) == self.fail_at:
            from wonderq.errors import PayloadTooLarge

            raise PayloadTooLarge("too large")
        self.batches.append(list(batch))
        return list(range(len(batch)))


def test_send_lines_goes_in_batches_of_10() -> None:
    recorder, updates = Recorder(), []
    stdin = io.BytesIO("".join(f"{i}\n" for i in range(25)).encode())
    sent = send_lines(recorder, "q", stdin, lambda n, done: updates.append((n, done)))  # type: ignore[arg-type]
    assert [len(b) for b in recorder.batches] == [10, 10, 5] and len(sent) == 25
    assert [b for batch in recorder.batches for b in batch] == [str(i) for i in range(25)]
    assert updates == [(10, 20), (20, 50), (25, 65)]  # (sent, bytes read)

    with pytest.raises(UsageError) as caught:
        send_lines(Recorder(), "q", io.BytesIO(b"\n".join([b"a"] * 12 + [b"\xff"])), lambda n, d: None)  # type: ignore[arg-type]
    assert caught.value.__notes__ == ["wonderq: 10 messages had been sent"]
    with pytest.raises(Exception, match="too large") as failed:
        send_lines(Recorder(fail_at=1), "q", io.BytesIO(b"a\n" * 30), lambda n, d: None)  # type: ignore[arg-type]
    assert failed.value.__notes__ == ["wonderq: 10 messages had been sent"]


# -- receive and tail --


def test_receive_human_json_and_delete(url: str, client: Client) -> None:
    name = unique()
    client.create_queue(name)
    client.send_batch(name, ["a", "b\nc"])
    r = wq(url, "receive", name, "--size", "10", "--wait", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("message ") == 2 and "\n  a\n" in r.stdout and "\n  b\n  c\n" in r.stdout
    assert r.stdout.count(" token ") == 2 and "received 1x" in r.stdout
    assert row(wq(url, "stats", name).stdout, name)[:4] == [name, "2", "0", "2"]

    other = unique()
    client.create_queue(other)
    client.send_batch(other, ["x", "y", "z"])
    r = wq(url, "receive", other, "--size", "2", "--json", "--delete", "--visibility-timeout", "600")
    got = json.loads(r.stdout)
    assert r.returncode == 0 and [m["body"] for m in got] == ["x", "y"]
    assert all(m["token"] and m["receive_count"] == 1 for m in got)
    assert bodies(client, other) == ["z"]
    r = wq(url, "receive", other, "--delete")
    assert r.returncode == 0 and "\n  z\n" in r.stdout and r.stderr == "wonderq: deleted 1 message\n"
    assert bodies(client, other) == []


def test_receive_nothing_is_4(url: str, client: Client) -> None:
    name = unique()
    client.create_queue(name)
    r = wq(url, "receive", name, "--wait", "0")
    assert (r.returncode, r.stdout, r.stderr) == (4, "", "wonderq: no message\n")
    r = wq(url, "receive", name, "--wait", "0", "--json")
    assert (r.returncode, r.stdout) == (4, "[]\n")
    r = wq(url, "receive", name, "--size", "11")  # refused by the parser, before any request
    assert r.returncode == 2 and "argument --size: must be 1-10, not 11" in r.stderr, r.stderr


class Tail:
    """``wonderq tail`` in a subprocess; its stdout's lines collected by a thread."""

    def __init__(self, url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wonderq", "tail", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=os.environ | {"WONDERQ_URL": url},
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def close(self) -> str:
        """Kill it if still running; its stderr."""
        self.proc.kill()
        self.proc.wait()
        self.reader.join(10)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        with self.proc.stderr:
            return self.proc.stderr.read()


def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["human", "json"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_tail_prints_deletes_and_stops(url: str, client: Client, mode: str, sig: int) -> None:
    name = unique()
    client.create_queue(name)
    client.send_batch(name, ["a", "b"])
    tail = Tail(url, name, *(["--json"] if mode == "json" else []))
    lines = tail.lines
    try:
        wait_for(lambda: len(lines) >= (2 if mode == "json" else 4))
        client.send(name, "c")  # while tail long-polls
        wait_for(lambda: len(lines) >= (3 if mode == "json" else 6))
        wait_for(lambda: bodies(client, name) == [])
        time.sleep(0.2)
        tail.proc.send_signal(sig)
        assert tail.proc.wait(10) == 0
    finally:
        assert tail.close() == ""
    if mode == "json":
        assert [json.loads(line)["body"] for line in lines] == ["a", "b", "c"]
    else:
        assert lines[1::2] == ["  a\n", "  b\n", "  c\n"]
        assert all(x.startswith("message ") for x in lines[::2])


# -- exit codes and help --


def test_unreachable_is_3() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (("queues",), ("send", "q", "x"), ("receive", "q", "--wait", "0")):
        r = wq(dead, *args)
        assert r.returncode == 3 and r.stderr.startswith("wonderq: broker_unreachable: cannot connect"), r
    r = wq(None, "queues", "--broker-url", dead, "--json")
    assert r.returncode == 3 and dead in r.stderr


def test_usage_is_2() -> None:
    for args in (("receive",), ("receive", "q", "--size", "x"), ("frobnicate",), ("create",),
                 ("send", "q", "--nope")):
        r = wq(None, *args)
        assert r.returncode == 2 and "usage: wonderq" in r.stderr, (args, r.stderr)
    r = wq(None, "queues", WONDERQ_PORT="0")
    assert (r.returncode, r.stderr) == (2, "wonderq: WONDERQ_PORT must be 1-65535, not 0\n")


def test_send_needs_only_a_queue() -> None:
    """BODY is optional (none: stdin), so the usage error asks for QUEUE alone."""
    r = wq(None, "send")
    assert r.returncode == 2 and r.stderr.endswith("error: the following arguments are required: QUEUE\n"), r.stderr


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (("--broker-url", "http://[::1"), {}, "--broker-url is not a valid URL: Invalid IPv6 URL"),
        (("--broker-url", "http://127.0.0.1:abc"), {}, "--broker-url is not a valid URL: Port could not be cast"),
        ((), {"WONDERQ_URL": "http://[::1"}, "WONDERQ_URL is not a valid URL: Invalid IPv6 URL"),
        ((), {"WONDERQ_URL": "localhost:3213"}, "WONDERQ_URL must start with http:// or https://"),
    ],
)
def test_a_malformed_broker_url_is_one_line_of_usage(args: tuple[str, ...], env: dict[str, str], said: str) -> None:
    r = wq(None, "queues", *args, **env)
    assert r.returncode == 2 and r.stderr.startswith(f"wonderq: {said}") and r.stderr.count("\n") == 1, r


def test_help_documents_exit_codes() -> None:
    for args in (("--help",), ("receive", "--help"), ("queues", "--help")):
        text = " ".join(wq(None, *args).stdout.split())
        assert "1 the broker said no" in text and "3 broker unreachable" in text
        assert "4 receive found no message" in text and "2 bad usage" in text
        assert "PostgreSQL unreachable (keys, migrate)" in text and "a malformed URL" in text


def test_broker_does_not_load_the_client() -> None:
    code = "import sys, wonderq.cli; wonderq.cli.parser(); assert 'httpx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
