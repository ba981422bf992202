"""The dev tool over real HTTP, in front of a real broker (each backend).

The dev tool runs in this process (uvicorn on a thread, its own event loop);
the broker is the conftest's subprocess."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn

from tests.conftest import FORM_AUTH, BrokerProcess, free_port
from wonderq.apps.devtool import create_app
from wonderq.apps.devtool.sampling import SERIES, History
from wonderq.settings import Settings


class DevToolServer:
    """A :class:`DevTool` served by uvicorn on a thread, on a free port."""

    def __init__(self, broker_url: str, interval: float = 0.2, **settings: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(Settings(url=broker_url, dev_port=self.port, **settings), interval=interval)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning",
            loop="asyncio", ws="none", access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="devtool", daemon=True)

    def __enter__(self) -> DevToolServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dev tool did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def devtool(broker: BrokerProcess) -> Iterator[httpx.Client]:
    """An HTTP client of a dev tool in front of this test's broker."""
    with DevToolServer(broker.url) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
def wq(broker: BrokerProcess) -> Iterator[httpx.Client]:
    """An HTTP client of the broker itself, to set the scene."""
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        yield http


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


def eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


# -- the original's endpoints --


def test_queues_lists_every_queue_with_its_counts(devtool: httpx.Client, wq: httpx.Client) -> None:
    ok(wq.post("/queues", json={"name": "idle"}))
    ok(wq.post("/queues", json={"name": "jobs"}))
    for body in ("a", "b", "c"):
        ok(wq.post("/messages", json={"queue_name": "jobs", "body": body}))
    ok(wq.post("/messages", json={"queue_name": "jobs", "body": "later", "delay_seconds": 300}))
    assert len(ok(wq.get("/messages/consume", params={"queue_name": "jobs", "wait_time": 0}))) == 1

    idle, jobs = ok(devtool.get("/queues"))
    assert [idle["name"], jobs["name"]] == ["idle", "jobs"]
    counts = ("queue_size", "retrievable_size", "in_flight_size", "delayed_size")
    assert [idle[k] for k in counts] == [0, 0, 0, 0]
    assert idle["oldest_message_age"] is None
    assert [jobs[k] for k in counts] == [4, 2, 1, 1]
    assert jobs["oldest_message_age"] >= 0
    assert {"id", "created_at", "visibility_timeout", "max_message_size"} <= jobs.keys()
    broker_view = ok(wq.get("/queues"))
    assert [q.keys() for q in broker_view] == [idle.keys(), jobs.keys()]  # the broker's own fields


def test_queue_shows_messages_by_id_and_name_paged(devtool: httpx.Client, wq: httpx.Client) -> None:
    queue = ok(wq.post("/queues", json={"name": "jobs"}))
    ids = [ok(wq.post("/messages", json={"queue_name": "jobs", "body": f"m{i}"}))["id"] for i in range(12)]
    ok(wq.post("/messages", json={"queue_name": "jobs", "body": "late", "delay_seconds": 300}))
    held = ok(wq.get("/messages/consume", params={"queue_name": "jobs", "wait_time": 0}))[0]

    first = ok(devtool.get("/queues/jobs"))
    assert [m["id"] for m in first] == ids[:10]  # size defaults to 10
    assert first[0]["id"] == held["id"] and first[0]["state"] == "in_flight"
    assert first[0]["reservation_token"] is None  # a peek never shows a token
    assert {m["state"] for m in first[1:]} == {"visible"}
    page = ok(devtool.get(f"/queues/{queue['id']}", params={"size": 3, "after": ids[9]}))
    assert [m["body"] for m in page] == ["m10", "m11", "late"]
    assert page[2]["state"] == "delayed"
    assert ok(devtool.get("/queues/jobs", params={"size": 5, "after": page[-1]["id"]})) == []
    # browsing consumed nothing
    jobs = ok(devtool.get("/queues"))[0]
    assert (jobs["queue_size"], jobs["retrievable_size"], jobs["in_flight_size"]) == (13, 11, 1)


def test_unknown_queues_and_bad_parameters(devtool: httpx.Client, wq: httpx.Client) -> None:
    ok(wq.post("/queues", json={"name": "jobs"}))
    assert error_code(devtool.get("/queues/nope"), 404) == "queue_not_found"
    assert error_code(devtool.get("/queues/999"), 404) == "queue_not_found"
    assert error_code(devtool.get("/queues/jobs", params={"size": 0}), 400) == "invalid_parameter"
    assert error_code(devtool.get("/queues/jobs", params={"after": "x"}), 400) == "invalid_parameter"
    assert error_code(devtool.get("/queues/no%20spaces"), 400) == "invalid_parameter"
    assert error_code(devtool.get("/nothing/here"), 404) == "not_found"
    assert error_code(devtool.post("/queues"), 405) == "method_not_allowed"


