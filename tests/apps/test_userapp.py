"""The user app over real HTTP: ``UserApp`` served in a subprocess against a real broker
(each backend), so its stdout, where listeners print ``Processing message: ...``, can be read.

One broker and one user app serve the module (per backend); every test uses its own
uniquely named queues and stops the listeners it started.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, FORM_AUTH, BrokerProcess, free_port, fresh_database, terminate
from wonderq import AsyncClient, Client
from wonderq.apps.userapp import MAX_LISTENERS, Listener, ListenParams

SERVE = """
import logging, sys
from wonderq.edge.server import serve
from wonderq.settings import Settings
from wonderq.apps.userapp import create_app
logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel("WARNING")
settings = Settings(url=sys.argv[1], user_port=int(sys.argv[2]), log_level="warning")
serve(lambda: create_app(settings), settings, settings.user_port)
"""


class UserAppProcess:
    """The user app in a subprocess on a free port; stdout and stderr go to files."""

    def __init__(self, broker_url: str, folder: Path) -> None:
        self.broker_url = broker_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = folder / f"userapp.{self.port}.out"
        self.err = folder / f"userapp.{self.port}.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> UserAppProcess:
        cmd = [sys.executable, "-c", SERVE, self.broker_url, str(self.port)]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"user app exited: {self.err.read_text()}")
            try:
                if httpx.get(self.url + "/listeners", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"user app did not start: {self.err.read_text()}")

    def stop(self) -> bool:
        """SIGTERM; whether the app then ended by itself, as uvicorn ends after a graceful
        shutdown: by re-raising the signal, so the status is -SIGTERM (or 0)."""
        assert self.proc is not None
        return terminate(self.proc, 15) and self.proc.returncode in (0, -signal.SIGTERM)

    def stdout(self, since: int = 0) -> list[str]:
        """Its stdout's lines, from line ``since`` on."""
        return self.out.read_text().splitlines()[since:]

    def stderr(self) -> str:
        return self.err.read_text()


