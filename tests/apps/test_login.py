"""The dashboard's login and the user app's key, against a real broker app with API keys.

The broker's app is served by uvicorn on a free port from the event loop of an
:class:`~tests.inprocess.InProcess` (so a test makes and revokes keys on its backend and key
ring at once, no reload to wait for); the dev tool and the user app run in process too and
reach it over HTTP, as they do in production."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.conftest import free_port
from tests.inprocess import InProcess, serving
from wonderq.apps import devtool, userapp
from wonderq.apps.userapp import Listener, ListenParams
from wonderq.backends import backend_for
from wonderq.backends.base import Backend
from wonderq.broker import keys
from wonderq.broker.app import create_app
from wonderq.broker.keys import KeyRing
from wonderq.client import AsyncClient
from wonderq.edge.server import listen
from wonderq.settings import Settings


@dataclass
class Broker:
    app: InProcess
    db: Backend
    ring: KeyRing
    url: str

    def key(self, scope: str, *queues: str) -> str:
        """A new key's token, in the ring at once: auth is on from now."""
        _, token = self.app.run(keys.create(self.db, scope, queues, name=f"{scope} key"))
        self.app.run(self.ring.reload())
        return token

    def revoke(self, token: str) -> None:
        parsed = keys.parse(token)
        assert parsed is not None
        self.app.run(self.db.revoke_key(parsed[0]))
        self.app.run(self.ring.reload())

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    settings = Settings(db=f"sqlite:///{tmp_path / 'w.db'}", retention_interval=3600)
    db = backend_for(settings)
    ring = KeyRing(db, settings)
    with serving(create_app(settings, backend=db, keys=ring)) as app:
        sock = listen("127.0.0.1", free_port())
        server = uvicorn.Server(uvicorn.Config(app.app, lifespan="off", log_level="warning"))
        served = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), app.loop)
        deadline = time.monotonic() + 15
        while not server.started:
            assert not served.done() and time.monotonic() < deadline, "the broker did not start"
            time.sleep(0.01)
        yield Broker(app, db, ring, f"http://127.0.0.1:{sock.getsockname()[1]}")
        server.should_exit = True
        served.result(15)


@contextmanager
def dev_tool(broker: Broker | str, **settings: Any) -> Iterator[httpx.Client]:
    """A client of a dev tool (in process) in front of the broker, sampling every 50 ms."""
    url = broker if isinstance(broker, str) else broker.url
    app = devtool.create_app(Settings(url=url, **settings), interval=0.05)
    with serving(app) as running, running.client() as http:
        yield http


def logged_in(http: httpx.Client, key: str, name: str = "wonderq_key") -> dict[str, str]:
    """The cookie a login with ``key`` gives (a session id, not the key)."""
    r = http.post("/login", json={"key": key})
    assert r.status_code == 200, r.text
    session = r.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    http.cookies.clear()  # each test says which cookie it sends
    return {"cookie": f"{name}={session}"}


def code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


def eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


# -- the dev tool --


def test_with_auth_off_nothing_changes(broker: Broker) -> None:
    with dev_tool(broker) as http:
        assert http.post("/api/queues", json={"name": "jobs"}).status_code == 200
        overview = eventually(lambda: (o := http.get("/api/overview").json())["queues"] and o)
        assert [q["name"] for q in overview["queues"]] == ["jobs"] and overview["logged_in"] is False
        assert [q["name"] for q in http.get("/queues").json()] == ["jobs"]


def test_without_a_key_the_dashboard_is_only_its_page_and_the_login(broker: Broker) -> None:
    admin = broker.key("admin")
    with broker.http(admin) as wq:
        wq.post("/queues", json={"name": "jobs"}).raise_for_status()
    with dev_tool(broker, api_key=admin) as http:  # its own key is the sampler's alone
        cookie = logged_in(http, admin)
        eventually(lambda: http.get("/api/overview", headers=cookie).json()["queues"])
        assert code(http.get("/api/overview"), 401) == "unauthorized"
        assert code(http.get("/queues"), 401) == "unauthorized"
        assert code(http.get("/queues/jobs"), 401) == "unauthorized"
        assert code(http.post("/api/queues", json={"name": "mine"}), 401) == "unauthorized"
        assert code(http.delete("/api/queues/jobs"), 401) == "unauthorized"
        page = http.get("/")
        assert page.status_code == 200 and 'id="login-form"' in page.text
        assert http.get("/static/app.js").status_code == 200
    with broker.http(admin) as wq:
        assert [q["name"] for q in wq.get("/queues").json()] == ["jobs"]