def test_an_unknown_parameter_is_refused_as_the_broker_refuses_it(devtool: httpx.Client, wq: httpx.Client) -> None:
    ok(wq.post("/queues", json={"name": "jobs"}))
    r = devtool.get("/queues/jobs", params={"size": 1, "foo": 2})
    assert error_code(r, 400) == "invalid_parameter"
    assert "unknown parameter 'foo' for GET /queues/{queue}: it takes after, size" in r.json()["error"]["message"]
    r = devtool.get("/queues/jobs", params={"sise": 1})
    assert "'sise' (did you mean 'size'?)" in r.json()["error"]["message"]
    for method, path, params in [
        ("GET", "/queues", {"all": 1}), ("GET", "/api/overview", {"windw": 60}),
        ("POST", "/api/queues", {"name": "x", "visiblity_timeout": 5}),
        ("POST", "/api/queues/jobs/messages", {"body": "x", "delay": 5}),
        ("POST", "/api/queues/jobs/purge", {"force": 1}), ("POST", "/api/queues/jobs/move", {"to": "x"}),
        ("DELETE", "/api/queues/jobs", {"force": 1}), ("DELETE", "/api/messages/1", {"reservation_token": "t"}),
    ]:
        json = params if method == "POST" else None
        r = devtool.request(method, path, json=json, params=None if json else params)
        assert error_code(r, 400) == "invalid_parameter", (method, path)
    assert ok(wq.get("/queues/find", params={"name": "jobs"}))["name"] == "jobs"  # nothing was done
    assert [q["name"] for q in ok(wq.get("/queues"))] == ["jobs"]


# -- the dashboard's API --


def test_create_send_purge_and_delete(devtool: httpx.Client, wq: httpx.Client) -> None:
    queue = ok(devtool.post("/api/queues", json={"name": "jobs", "visibility_timeout": 5}))
    assert (queue["name"], queue["visibility_timeout"]) == ("jobs", 5)
    assert error_code(devtool.post("/api/queues", json={"name": "jobs"}), 409) == "queue_exists"
    assert error_code(devtool.post("/api/queues", json={"name": "bad name"}), 400) == "invalid_parameter"
    form = devtool.post("/api/queues", data={"name": "x", "delay_seconds": "901"}, headers=FORM_AUTH)
    assert error_code(form, 400) == "invalid_parameter"

    sent = ok(devtool.post("/api/queues/jobs/messages", json={"body": "hello"}))
    ok(devtool.post(f"/api/queues/{queue['id']}/messages", data={"body": "form", "delay_seconds": ""},
                    headers=FORM_AUTH))
    ok(devtool.post("/api/queues/jobs/messages", json={"body": "later", "delay_seconds": 60}))
    send = "/api/queues/{}/messages".format
    assert error_code(devtool.post(send("jobs"), json={"body": ""}), 400) == "invalid_parameter"
    assert error_code(devtool.post(send("jobs"), json={}), 400) == "invalid_parameter"
    assert error_code(devtool.post(send("nope"), json={"body": "x"}), 404) == "queue_not_found"
    counts = ok(wq.get("/queues"))[0]
    assert (counts["queue_size"], counts["retrievable_size"], counts["delayed_size"]) == (3, 2, 1)
    # an action refreshes the dashboard's counts at once, not at the next sample
    row = ok(devtool.get("/api/overview"))["queues"][0]
    assert (row["name"], row["messages"], row["delayed"]) == ("jobs", 3, 1)

    assert ok(devtool.delete(f"/api/messages/{sent['id']}")) == {"success": True}
    assert error_code(devtool.delete(f"/api/messages/{sent['id']}"), 404) == "message_not_found"
    assert ok(devtool.post("/api/queues/jobs/purge")) == {"success": True, "purged": 2}
    assert ok(devtool.get("/api/overview"))["queues"][0]["messages"] == 0
    assert error_code(devtool.post("/api/queues/nope/purge"), 404) == "queue_not_found"

    assert ok(devtool.delete("/api/queues/jobs")) == {"success": True}
    assert error_code(devtool.delete("/api/queues/jobs"), 404) == "queue_not_found"
    assert ok(devtool.get("/api/overview"))["queues"] == []


def test_delete_message_that_is_in_flight(devtool: httpx.Client, wq: httpx.Client) -> None:
    ok(wq.post("/queues", json={"name": "jobs"}))
    ok(wq.post("/messages", json={"queue_name": "jobs", "body": "held"}))
    held = ok(wq.get("/messages/consume", params={"queue_name": "jobs", "wait_time": 0}))[0]
    assert ok(devtool.delete(f"/api/messages/{held['id']}")) == {"success": True}
    assert ok(devtool.get("/queues"))[0]["queue_size"] == 0