def until(condition: Callable[[], Any], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for a condition"
        time.sleep(0.02)


def unique(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    """Overrides conftest's per-test broker with one per module and backend, with its
    access log on, so a test can see the requests the user app made."""
    folder = tmp_path_factory.mktemp("broker")
    if request.param == "sqlite":
        db: Path | str = folder / "wonderq.db"
    else:
        db = fresh_database(request.getfixturevalue("postgres"))
    b = BrokerProcess(db, "--log-level", "info", "--access-log", log_dir=folder).start()
    yield b
    b.stop()
    assert "Traceback" not in b.log.read_text()


@pytest.fixture(scope="module")
def userapp(broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserAppProcess]:
    app = UserAppProcess(broker.url, tmp_path_factory.mktemp("userapp")).start()
    yield app
    assert app.stop()
    assert "Traceback" not in app.stderr(), app.stderr()


@pytest.fixture
def app(userapp: UserAppProcess) -> Iterator[httpx.Client]:
    """A client of the module's user app; the test's listeners are stopped after it."""
    with httpx.Client(base_url=userapp.url, timeout=15) as c:
        yield c
        for entry in c.get("/listeners").json():
            assert c.delete(f"/listeners/{entry['id']}").status_code == 200


@pytest.fixture
def wq(broker: BrokerProcess) -> Iterator[Client]:
    with Client(broker.url) as c:
        yield c


def count(wq: Client, queue: str) -> int:
    return next(s.messages for s in wq.stats() if s.queue.name == queue)


def listener(app: httpx.Client, listener_id: int) -> dict[str, Any]:
    found = [entry for entry in app.get("/listeners").json() if entry["id"] == listener_id]
    assert len(found) == 1
    return found[0]


def start_listener(app: httpx.Client, **params: Any) -> int:
    """GET /listen, read its first line, hang up; the listener's id."""
    with app.stream("GET", "/listen", params=params) as r:
        assert r.status_code == 200, r.read()
        first = next(r.iter_lines())
    assert first.startswith("listener ") and first.endswith(f" on queue {params['queue_name']}")
    return int(first.split()[1])


# -- dispatch --


def test_dispatch_creates_the_queue_and_sends_the_body(app: httpx.Client, wq: Client) -> None:
    queue = unique()
    r = app.post("/dispatch", json={"queue_name": queue, "body": "hello"})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["created"] == 1 and result["failed"] == []
    [sent] = result["messages"]
    [message] = wq.peek(queue)
    assert (message.id, message.body) == (sent["id"], "hello")

    # The queue exists now: by form, by query string and by id, it is reused.
    assert app.post("/dispatch", data={"queue_name": queue, "body": "form"}, headers=FORM_AUTH).json()["created"] == 1
    assert app.post("/dispatch", params={"queue_name": queue, "body": "query"}).json()["created"] == 1
    queue_id = wq.get_queue(queue).id
    assert app.post("/dispatch", json={"queue_id": queue_id, "body": "by id"}).json()["created"] == 1
    assert [m.body for m in wq.peek(queue)] == ["hello", "form", "query", "by id"]


def test_a_body_wins_over_stub(app: httpx.Client, wq: Client) -> None:
    queue = unique()
    r = app.post("/dispatch", json={"queue_name": queue, "body": "only me", "stub": 5})
    assert r.json()["created"] == 1
    assert [m.body for m in wq.peek(queue)] == ["only me"]


def test_stub_sends_that_many_generated_messages(app: httpx.Client, wq: Client) -> None:
    one, many = unique(), unique()
    r = app.post("/dispatch", data={"queue_name": one}, headers=FORM_AUTH)
    assert r.json()["created"] == 1  # stub defaults to 1
    assert [m.body for m in wq.peek(one)] == ["stub message 1 of 1"]

    result = app.post("/dispatch", json={"queue_name": many, "stub": 253}).json()
    assert (result["created"], result["failed"]) == (253, [])
    ids = [m["id"] for m in result["messages"]]
    assert len(set(ids)) == 253
    assert count(wq, many) == 253
    peeked = wq.peek(many, size=1000)
    assert {m.id for m in peeked} == set(ids)
    by_id = {m.id: m.body for m in peeked}
    assert [by_id[i] for i in ids] == [f"stub message {n} of 253" for n in range(1, 254)]  # in order


def test_failures_are_reported_and_the_others_created(app: httpx.Client, wq: Client) -> None:
    queue = unique()
    wq.create_queue(queue, max_message_size=1024)
    too_big = "x" * 1025
    bodies = [f"ok {i}" for i in range(15)]
    bodies[3] = too_big  # in the first batch of 10, which the broker refuses as a whole
    result = app.post("/dispatch", json={"queue_name": queue, "body": bodies}).json()
    assert result["created"] == 14
    [failed] = result["failed"]
    assert failed["body"] == too_big and failed["code"] == "payload_too_large"
    assert "1024 bytes" in failed["reason"]
    assert sorted(m.body for m in wq.peek(queue, size=100)) == sorted(b for b in bodies if b != too_big)


def test_dispatch_errors(app: httpx.Client, wq: Client) -> None:
    queue = unique()
    for params, status, code in [
        ({"body": "x"}, 400, "invalid_parameter"),  # no queue
        ({"queue_name": "bad name!", "body": "x"}, 400, "invalid_parameter"),
        ({"queue_name": queue, "stub": 0}, 400, "invalid_parameter"),
        ({"queue_name": queue, "stub": 1_000_001}, 400, "invalid_parameter"),
        ({"queue_name": queue, "stub": "many"}, 400, "invalid_parameter"),
        ({"queue_name": queue, "body": ["a", ""]}, 400, "invalid_parameter"),
        ({"queue_name": queue, "body": {"a": 1}}, 400, "invalid_parameter"),
        ({"queue_id": 2**40, "body": "x"}, 404, "queue_not_found"),  # by id the queue must exist
        ({"queue_name": queue, "body": "x", "stubs": 3}, 400, "invalid_parameter"),  # misspelt: refused
        ({"queue_name": queue, "queue_id": 1, "body": "x"}, 400, "invalid_parameter"),  # two queues
    ]:
        r = app.post("/dispatch", json=params)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (params, r.text)
    r = app.post("/dispatch", json={"queue_name": queue, "bdy": "x"})
    assert "unknown parameter 'bdy' (did you mean 'body'?)" in r.json()["error"]["message"], r.text
    r = app.post("/dispatch", content=b"{nope", headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "bad_request")
    assert queue not in [s.queue.name for s in wq.stats()]  # nothing created


# -- listen --


def test_listen_prints_deletes_and_streams_a_line_per_message(
    app: httpx.Client, userapp: UserAppProcess, wq: Client
) -> None:
    queue, since = unique(), len(userapp.stdout())
    app.post("/dispatch", json={"queue_name": queue, "body": ["a", "b", "c"]})
    with app.stream("GET", "/listen", params={"queue_name": queue, "size": 3}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        lines = r.iter_lines()
        first = next(lines)
        listener_id = int(first.split()[1])
        assert first == f"listener {listener_id} on queue {queue}"
        got = [next(lines) for _ in range(3)]
        assert [line.split(": ", 1)[1] for line in got] == ['"a"', '"b"', '"c"']
        assert all(line.startswith("processed message ") for line in got)

        app.post("/dispatch", json={"queue_name": queue, "body": "d\nmore"})  # while streaming
        assert next(lines).endswith(': "d\\nmore"')  # one line, however many the body has

    assert userapp.stdout(since) == [
        "Processing message: a", "Processing message: b", "Processing message: c",
        "Processing message: d", "more",
    ]
    assert count(wq, queue) == 0  # deleted
    state = listener(app, listener_id)
    # size=3 reached the broker: the three waiting messages came in one receive.
    assert (state["receives"], state["received"], state["processed"]) == (2, 4, 4)
    assert state["params"] == {"size": 3, "wait_time": 20, "visibility_timeout": None}


def test_listen_passes_its_parameters_to_the_broker(
    app: httpx.Client, broker: BrokerProcess
) -> None:
    queue = unique()
    app.post("/dispatch", json={"queue_name": queue, "stub": 2})
    listener_id = start_listener(app, queue_name=queue, size=7, wait_time=3, visibility_timeout=45)
    until(lambda: listener(app, listener_id)["processed"] == 2)
    wanted = f"GET /messages/consume?queue_name={queue}&size=7&wait_time=3&visibility_timeout=45 "
    until(lambda: wanted in broker.log.read_text())


def test_the_listener_keeps_consuming_after_the_stream_closes(
    app: httpx.Client, userapp: UserAppProcess, wq: Client
) -> None:
    queue, since = unique(), len(userapp.stdout())
    wq.create_queue(queue)
    listener_id = start_listener(app, queue_name=queue, size=10)
    until(lambda: listener(app, listener_id)["streams"] == 0)  # the app saw the hang-up
    app.post("/dispatch", json={"queue_name": queue, "stub": 3})
    until(lambda: len(userapp.stdout(since)) == 3)
    assert userapp.stdout(since) == [f"Processing message: stub message {i} of 3" for i in range(1, 4)]
    until(lambda: listener(app, listener_id)["processed"] == 3)
    assert listener(app, listener_id)["state"] == "running"
    assert count(wq, queue) == 0


def test_listeners_are_capped_and_never_starve_dispatch(app: httpx.Client, wq: Client) -> None:
    """Each listener long-polls on a pool of its own; past the cap a /listen is a 429."""
    queue = unique()
    wq.create_queue(queue)
    for _ in range(MAX_LISTENERS):
        start_listener(app, queue_name=queue, wait_time=20)
    r = app.get("/listen", params={"queue_name": queue})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests"
    other = unique()
    r = app.post("/dispatch", json={"queue_name": other, "stub": 25})  # while 64 long polls hold connections
    assert r.status_code == 200 and r.json()["created"] == 25
    assert count(wq, other) == 25


def test_listeners_that_ended_do_not_count_against_the_cap(app: httpx.Client, wq: Client) -> None:
    queue = unique()
    wq.create_queue(queue)
    ids = [start_listener(app, queue_name=queue, wait_time=20) for _ in range(MAX_LISTENERS)]
    wq.delete_queue(queue)  # each fails
    until(lambda: all(entry["state"] == "failed" for entry in app.get("/listeners").json()), timeout=30)
    other = unique()
    wq.create_queue(other)
    assert start_listener(app, queue_name=other) > max(ids)


def test_listen_errors(app: httpx.Client, wq: Client) -> None:
    queue = unique()
    wq.create_queue(queue)
    for params, status, code in [
        ({}, 400, "invalid_parameter"),
        ({"queue_name": queue, "size": 0}, 400, "invalid_parameter"),
        ({"queue_name": queue, "size": 11}, 400, "invalid_parameter"),
        ({"queue_name": queue, "wait_time": 21}, 400, "invalid_parameter"),
        ({"queue_name": queue, "visibility_timeout": -1}, 400, "invalid_parameter"),
        ({"queue_name": queue, "visibility_timeout": "soon"}, 400, "invalid_parameter"),
        ({"queue_name": unique()}, 404, "queue_not_found"),
        ({"queue_id": 2**40}, 404, "queue_not_found"),
    ]:
        r = app.get("/listen", params=params)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (params, r.text)
    assert app.get("/listeners").json() == []


# -- listeners --


def test_list_and_stop_listeners(app: httpx.Client, wq: Client) -> None:
    a, b = unique(), unique()
    wq.create_queue(a)
    wq.create_queue(b)
    first = start_listener(app, queue_name=a, wait_time=5, visibility_timeout=60)
    second = start_listener(app, queue_name=b)
    listed = app.get("/listeners").json()
    assert [entry["id"] for entry in listed] == [first, second]
    entry = listed[0]
    assert (entry["queue"], entry["state"], entry["processed"]) == (a, "running", 0)
    assert entry["params"] == {"size": 1, "wait_time": 5, "visibility_timeout": 60}
    assert entry["started_at"].endswith("Z")

    r = app.delete(f"/listeners/{first}")
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True and r.json()["listener"]["state"] == "stopped"
    assert [entry["id"] for entry in app.get("/listeners").json()] == [second]
    # The stopped listener's long poll ends once the broker sees its connection close. A message
    # sent in that instant can still be claimed by it (and comes back after the visibility timeout):
    # on PostgreSQL, where a send and a claim can share one transaction, about one run in five.
    time.sleep(0.3)
    wq.send(a, "nobody listens")
    time.sleep(0.5)
    [stats] = [s for s in wq.stats() if s.queue.name == a]
    assert (stats.messages, stats.visible) == (1, 1)  # the stopped listener took nothing

    r = app.delete(f"/listeners/{first}")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    assert app.delete("/listeners/abc").status_code == 400


def test_stopping_a_listener_ends_its_stream(app: httpx.Client, wq: Client) -> None:
    queue = unique()
    wq.create_queue(queue)
    with app.stream("GET", "/listen", params={"queue_name": queue}) as r:
        lines = r.iter_lines()
        listener_id = int(next(lines).split()[1])
        with httpx.Client(base_url=app.base_url, timeout=15) as other:
            assert other.delete(f"/listeners/{listener_id}").status_code == 200
        assert list(lines) == [f"listener {listener_id} stopped"]


def test_a_listener_whose_queue_is_deleted_fails(app: httpx.Client, wq: Client) -> None:
    queue = unique()
    wq.create_queue(queue)
    with app.stream("GET", "/listen", params={"queue_name": queue, "wait_time": 1}) as r:
        lines = r.iter_lines()
        listener_id = int(next(lines).split()[1])
        wq.delete_queue(queue)
        [last] = list(lines)
    assert last.startswith(f"listener {listener_id} failed: ") and queue in last
    state = listener(app, listener_id)
    assert state["state"] == "failed" and queue in state["error"]


def test_shutdown_stops_the_listeners(broker: BrokerProcess, wq: Client, tmp_path: Path) -> None:
    queue = unique()
    wq.create_queue(queue)
    userapp = UserAppProcess(broker.url, tmp_path).start()
    with httpx.Client(base_url=userapp.url, timeout=15) as app:
        first = start_listener(app, queue_name=queue)
        second = start_listener(app, queue_name=queue)
        until(lambda: all(entry["streams"] == 0 for entry in app.get("/listeners").json()))
    started = time.monotonic()
    assert userapp.stop()
    assert time.monotonic() - started < 5  # the long polls were abandoned, not waited out
    assert f"listener {first} stopped" in userapp.stderr()
    assert f"listener {second} stopped" in userapp.stderr()
    assert "Traceback" not in userapp.stderr()
    wq.send(queue, "after")
    time.sleep(0.5)
    [stats] = [s for s in wq.stats() if s.queue.name == queue]
    assert (stats.messages, stats.visible, stats.in_flight) == (1, 1, 0)  # nothing claimed it


async def test_a_stopped_listener_releases_what_it_has_not_processed(broker: BrokerProcess) -> None:
    """In process: a stop that lands between a receive and the processing of its messages
    (too narrow a window to hit over HTTP) hands them back at once."""
    async with AsyncClient(broker.url) as client:
        queue = await client.create_queue(unique())
        await client.send_batch(queue.name, ["a", "b", "c"])
        stopped = Listener(1, client, queue, queue.name, ListenParams(3, 1, None))
        await stopped.stop()
        held = await client.receive(queue.name, size=3, wait=1, visibility_timeout=600)
        assert len(held) == 3
        await stopped._process_all(held)
        [stats] = [s for s in await client.stats() if s.queue.id == queue.id]
        assert (stats.visible, stats.in_flight, stopped.processed) == (3, 0, 0)


# -- no broker --


def test_an_unreachable_broker_is_a_503(tmp_path: Path) -> None:
    userapp = UserAppProcess(f"http://127.0.0.1:{free_port()}", tmp_path).start()
    try:
        with httpx.Client(base_url=userapp.url, timeout=15) as app:
            for r in (app.post("/dispatch", json={"queue_name": "q"}), app.get("/listen?queue_name=q")):
                assert r.status_code == 503
                error = r.json()["error"]
                assert error["code"] == "broker_unreachable"
                assert "cannot connect to the WonderQ broker" in error["message"]
    finally:
        assert userapp.stop()