def test_login_checks_the_key_and_keeps_it_in_a_strict_http_only_cookie(broker: Broker) -> None:
    admin = broker.key("admin")
    with dev_tool(broker, api_key=admin) as http:
        refused = http.post("/login", json={"key": admin[:-2] + "xx"})
        assert code(refused, 401) == "unauthorized" and "set-cookie" not in refused.headers
        for bad in ("", "wq_a b", "wq_x;y=z", "x" * 513):
            assert code(http.post("/login", json={"key": bad}), 400) == "invalid_parameter", bad
        assert code(http.post("/login", json={}), 400) == "invalid_parameter"
        r = http.post("/login", json={"key": admin})
        assert r.status_code == 200, r.text
        assert re.fullmatch(r"wonderq_key=[\w-]{32}; HttpOnly; SameSite=Strict; Path=/", r.headers["set-cookie"])
        http.cookies.clear()
        assert admin not in r.headers["set-cookie"]  # a session id: other ports on the host are sent it
        cookie = {"cookie": r.headers["set-cookie"].split(";")[0]}
        overview = eventually(lambda: (o := http.get("/api/overview", headers=cookie).json())["logged_in"] and o)
        assert overview["error"] is None and overview["queues"] == []
        assert http.post("/api/queues", json={"name": "jobs"}, headers=cookie).status_code == 200
        assert [q["name"] for q in http.get("/queues", headers=cookie).json()] == ["jobs"]
        forged = {"cookie": f"wonderq_key={admin}; wonderq_key=made-up"}  # the key itself, a planted id
        assert code(http.get("/queues", headers=forged), 401) == "unauthorized"
        both = {"cookie": f"wonderq_key=made-up; {cookie['cookie']}"}  # a planted one beside it: no lock-out
        assert http.get("/queues", headers=both).status_code == 200


def test_a_caller_that_is_no_browser_may_send_its_key_as_a_bearer(broker: Broker) -> None:
    admin = broker.key("admin")
    with dev_tool(broker) as http:
        assert code(http.get("/queues"), 401) == "unauthorized"
        r = http.post("/api/queues", json={"name": "jobs"}, headers={"authorization": f"Bearer {admin}"})
        assert r.status_code == 200 and "set-cookie" not in r.headers
        assert [q["name"] for q in http.get("/queues", headers={"authorization": f"bearer {admin}"}).json()] == ["jobs"]


def test_login_is_refused_from_another_site(broker: Broker) -> None:
    admin = broker.key("admin")
    with dev_tool(broker, api_key=admin) as http:
        r = http.post("/login", json={"key": admin}, headers={"origin": "https://evil.example"})
        assert code(r, 403) == "forbidden" and "set-cookie" not in r.headers


def test_each_call_reaches_the_broker_with_the_browsers_key_not_the_dev_tools(broker: Broker) -> None:
    admin, read = broker.key("admin"), broker.key("read")
    with dev_tool(broker, api_key=admin) as http:
        assert http.post("/login", json={"key": read}).status_code == 200
        r = http.post("/api/queues", json={"name": "jobs"}, headers=logged_in(http, read))
        assert code(r, 403) == "forbidden" and "needs admin" in r.text
        assert "set-cookie" not in r.headers  # a key without the scope is still logged in
        assert http.get("/queues", headers=logged_in(http, read)).json() == []


def test_a_key_for_some_queues_sees_only_those_in_the_samples(broker: Broker) -> None:
    admin, orders = broker.key("admin"), broker.key("read", "orders-*")
    with broker.http(admin) as wq:
        for name in ("orders-1", "billing"):
            wq.post("/queues", json={"name": name}).raise_for_status()
    with dev_tool(broker, api_key=admin) as http:
        as_admin, as_orders = logged_in(http, admin), logged_in(http, orders)
        eventually(lambda: len(http.get("/api/overview", headers=as_admin).json()["queues"]) == 2)
        mine = http.get("/api/overview", params={"queue": "billing"}, headers=as_orders).json()
        assert [q["name"] for q in mine["queues"]] == ["orders-1"] and mine["history"] is None
        theirs = http.get("/api/overview", params={"queue": "orders-1"}, headers=as_orders).json()
        assert theirs["history"] is not None
        assert [q["name"] for q in http.get("/queues", headers=as_orders).json()] == ["orders-1"]
        assert code(http.get("/queues/billing", headers=as_orders), 403) == "forbidden"


