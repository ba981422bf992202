"""Browser safety on all three services, in-process: a page on another site cannot
drive them (CSRF), and a rebound DNS name cannot reach them (DNS rebinding)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.inprocess import InProcess
from wonderq.apps import devtool, userapp
from wonderq.broker.app import create_app
from wonderq.edge import guard as guard_module
from wonderq.edge.guard import BrowserGuard, host_name
from wonderq.edge.requests import Request
from wonderq.errors import Forbidden, Unsigned
from wonderq.settings import Settings

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    db = Path(tmp_path_factory.mktemp("guard")) / "wonderq.db"
    settings = Settings(db=str(db), allowed_hosts="queue.internal", allowed_origins="https://ops.example")
    with InProcess(create_app(settings)) as app, app.client() as client:
        assert client.post("/queues", json={"name": "q"}).status_code == 200
        yield client


def forbidden(r: httpx.Response) -> str:
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    return str(r.json()["error"]["message"])


def test_a_foreign_host_is_refused_everywhere(broker: httpx.Client) -> None:
    assert "evil.example" in forbidden(broker.get("/queues", headers={"Host": "evil.example"}))
    forbidden(broker.get("/queues", headers={"Host": "evil.example:3213"}))
    forbidden(broker.post("/messages", json={"queue_name": "q", "body": "x"}, headers={"Host": "attacker"}))
    forbidden(broker.get("/nowhere", headers={"Host": "evil.example"}))  # before routing, too


@pytest.mark.parametrize("host", ["localhost", "localhost:3213", "127.0.0.1:3213", "[::1]:3213", "queue.internal"])
def test_loopback_and_configured_hosts_are_served(broker: httpx.Client, host: str) -> None:
    assert broker.get("/queues", headers={"Host": host}).status_code == 200


def test_a_foreign_origin_cannot_change_state(broker: httpx.Client) -> None:
    forbidden(broker.post("/queues/q/purge", headers={"Origin": EVIL}))
    forbidden(broker.post("/messages", data={"queue_name": "q", "body": "x"}, headers={"Origin": EVIL}))
    forbidden(broker.post("/queues", content=b"name=x", headers={"Origin": "null", "Content-Type": "text/plain"}))
    forbidden(broker.delete("/queues/q", headers={"Origin": "http://localhost:3000"}))  # another port
    # a browser's own page (same origin) and a configured origin may
    assert broker.post("/queues/q/purge", headers={"Origin": "http://localhost"}).status_code == 200
    assert broker.post("/queues/q/purge", headers={"Origin": "https://ops.example"}).status_code == 200
    # reads are not state changes (and a rebinding page is stopped by its Host)
    assert broker.get("/queues", headers={"Origin": EVIL}).status_code == 200
    # but a consume is, though a GET: a page could claim messages (and dead-letter them) unseen
    forbidden(broker.get("/messages/consume", params={"queue_name": "q"}, headers={"Origin": EVIL}))
    forbidden(broker.get("/messages/consume", params={"queue_name": "q"}, headers={"Sec-Fetch-Site": "cross-site"}))
    assert broker.head("/messages/consume", params={"queue_name": "q"}).status_code == 405  # no HEAD that claims
    assert broker.get("/messages/consume", params={"queue_name": "q", "wait_time": 0}).status_code == 200


def test_cross_site_fetch_metadata_without_origin_is_refused(broker: httpx.Client) -> None:
    forbidden(broker.post("/queues/q/purge", headers={"Sec-Fetch-Site": "cross-site"}))
    forbidden(broker.post("/queues/q/purge", headers={"Sec-Fetch-Site": "same-site"}))
    assert broker.post("/queues/q/purge", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert broker.post("/queues/q/purge", headers={"Sec-Fetch-Site": "none"}).status_code == 200


OLD_SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6"


def test_an_older_browser_may_not_change_state_with_a_get(broker: httpx.Client) -> None:
    """What <img src="http://127.0.0.1:3213/messages/consume?…"> sends from a browser too old
    for Sec-Fetch-Site: no Origin, no Sec-Fetch-Site, a browser's User-Agent."""
    consume = {"queue_name": "q", "wait_time": 0}
    message = forbidden(broker.get("/messages/consume", params=consume, headers={"User-Agent": OLD_SAFARI}))
    assert "Sec-Fetch-Site" in message
    # a current browser says where a GET comes from: typed in its address bar, it may
    modern = {"User-Agent": OLD_SAFARI, "Sec-Fetch-Site": "none"}
    assert broker.get("/messages/consume", params=consume, headers=modern).status_code == 200
    # and a read is no state change; nor is any client that is no browser refused
    assert broker.get("/queues", headers={"User-Agent": OLD_SAFARI}).status_code == 200
    assert broker.get("/messages/consume", params=consume, headers={"User-Agent": "curl/8.5.0"}).status_code == 200


def test_the_dev_tool_refuses_cross_site_actions() -> None:
    app = devtool.create_app(Settings(url="http://127.0.0.1:9"), interval=3600)
    with InProcess(app) as running, running.client() as client:
        forbidden(client.post("/api/queues/Q/purge", data={"x": "1"}, headers={"Origin": EVIL}))
        forbidden(client.post("/api/queues", content=b"name=Q", headers={"Content-Type": "text/plain",
                                                                          "Sec-Fetch-Site": "cross-site"}))
        forbidden(client.get("/", headers={"Host": "evil.example"}))
        page = client.get("/")
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"


