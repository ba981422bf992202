"""The REST API's bearer keys, in-process: auth is off until a key exists; then every
route but the health checks and the document needs a key with the route's scope,
on the queues it names; a revoked key stops working at the ring's next reload."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from tests.broker.test_errors import assert_error
from tests.inprocess import InProcess, serving
from wonderq.backends import backend_for
from wonderq.backends.base import Backend
from wonderq.broker import keys
from wonderq.broker.app import create_app
from wonderq.broker.keys import KeyRing, check_exposure
from wonderq.broker.openapi import document
from wonderq.edge.exposure import Unprotected, loopback
from wonderq.errors import Unauthorized
from wonderq.settings import Settings


@dataclass
class Broker:
    app: InProcess
    db: Backend
    ring: KeyRing
    client: httpx.Client

    def key(self, scope: str, queues: tuple[str, ...] = ()) -> dict[str, str]:
        """A new key's Authorization header, loaded into the ring."""
        _, token = self.app.run(keys.create(self.db, scope, queues, name=f"{scope} key"))
        self.app.run(self.ring.reload())
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    settings = Settings(db=f"sqlite:///{tmp_path / 'w.db'}", retention_interval=3600)
    db = backend_for(settings)
    ring = KeyRing(db, settings)
    with serving(create_app(settings, backend=db, keys=ring)) as app, app.client() as client:
        yield Broker(app, db, ring, client)


def test_without_keys_auth_is_off(broker: Broker) -> None:
    assert not broker.ring.required
    assert broker.client.post("/queues", json={"name": "open"}).status_code == 200
    assert broker.client.get("/queues").status_code == 200


def test_with_a_key_every_route_needs_one(broker: Broker) -> None:
    admin = broker.key("admin")
    assert broker.ring.required
    c = broker.client
    r = c.get("/queues")
    assert "Authorization: Bearer" in assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == 'Bearer realm="wonderq"'
    for bad in ("Bearer wq_0123456789abcdef_nope", "Bearer nonsense", "Basic dXNlcjpwdw==",
                admin["Authorization"] + "x"):
        assert_error(c.get("/queues", headers={"Authorization": bad}), 401, "unauthorized")
    assert_error(c.post("/queues", json={"name": "jobs"}), 401, "unauthorized")
    assert c.post("/queues", json={"name": "jobs"}, headers=admin).status_code == 200
    lower = {"Authorization": admin["Authorization"].replace("Bearer", "bearer")}
    assert c.get("/queues", headers=lower).status_code == 200
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert c.get(path).status_code == 200, path
    assert c.head("/healthz").status_code == 200


def test_each_route_needs_its_scope(broker: Broker) -> None:
    read, write, admin = broker.key("read"), broker.key("write"), broker.key("admin")
    c = broker.client
    assert "needs admin" in assert_error(c.post("/queues", json={"name": "jobs"}, headers=write), 403, "forbidden")
    q = c.post("/queues", json={"name": "jobs"}, headers=admin).json()
    assert "needs write" in assert_error(
        c.post("/messages", json={"queue_name": "jobs", "body": "x"}, headers=read), 403, "forbidden")
    assert c.post("/messages", json={"queue_name": "jobs", "body": "x"}, headers=write).status_code == 200
    for path in ("/queues", "/queues/find?name=jobs", "/queues/jobs/messages", "/metrics"):
        assert c.get(path, headers=read).status_code == 200, path
    assert_error(c.get("/messages/consume?queue_name=jobs&wait_time=0", headers=read), 403, "forbidden")
    (m,) = c.get("/messages/consume?queue_name=jobs&wait_time=0", headers=write).json()
    token = {"reservation_token": m["reservation_token"]}
    assert_error(c.request("DELETE", f"/messages/{m['id']}", params=token, headers=read), 403, "forbidden")
    assert c.post(f"/messages/{m['id']}/visibility", json={**token, "visibility_timeout": 5},
                  headers=write).status_code == 200
    assert c.request("DELETE", f"/messages/{m['id']}", params=token, headers=write).status_code == 200
    for method, path in (("POST", f"/queues/{q['id']}/purge"), ("DELETE", "/queues/jobs")):
        assert_error(c.request(method, path, headers=write), 403, "forbidden")
        assert c.request(method, path, headers=admin).status_code == 200