def test_a_revoked_key_is_refused_and_its_cookie_cleared(broker: Broker) -> None:
    admin, read = broker.key("admin"), broker.key("read")
    with dev_tool(broker, api_key=admin) as http:
        cookie = logged_in(http, read)
        assert http.get("/api/overview", headers=cookie).status_code == 200
        broker.revoke(read)
        for r in (http.get("/api/overview", headers=cookie), http.get("/queues", headers=cookie)):
            assert code(r, 401) == "unauthorized"
            assert r.headers["set-cookie"] == "wonderq_key=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"


def test_logout_clears_the_cookie(broker: Broker) -> None:
    with dev_tool(broker) as http:
        r = http.post("/logout")
        assert r.status_code == 200
        assert r.headers["set-cookie"] == "wonderq_key=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"


def test_over_tls_the_cookie_is_secure_and_host_only(broker: Broker) -> None:
    admin = broker.key("admin")
    with dev_tool(broker, api_key=admin, tls_cert="cert.pem", tls_key="key.pem") as http:
        r = http.post("/login", json={"key": admin})
        assert re.fullmatch(r"__Host-wonderq_key=[\w-]{32}; HttpOnly; SameSite=Strict; Path=/; Secure",
                            r.headers["set-cookie"])
        assert code(http.get("/api/overview", headers=logged_in(http, admin)), 401) == "unauthorized"  # not its name
        secure = logged_in(http, admin, "__Host-wonderq_key")
        assert http.get("/api/overview", headers=secure).json()["logged_in"] is True


@pytest.mark.parametrize("own", ["", "wq_0123456789abcdef_nope"])
def test_without_a_key_of_its_own_the_dev_tool_samples_with_a_logins(broker: Broker, own: str) -> None:
    """As `make run` leaves it once a key exists: the dev tool has none of its own (or one the
    broker refuses). Each logged-in browser's rows come from its own key, fresh each poll, so two
    browsers on different keys each see what theirs reaches, and one logging out leaves the
    other's counts running."""
    admin, orders = broker.key("admin"), broker.key("read", "orders-*")
    with broker.http(admin) as wq:
        for name in ("jobs", "orders-1"):
            wq.post("/queues", json={"name": name}).raise_for_status()
    with dev_tool(broker, api_key=own) as http:
        time.sleep(0.2)  # a few samples, each refused
        assert code(http.get("/api/overview"), 401) == "unauthorized"
        as_admin, as_orders = logged_in(http, admin), logged_in(http, orders)

        def seen(cookie: dict[str, str]) -> dict[str, int]:
            overview = http.get("/api/overview", headers=cookie).json()
            assert overview["error"] is None, overview
            return {q["name"]: q["messages"] for q in overview["queues"]}

        assert seen(as_admin) == {"jobs": 0, "orders-1": 0} and seen(as_orders) == {"orders-1": 0}
        http.post("/logout", headers=as_admin)  # the first login's key sampled: no more
        with broker.http(admin) as wq:
            wq.post("/messages", json={"queue_name": "orders-1", "body": "x"}).raise_for_status()
        assert seen(as_orders) == {"orders-1": 1}  # still counting, with its own key


def test_an_unreachable_broker_shows_a_logged_in_browser_nothing() -> None:
    with dev_tool(f"http://127.0.0.1:{free_port()}") as http:
        assert http.get("/api/overview").json()["queues"] == []  # open or not: not known, so none shown
        bearer = {"authorization": "Bearer wq_x"}
        assert code(http.get("/api/overview", headers=bearer), 503) == "broker_unreachable"


# -- the user app --


@contextmanager
def user_app(broker: Broker, api_key: str = "") -> Iterator[httpx.Client]:
    with serving(userapp.create_app(Settings(url=broker.url, api_key=api_key))) as running, \
            running.client() as http:
        yield http