def test_overview_and_the_sampled_history(devtool: httpx.Client, wq: httpx.Client) -> None:
    queue = ok(wq.post("/queues", json={"name": "jobs"}))
    ok(wq.post("/queues", json={"name": "idle"}))
    rows = eventually(lambda: len(ok(devtool.get("/api/overview"))["queues"]) == 2)
    assert rows
    first = ok(devtool.get("/api/overview", params={"queue": "jobs", "window": 600}))
    assert first["error"] is None and first["interval"] == 0.2
    assert first["history"] is not None and set(first["history"]) == {"t", *SERIES}

    for i in range(5):
        ok(wq.post("/messages", json={"queue_name": "jobs", "body": f"m{i}"}))

    def grown() -> dict[str, Any] | None:
        h = ok(devtool.get("/api/overview", params={"queue": queue["id"], "window": 600}))["history"]
        return h if len(h["t"]) >= len(first["history"]["t"]) + 5 and h["messages"][-1] == 5 else None

    history = eventually(grown)
    assert history, "the history did not grow"
    assert history["t"] == sorted(history["t"])
    assert all(len(history[name]) == len(history["t"]) for name in SERIES)
    assert history["visible"][-1] == 5 and min(history["messages"]) == 0
    assert all(rate >= 0 for name in ("send_rate", "receive_rate", "delete_rate") for rate in history[name])
    assert max(history["send_rate"]) > 0  # from the broker's cumulative "sent"
    idle = ok(devtool.get("/api/overview", params={"queue": "idle"}))["history"]
    assert set(idle["messages"]) == {0}

    current = ok(devtool.get("/api/overview"))
    same = ok(devtool.get("/api/overview", params={"since": current["version"]}))
    assert same["queues"] is None or same["version"] != current["version"]
    assert ok(devtool.get("/api/overview", params={"queue": "nope"}))["history"] is None


def test_dashboard_files(devtool: httpx.Client) -> None:
    page = devtool.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in page.text and "/static/style.css" in page.text
    script = devtool.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert devtool.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert error_code(devtool.get("/static/nope.js"), 404) == "not_found"
    assert devtool.get("/static/..%2Fdevtool.py").status_code == 404


def test_broker_down_is_reported_not_fatal() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    with DevToolServer(nowhere) as server, httpx.Client(base_url=server.url) as http:
        overview = eventually(lambda: (o := ok(http.get("/api/overview")))["error"] and o)
        assert "cannot connect" in overview["error"] and overview["queues"] == []
        assert error_code(http.get("/queues"), 503) == "broker_unreachable"
        assert error_code(http.post("/api/queues", json={"name": "jobs"}), 503) == "broker_unreachable"
        assert http.get("/").status_code == 200


# -- the history's arithmetic, without a broker --


def stats(qid: int, messages: int = 0, **counters: int) -> Any:
    """A stand-in for client.QueueStats, with the broker's cumulative counters when given."""
    queue = SimpleNamespace(id=qid, name=f"q{qid}")
    return SimpleNamespace(queue=queue, messages=messages, visible=messages, in_flight=0, delayed=0,
                           oldest_message_age=None, **counters)


def test_history_rates_are_differences_of_the_counters() -> None:
    h = History(capacity=10)
    h.record(1000.0, 0.0, [stats(1, sent=10, received=0, deleted=0), stats(2)])
    h.record(1002.0, 2.0, [stats(1, 4, sent=14, received=6, deleted=6), stats(2)])
    h.record(1003.0, 3.0, [stats(1, 4, sent=1, received=6, deleted=6), stats(2)])  # counters reset
    w = h.window(1, 600)
    assert w is not None
    assert w["t"] == [1_000_000, 1_002_000, 1_003_000]
    assert w["messages"] == [0, 4, 4]
    assert (w["send_rate"], w["receive_rate"], w["delete_rate"]) == ([0, 2, 0], [0, 3, 0], [0, 3, 0])
    idle = h.window(2, 600)  # no counters at all: rates 0, and no ring allocated
    assert idle is not None and idle["send_rate"] == [0, 0, 0] and 2 not in h.rings


def test_history_keeps_the_last_samples_and_forgets_deleted_queues() -> None:
    h = History(capacity=4)
    for n in range(7):
        h.record(float(n), float(n), [stats(1, n)] + ([stats(2, 1)] if n < 5 else []))
    w = h.window(1, 600)
    assert w is not None and w["messages"] == [3, 4, 5, 6]
    assert h.window(1, 1.5) == {name: values[-2:] for name, values in w.items()}
    assert h.window(2, 600) is None and 2 not in h.rings
    h.record(7.0, 7.0, [stats(1, 7), stats(3, 0)])
    late = h.window(3, 600)  # a new queue's history starts when it was first seen
    assert late is not None and late["t"] == [7000]


def test_the_dashboard_knows_the_peek_budget() -> None:
    """A page that ends early at the broker's byte budget keeps its "Next" button."""
    import re
    from importlib import resources

    from wonderq.backends.rules import PEEK_BYTES

    script = (resources.files("wonderq.apps.devtool") / "static" / "app.js").read_text()
    found = re.search(r"const PEEK_BYTES = (\d+) \* (\d+) \* (\d+);", script)
    assert found is not None and int(found[1]) * int(found[2]) * int(found[3]) == PEEK_BYTES