def test_a_queue_limited_key_reaches_only_its_queues(broker: Broker) -> None:
    admin, orders = broker.key("admin"), broker.key("write", ("orders-*", "audit"))
    c = broker.client
    ids = {name: c.post("/queues", json={"name": name}, headers=admin).json()["id"]
           for name in ("orders-eu", "audit", "payroll")}
    assert [q["name"] for q in c.get("/queues", headers=orders).json()] == ["orders-eu", "audit"]
    assert c.post("/messages", json={"queue_name": "orders-eu", "body": "x"}, headers=orders).status_code == 200
    assert c.post("/messages", json={"queue_id": ids["audit"], "body": "x"}, headers=orders).status_code == 200
    for ref in ({"queue_name": "payroll"}, {"queue_id": ids["payroll"]}):
        said = assert_error(c.post("/messages", json={**ref, "body": "x"}, headers=orders), 403, "forbidden")
        assert ("'payroll'" in said) is ("queue_name" in ref)  # by id, the name is not told
        assert_error(c.get("/messages/consume", params={**ref, "wait_time": 0}, headers=orders), 403, "forbidden")
    missing = assert_error(c.get("/messages/consume", params={"queue_id": 9999, "wait_time": 0}, headers=orders),
                           403, "forbidden")  # nor whether an id exists: a missing one is answered alike
    assert missing == "this key does not reach queue 9999" and "payroll" not in said
    assert_error(c.get("/queues/find?name=payroll", headers=orders), 403, "forbidden")
    assert_error(c.get(f"/queues/{ids['payroll']}/messages", headers=orders), 403, "forbidden")
    c.post("/messages", json={"queue_name": "payroll", "body": "salary"}, headers=admin)
    (m,) = c.get("/messages/consume?queue_name=orders-eu&wait_time=0", headers=orders).json()
    # by message id: a limited key must show the token, which only a covered receive gave it
    assert "reservation_token" in assert_error(c.delete(f"/messages/{m['id']}", headers=orders), 403, "forbidden")
    assert_error(c.post("/messages/delete", json={"messages": [{"id": m["id"]}]}, headers=orders), 403, "forbidden")
    r = c.request("DELETE", f"/messages/{m['id']}", params={"reservation_token": m["reservation_token"]},
                  headers=orders)
    assert r.status_code == 200
    metrics = c.get("/metrics", headers=broker.key("read", ("audit",))).text
    assert 'queue="audit"' in metrics and "payroll" not in metrics


def test_a_queue_limited_key_cannot_use_a_token_from_another_queue(broker: Broker) -> None:
    """REST names a message by id: its queue is looked up, so a token that reached a limited
    key some other way (leaked, shared) acts only within the key's queues. Refused as a stale
    token is (where the message is is not told); a missing message is still not found."""
    admin, orders = broker.key("admin"), broker.key("write", ("orders",))
    c = broker.client
    for name in ("orders", "payroll"):
        c.post("/queues", json={"name": name}, headers=admin)
        c.post("/messages", json={"queue_name": name, "messages": [{"body": "1"}, {"body": "2"}]}, headers=admin)
    mine = c.get("/messages/consume?queue_name=orders&wait_time=0&size=2", headers=orders).json()
    theirs = c.get("/messages/consume?queue_name=payroll&wait_time=0&size=2", headers=admin).json()
    t = theirs[0]
    token = {"reservation_token": t["reservation_token"]}
    said = assert_error(c.request("DELETE", f"/messages/{t['id']}", params=token, headers=orders), 409, "stale_token")
    assert "payroll" not in said
    assert_error(c.post(f"/messages/{t['id']}/visibility", json={**token, "visibility_timeout": 0},
                        headers=orders), 409, "stale_token")
    assert_error(c.request("DELETE", "/messages/999999", params=token, headers=orders), 404, "message_not_found")
    own = {"reservation_token": mine[1]["reservation_token"], "visibility_timeout": 60}
    assert c.post(f"/messages/{mine[1]['id']}/visibility", json=own, headers=orders).status_code == 200
    entries = [{"id": m["id"], "reservation_token": m["reservation_token"]} for m in (mine[0], t, mine[1], t)]
    r = c.post("/messages/delete", json={"messages": entries}, headers=orders)
    assert r.status_code == 200 and r.json()["deleted"] == 2
    assert [a["deleted"] for a in r.json()["messages"]] == [True, False, True, False]
    assert [a["error"]["code"] for a in r.json()["messages"] if not a["deleted"]] == ["stale_token"] * 2
    peeked = c.get("/queues/find?name=payroll", headers=admin).json()
    assert c.get(f"/queues/{peeked['id']}/messages", headers=admin).json()[0]["id"] == t["id"]  # still there
    r = c.request("DELETE", f"/messages/{t['id']}", params=token, headers=admin)  # an unlimited key may
    assert r.status_code == 200