def test_the_user_app_refuses_a_cross_site_listen() -> None:
    app = userapp.create_app(Settings(url="http://127.0.0.1:9"))
    with InProcess(app) as running, running.client() as client:
        # what <img src="http://127.0.0.1:3000/listen?queue_name=Q"> sends
        forbidden(client.get("/listen", params={"queue_name": "Q"}, headers={"Sec-Fetch-Site": "cross-site"}))
        forbidden(client.get("/listen", params={"queue_name": "Q"}, headers={"User-Agent": OLD_SAFARI}))
        forbidden(client.post("/dispatch", data={"queue_name": "Q"}, headers={"Origin": EVIL}))
        forbidden(client.get("/listeners", headers={"Host": "evil.example"}))


def test_host_names() -> None:
    assert host_name("Example.COM:3213") == "example.com"
    assert host_name("[::1]:3213") == "::1"
    assert host_name("::1") == "::1"
    guard = BrowserGuard.of("0.0.0.0", " a.example , b.example ")
    assert {"a.example", "b.example", "localhost"} <= guard.hosts and "0.0.0.0" not in guard.hosts
    assert "10.0.0.5" in BrowserGuard.of("10.0.0.5").hosts


def request(**headers: str) -> Request:
    return Request("POST", "/messages", b"", [(k.encode(), v.encode()) for k, v in headers.items()], b"", receive, {})


async def receive() -> dict[str, object]:
    return {"type": "http.disconnect"}


def test_a_host_that_passed_is_remembered_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each allowed Host value is parsed once (a connection sends the same one every time);
    one that is not allowed is parsed, and refused, every time; the memory is bounded."""
    guard = BrowserGuard.of("127.0.0.1")
    parsed: list[str] = []

    def parse(value: str) -> str:
        parsed.append(value)
        return host_name(value)

    monkeypatch.setattr(guard_module, "host_name", parse)
    for _ in range(3):
        guard.check_host(request(host="127.0.0.1:3213"))
        with pytest.raises(Forbidden):
            guard.check_host(request(host="evil.example:3213"))
    assert parsed == ["127.0.0.1:3213"] + ["evil.example:3213"] * 3
    for port in range(guard_module.REMEMBERED * 2):
        guard.check_host(request(host=f"localhost:{port}"))
    assert len(guard.passed) == guard_module.REMEMBERED


def test_json_bodies_pass_as_sent_and_page_types_do_not() -> None:
    guard = BrowserGuard.of("127.0.0.1")
    for content_type in ("application/json", "application/x-amz-json-1.0", "Application/JSON; charset=utf-8"):
        guard.check_change(request(**{"content-type": content_type}))
    for content_type in PAGE_TYPES:
        with pytest.raises(Unsigned):
            guard.check_change(request(**{"content-type": content_type}))
    with pytest.raises(Unsigned, match=r"^a body of type multipart/form-data may change state") as refused:
        guard.check_change(request(**{"content-type": "Multipart/Form-Data; boundary=----1eb767ff08eeb114"}))
    assert "1eb767ff08eeb114" not in refused.value.message  # the media type, not its parameters


PAGE_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain;charset=UTF-8"]


def assert_json_or_auth(client: httpx.Client, path: str, fields: dict[str, str]) -> None:
    """What a page can send cross-site without a preflight is refused with no Authorization
    header (even with no Origin: an old browser's, or one stripped); JSON, a body-less
    request, and any body with Authorization pass the guard (to the route's own answer)."""
    for content_type in PAGE_TYPES:
        said = forbidden(client.post(path, content=b"x=1", headers={"Content-Type": content_type}))
        assert "Authorization" in said and "application/json" in said
    said = forbidden(client.post(path, data=fields))  # a form, as curl -d sends it
    for passes in (client.post(path, json=fields), client.post(path),
                   client.post(path, data=fields, headers={"Authorization": "Bearer x"})):
        assert passes.status_code != 403, passes.text


def test_a_state_change_takes_json_or_auth_on_the_broker(broker: httpx.Client) -> None:
    assert_json_or_auth(broker, "/messages", {"queue_name": "q", "body": "x"})
    assert broker.post("/queues", json={"name": "by-json"}).status_code == 200
    assert forbidden(broker.delete("/queues/by-json", headers={"Content-Type": "text/plain"}))
    # the SQS Query protocol is forms, but its clients sign every request
    r = broker.post("/", data={"Action": "ListQueues", "Version": "2012-11-05"})
    assert r.status_code == 403 and "<Code>MissingAuthenticationToken</Code>" in r.text
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=test"}
    assert broker.post("/", data={"Action": "ListQueues", "Version": "2012-11-05"}, headers=signed).status_code == 200


def test_a_state_change_takes_json_or_auth_on_the_dev_tool() -> None:
    app = devtool.create_app(Settings(url="http://127.0.0.1:9"), interval=3600)
    with InProcess(app) as running, running.client() as client:
        assert_json_or_auth(client, "/api/queues", {"name": "Q"})


def test_a_state_change_takes_json_or_auth_on_the_user_app() -> None:
    app = userapp.create_app(Settings(url="http://127.0.0.1:9"))
    with InProcess(app) as running, running.client() as client:
        assert_json_or_auth(client, "/dispatch", {"queue_name": "Q", "body": "x"})