def test_the_user_app_says_that_the_broker_refused_its_key(broker: Broker) -> None:
    admin = broker.key("admin")
    for key in ("", "wq_0123456789abcdef_nope"):
        with user_app(broker, key) as http:
            for r in (http.post("/dispatch", params={"queue_name": "jobs"}),
                      http.get("/listen", params={"queue_name": "jobs"})):
                assert code(r, 503) == "unavailable", r.text
                assert "the broker refused the user app's API key (WONDERQ_API_KEY)" in r.text
                assert "www-authenticate" not in r.headers
    with user_app(broker, broker.key("write", "jobs")) as http:  # may send, may not create the queue
        r = http.post("/dispatch", params={"queue_name": "jobs"})
        assert code(r, 403) == "forbidden" and "needs admin" in r.text
    with broker.http(admin) as wq:
        wq.post("/queues", json={"name": "jobs"}).raise_for_status()
    with user_app(broker, broker.key("write", "jobs")) as http:
        assert http.post("/dispatch", params={"queue_name": "jobs", "stub": 3}).json()["created"] == 3


def test_a_listener_whose_key_is_revoked_stops_with_that_error(broker: Broker) -> None:
    admin, write = broker.key("admin"), broker.key("write")
    with broker.http(admin) as wq:
        queue = wq.post("/queues", json={"name": "jobs"}).json()

    key_id = (keys.parse(write) or ("", ""))[0]

    async def listen_until_revoked() -> Listener:
        async with AsyncClient(broker.url, api_key=write) as client:
            q = await client.get_queue("jobs")
            listener = Listener(1, client, q, "jobs", ListenParams(size=1, wait_time=0, visibility_timeout=None))
            await broker.db.revoke_key(key_id)
            await broker.ring.reload()
            await asyncio.wait_for(listener.task, 30)
            return listener

    listener = broker.app.run(listen_until_revoked())
    assert queue["name"] == "jobs"
    assert listener.state == "failed", listener.to_json()
    assert listener.error is not None and "the broker refused the user app's API key" in listener.error


# -- beyond this machine (wonderq.edge.exposure) --

PROXY = {"x-forwarded-for": "203.0.113.9"}


def test_the_user_app_refuses_what_a_proxy_forwarded(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    """It has no login and acts with its own key for whoever reaches it: a proxy in front of it
    would hand that key to the world."""
    admin = broker.key("admin")
    with user_app(broker, admin) as http:
        for r in (http.post("/dispatch", params={"queue_name": "jobs"}, headers=PROXY),
                  http.get("/listen", params={"queue_name": "jobs"}, headers=PROXY),
                  http.get("/listeners", headers={"via": "1.1 nginx"})):
            assert code(r, 403) == "forbidden" and "--insecure-no-auth" in r.text
        assert http.post("/dispatch", params={"queue_name": "jobs"}).json()["created"] == 1
    app = userapp.create_app(Settings(url=broker.url, api_key=admin, insecure_no_auth=True))
    with serving(app) as running, running.client() as http:
        assert http.post("/dispatch", params={"queue_name": "jobs"}, headers=PROXY).json()["created"] == 1
    assert "WITHOUT A LOGIN (--insecure-no-auth)" in caplog.text  # said, as the broker says it


def test_beyond_this_machine_the_dev_tool_asks_everyone_to_log_in(broker: Broker) -> None:
    """Served on another address, or through a proxy, every caller needs a key the broker takes,
    even while the broker takes calls without one; and a login needs the broker to have keys."""
    with dev_tool(broker, host="0.0.0.0") as http:
        assert code(http.get("/api/overview"), 401) == "unauthorized"
        assert code(http.post("/api/queues", json={"name": "jobs"}), 401) == "unauthorized"
        any_string = {"authorization": "Bearer x"}  # a broker without keys would take it
        r = http.post("/api/queues", json={"name": "jobs"}, headers=any_string)
        assert code(r, 401) == "unauthorized" and "takes calls without a key" in r.text
        assert code(http.get("/queues", headers=any_string | PROXY), 401) == "unauthorized"
        r = http.post("/login", json={"key": "wq_0123456789abcdef_anything"})
        assert code(r, 400) == "invalid_parameter" and "no API key" in r.text  # any string would pass
        assert http.get("/").status_code == 200  # the page, with its login form
    with dev_tool(broker) as http:
        assert code(http.get("/queues", headers=PROXY), 401) == "unauthorized"
        assert http.get("/queues").status_code == 200  # its own machine: the broker takes anyone
    admin = broker.key("admin")
    with dev_tool(broker, host="0.0.0.0") as http:
        assert http.get("/queues", headers=logged_in(http, admin)).status_code == 200
    with dev_tool(broker, host="0.0.0.0", insecure_no_auth=True) as http:
        assert code(http.get("/queues"), 401) == "unauthorized"  # the broker's own answer now