def test_a_queue_limited_admin_creates_and_moves_only_within_reach(broker: Broker) -> None:
    orders = broker.key("admin", ("orders-*",))
    c = broker.client
    assert_error(c.post("/queues", json={"name": "payroll"}, headers=orders), 403, "forbidden")
    assert c.post("/queues", json={"name": "orders-dlq"}, headers=orders).status_code == 200
    assert_error(c.post("/queues", json={"name": "orders-a", "redrive_target": "payroll"}, headers=orders),
                 403, "forbidden")
    assert "destination" in assert_error(c.post("/queues/orders-dlq/move", json={}, headers=orders),
                                         403, "forbidden")
    assert_error(c.post("/queues/orders-dlq/move", json={"destination": "payroll"}, headers=orders),
                 403, "forbidden")


def test_a_revoked_key_stops_at_the_next_reload(broker: Broker) -> None:
    admin, other = broker.key("admin"), broker.key("read")
    c = broker.client
    key_id = admin["Authorization"].split("_")[1]
    broker.app.run(broker.db.revoke_key(key_id))
    assert c.get("/queues", headers=admin).status_code == 200  # until the ring reloads (about 1 s)
    broker.app.run(broker.ring.reload())
    assert_error(c.get("/queues", headers=admin), 401, "unauthorized")
    assert c.get("/queues", headers=other).status_code == 200


def test_tokens_are_stored_as_digests_only(broker: Broker) -> None:
    header = broker.key("read")
    token = header["Authorization"].removeprefix("Bearer ")
    prefix, key_id, secret = token.split("_", 2)
    assert prefix == "wq" and len(key_id) == 16 and len(secret) >= 43
    (stored,) = broker.app.run(broker.db.list_keys())
    assert stored.id == key_id and stored.secret_hash == keys.digest(secret) and secret not in stored.secret_hash


async def test_an_exposed_broker_fails_closed(tmp_path: Path) -> None:
    settings = Settings(db=f"sqlite:///{tmp_path / 'w.db'}", host="0.0.0.0", retention_interval=3600)
    db = backend_for(settings)
    await db.open()
    try:
        ring = KeyRing(db, settings)
        await ring.reload()
        with pytest.raises(Unprotected):
            check_exposure(ring, settings)
        check_exposure(ring, replace(settings, insecure_no_auth=True))  # told: it warns and serves
        check_exposure(ring, replace(settings, host="127.0.0.1"))
        key, _ = await keys.create(db, "read")
        await ring.reload()
        check_exposure(ring, settings)
        await db.revoke_key(key.id)
        await ring.reload()
        assert ring.required  # the last key revoked: everyone is refused, nobody let in
        with pytest.raises(Unauthorized):
            ring.bearer(None)
    finally:
        await db.close()


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False), ("example.com", False),
])
def test_loopback(host: str, local: bool) -> None:
    assert loopback(host) is local


def test_the_document_says_which_operations_need_a_key(broker: Broker) -> None:
    """Each operation of /openapi.json without a key: 401 exactly where the document
    asks for the bearer scheme (and lists 401), served where it says security: []."""
    broker.key("admin")
    doc = document()
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    open_ops = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            url = path.replace("{queue}", "jobs").replace("{message}", "1")
            r = broker.client.request(method.upper(), url)
            if op.get("security") == []:
                open_ops.add((method, path))
                assert r.status_code == 200 and "401" not in op["responses"], (method, path)
            else:
                assert r.status_code == 401 and "401" in op["responses"], (method, path, r.text)
    assert open_ops == {("get", "/healthz"), ("head", "/healthz"), ("get", "/readyz"), ("head", "/readyz"),
                        ("get", "/openapi.json")}


def test_rest_keys_close_the_sqs_api_too(broker: Broker) -> None:
    """With keys on and no SQS credentials, no SQS request passes, signed or not, and the
    error says what to configure: an open SQS API beside a keyed REST API would be a hole."""
    sqs = {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}
    signed = sqs | {"X-Amz-Date": "20260101T000000Z", "Authorization": (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/sqs/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + "0" * 64)}
    assert broker.client.post("/", content=b"{}", headers=signed).status_code == 200  # auth off: any signature
    broker.key("admin")
    r = broker.client.post("/", content=b"{}", headers=signed)
    assert r.status_code == 403 and r.json()["__type"].endswith("#InvalidClientTokenId"), r.text
    assert "--sqs-credentials" in r.json()["message"]
    r = broker.client.post("/", content=b"{}", headers=sqs)
    assert r.status_code == 403 and r.json()["__type"].endswith("#MissingAuthenticationToken"), r.text


@pytest.mark.parametrize("proxy", [{"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7"},
                                   {"X-Real-IP": "203.0.113.7"}, {"Via": "1.1 proxy"}])
def test_with_auth_off_a_proxied_request_is_refused(broker: Broker, proxy: dict[str, str]) -> None:
    """Behind nginx every request comes from loopback: a broker with no key serves its own
    machine only, so what a proxy forwarded is refused, REST and SQS alike, health checks aside."""
    c = broker.client
    message = assert_error(c.get("/queues", headers=proxy), 401, "unauthorized")
    assert "came through a proxy" in message and "wonderq keys create" in message
    assert c.get("/readyz", headers=proxy).status_code == 200  # nginx's own checks still pass
    sqs = {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}
    r = c.post("/", content=b"{}", headers=sqs | proxy)
    assert r.status_code == 403 and r.json()["__type"].endswith("#MissingAuthenticationToken"), r.text
    admin = broker.key("admin")  # with a key, a proxied request is as any other
    assert c.get("/queues", headers=proxy | admin).status_code == 200


def test_insecure_no_auth_serves_proxied_requests(tmp_path: Path) -> None:
    settings = Settings(db=f"sqlite:///{tmp_path / 'w.db'}", retention_interval=3600, insecure_no_auth=True)
    with InProcess(create_app(settings)) as app, app.client() as client:
        assert client.get("/queues", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A reload a second, each failed, logged a traceback a second: 28 in a 12-second PostgreSQL
    outage. The database's refusal is one line, once."""
    import asyncio

    from wonderq.errors import Unavailable

    settings = Settings(db=f"sqlite:///{tmp_path / 'w.db'}", retention_interval=3600)
    ring = KeyRing(backend_for(settings), settings)
    outcomes = [Unavailable("the database cannot be reached"), Unavailable("still down"), None, None]
    reloaded = asyncio.Event()

    async def reload() -> None:
        outcome = outcomes.pop(0)
        if not outcomes:
            reloaded.set()
        if outcome is not None:
            raise outcome

    caplog.set_level("INFO", "wonderq.keys")
    monkeypatch.setattr(keys, "RELOAD_SECONDS", 0.001)
    monkeypatch.setattr(ring, "reload", reload)
    watching = asyncio.create_task(ring.watch())
    await asyncio.wait_for(reloaded.wait(), 5)
    watching.cancel()
    said = [(r.levelname, r.getMessage(), bool(r.exc_info)) for r in caplog.records if r.name == "wonderq.keys"]
    assert said == [("WARNING", "could not reload the API keys (the database cannot be reached); keeping the"
                     " ones loaded", False), ("INFO", "the API keys reload again", False)]
