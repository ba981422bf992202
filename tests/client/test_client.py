"""wonderq.Client and wonderq.AsyncClient against a real broker over HTTP.

Most tests run twice, through the ``wq`` fixture: once with :class:`Client` and once
with :class:`AsyncClient` driven to completion on a private event loop, so both
classes are held to the same assertions. One broker serves the whole module and
every test works on its own uniquely named queues.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import BrokerProcess, free_port
from wonderq import AsyncClient, Client
from wonderq.client import DEFAULT_URL, Deleted, Message, Queue, QueueStats, Sent, error
from wonderq.errors import (
    BadRequest,
    BrokerUnreachable,
    Conflict,
    InvalidParameter,
    MessageNotFound,
    NotFound,
    PayloadTooLarge,
    QueueExists,
    QueueNotFound,
    StaleToken,
    Unavailable,
    WonderQError,
)


@pytest.fixture(scope="module")
def broker(sqlite_module_broker: BrokerProcess) -> BrokerProcess:
    """Overrides conftest's per-test broker with one per module."""
    return sqlite_module_broker


def unique(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Blocking:
    """An AsyncClient whose coroutine methods run to completion on a private loop,
    so a test written once checks both clients."""

    def __init__(self, url: str, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = AsyncClient(url, **options)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.loop.run_until_complete(attr(*args, **kwargs))

        return call

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


Make = Callable[..., Any]


@pytest.fixture(params=["Client", "AsyncClient"])
def make(request: pytest.FixtureRequest, broker: BrokerProcess) -> Iterator[Make]:
    """Builds clients of the parametrized kind (``url`` defaults to the broker's); closes them."""
    made: list[Any] = []

    def factory(url: str | None = None, **options: Any) -> Any:
        url = url or broker.url
        c = Client(url, **options) if request.param == "Client" else Blocking(url, **options)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


@pytest.fixture
def wq(make: Make) -> Any:
    """A Client, or an AsyncClient behind the same blocking calls."""
    return make()


def close_to_now(t: datetime, slack: float = 60) -> bool:
    return t.tzinfo is not None and abs((t - datetime.now(UTC)).total_seconds()) < slack


# -- queues --


def test_create_get_list_delete_queue(wq: Any) -> None:
    dlq = wq.create_queue(unique("dlq"))
    name = unique()
    q = wq.create_queue(
        name, visibility_timeout=60, delay_seconds=5, retention_seconds=3600, max_message_size=2048,
        redrive_target=dlq.name, max_receive_count=3,
    )
    assert isinstance(q, Queue)
    assert (q.name, q.visibility_timeout, q.delay_seconds, q.retention_seconds) == (name, 60, 5, 3600)
    assert (q.max_message_size, q.redrive_target, q.max_receive_count) == (2048, dlq.name, 3)
    assert isinstance(q.id, int) and close_to_now(q.created_at)

    assert (dlq.visibility_timeout, dlq.delay_seconds, dlq.retention_seconds) == (30, 0, 345_600)
    assert (dlq.max_message_size, dlq.redrive_target, dlq.max_receive_count) == (1_048_576, None, 0)

    assert wq.get_queue(name) == q
    assert wq.get_queue(q.id) == q
    listed = wq.list_queues()
    assert all(isinstance(x, Queue) for x in listed)
    assert q in listed and dlq in listed
    assert [x.id for x in listed] == sorted(x.id for x in listed)

    wq.delete_queue(q.name)  # by name
    wq.delete_queue(dlq.id)  # by id
    for ref in (q.name, q.id, dlq.name):
        with pytest.raises(QueueNotFound):
            wq.get_queue(ref)
    assert q not in wq.list_queues()


def test_stats_and_purge(wq: Any) -> None:
    q = wq.create_queue(unique())
    empty = wq.create_queue(unique())
    wq.send(q.name, "one")
    wq.send(q.name, "two")
    wq.send(q.id, "later", delay_seconds=60)
    assert len(wq.receive(q.name, wait=0)) == 1

    by_id = {s.queue.id: s for s in wq.stats()}
    s = by_id[q.id]
    assert isinstance(s, QueueStats) and s.queue == q
    assert (s.messages, s.visible, s.in_flight, s.delayed) == (3, 1, 1, 1)
    assert isinstance(s.oldest_message_age, float) and 0 <= s.oldest_message_age < 60
    e = by_id[empty.id]
    assert (e.messages, e.visible, e.in_flight, e.delayed, e.oldest_message_age) == (0, 0, 0, 0, None)

    assert wq.purge(q.name) == 3
    assert wq.purge(q.id) == 0
    assert {s.queue.id: s for s in wq.stats()}[q.id].messages == 0


def test_fifo_flag_and_move_messages(wq: Any) -> None:
    assert wq.create_queue(unique() + ".fifo").fifo and not wq.create_queue(unique()).fifo
    dead = wq.create_queue(unique())
    work = wq.create_queue(unique(), redrive_target=dead.name, max_receive_count=1)
    wq.send(work.name, "poison")
    for _ in range(2):
        wq.receive(work.name, wait=0, visibility_timeout=0)
    moving = wq.move_messages(dead.name)
    assert moving.to_move == 1 and moving.task
    for _ in range(100):
        if {s.queue.id: s for s in wq.stats()}[work.id].messages == 1:
            break
        time.sleep(0.02)
    assert [m.body for m in wq.receive(work.name, wait=0)] == ["poison"]


# -- messages --


def test_send_receive_delete(wq: Any) -> None:
    q = wq.create_queue(unique(), visibility_timeout=30)
    first = wq.send(q.name, "hello")
    assert isinstance(first, Sent) and isinstance(first.id, int)
    assert str(uuid.UUID(first.message_id)) == first.message_id
    second = wq.send(q.id, "by id")
    assert second.id > first.id

    got = wq.receive(q.name, size=10, wait=0)
    assert [m.body for m in got] == ["hello", "by id"]
    m = got[0]
    assert isinstance(m, Message)
    assert (m.id, m.message_id, m.queue_id, m.receive_count) == (first.id, first.message_id, q.id, 1)
    assert isinstance(m.token, str) and m.token
    assert m.first_received_at is not None and close_to_now(m.first_received_at)
    assert close_to_now(m.created_at)
    assert timedelta(seconds=25) < m.visible_at - m.created_at < timedelta(seconds=35)
    assert wq.receive(q.id, size=10, wait=0) == []  # both in flight

    wq.delete(m)  # a Message carries its token
    wq.delete(got[1].id, got[1].token)  # an id with an explicit token
    third = wq.send(q.name, "no token")
    wq.delete(third.id)  # an id alone deletes unconditionally
    assert wq.peek(q.name) == []


def test_receive_with_visibility_and_change_visibility(wq: Any) -> None:
    q = wq.create_queue(unique())
    wq.send(q.name, "m")
    [held] = wq.receive(q.name, wait=0, visibility_timeout=600)
    assert held.visible_at - datetime.now(UTC) > timedelta(seconds=500)

    released = wq.change_visibility(held, 0)
    assert isinstance(released, Message) and released.id == held.id
    assert released.visible_at <= datetime.now(UTC) + timedelta(seconds=1)

    [again] = wq.receive(q.id, wait=0)
    assert (again.id, again.receive_count) == (held.id, 2)
    assert again.token != held.token
    extended = wq.change_visibility(again.id, 120, again.token)
    left = (extended.visible_at - datetime.now(UTC)).total_seconds()
    assert 100 < left <= 121


def test_send_batch_mixed_items(wq: Any) -> None:
    q = wq.create_queue(unique())
    items = ["a", ("b", 60), {"body": "c"}, {"body": "d", "delay_seconds": 0}, ("e", None)]
    sent = wq.send_batch(q.name, items)
    assert [type(s) for s in sent] == [Sent] * 5
    assert [s.id for s in sent] == sorted(s.id for s in sent)
    peeked = wq.peek(q.id)
    assert [m.body for m in peeked] == ["a", "b", "c", "d", "e"]
    assert [m.id for m in peeked] == [s.id for s in sent]
    assert peeked[1].visible_at - peeked[1].created_at > timedelta(seconds=50)
    assert sorted(m.body for m in wq.receive(q.name, size=10, wait=0)) == ["a", "c", "d", "e"]
    assert wq.send_batch(q.name, []) == []
    assert wq.send_batch(q.id, iter(["by id"]))[0].id > sent[-1].id


def test_peek_pages_without_receiving(wq: Any) -> None:
    q = wq.create_queue(unique())
    ids = [s.id for s in wq.send_batch(q.name, [f"m{i}" for i in range(5)])]
    page = wq.peek(q.name, size=2)
    assert [m.id for m in page] == ids[:2]
    rest = wq.peek(q.id, size=10, after=page[-1].id)
    assert [m.id for m in rest] == ids[2:]
    assert all(m.receive_count == 0 and m.first_received_at is None for m in page + rest)
    assert {m.state for m in page + rest} == {"visible"}
    assert len(wq.receive(q.name, size=10, wait=0)) == 5  # peeking received nothing
    assert {m.state for m in wq.peek(q.name)} == {"in_flight"}


def test_ping_and_ready(wq: Any) -> None:
    assert wq.ping() is None
    assert wq.ready() is None


# -- errors --


def test_queue_not_found(wq: Any, broker: BrokerProcess) -> None:
    missing = unique("missing")
    with pytest.raises(QueueNotFound) as caught:
        wq.get_queue(missing)
    raw = httpx.get(f"{broker.url}/queues/find", params={"name": missing}).json()["error"]
    assert caught.value.message == str(caught.value) == raw["message"]
    assert missing in caught.value.message
    assert isinstance(caught.value, NotFound) and caught.value.status == 404

    for call in (
        lambda: wq.get_queue(10**12),
        lambda: wq.send(missing, "x"),
        lambda: wq.send_batch(missing, ["x"]),
        lambda: wq.receive(missing, wait=0),
        lambda: wq.peek(missing),
        lambda: wq.purge(missing),
        lambda: wq.delete_queue(missing),
    ):
        with pytest.raises(QueueNotFound):
            call()


def test_queue_exists(wq: Any) -> None:
    name = unique()
    wq.create_queue(name)
    with pytest.raises(QueueExists) as caught:
        wq.create_queue(name)
    assert isinstance(caught.value, Conflict) and caught.value.status == 409
    assert caught.value.message


def test_delete_batch(wq: Any) -> None:
    q = wq.create_queue(unique())
    wq.send_batch(q.name, [f"m{i}" for i in range(12)])
    held: list[Message] = []
    while len(held) < 12:
        held += wq.receive(q.name, size=10, wait=0)
    wq.send(q.name, "again")
    [stale] = wq.receive(q.name, wait=0, visibility_timeout=0)  # at once visible again
    [current] = wq.receive(q.name, wait=0, visibility_timeout=60)
    assert current.id == stale.id
    missing = current.id + 1_000_000
    pair = (held[-1].id, held[-1].token)
    # Messages, an (id, token) pair, a stale token, a missing id: 14 entries, two requests of at most 10
    results = wq.delete_batch([*held[:-1], pair, stale, missing])
    assert all(isinstance(r, Deleted) for r in results)
    assert [r.id for r in results] == [*(m.id for m in held), stale.id, missing]
    assert all(r.deleted and r.error is None for r in results[:12])
    assert not results[12].deleted and isinstance(results[12].error, StaleToken)
    assert not results[13].deleted and isinstance(results[13].error, MessageNotFound)
    assert [m.id for m in wq.peek(q.name)] == [current.id]  # still there for its holder
    assert wq.delete_batch([current]) == [Deleted(current.id, True)]
    with pytest.raises(InvalidParameter):
        wq.delete_batch([0])
    assert wq.delete_batch([]) == []


def test_stale_token(wq: Any) -> None:
    q = wq.create_queue(unique())
    wq.send(q.name, "m")
    [first] = wq.receive(q.name, wait=0, visibility_timeout=0)  # at once visible again
    [second] = wq.receive(q.name, wait=0, visibility_timeout=60)
    assert first.id == second.id
    with pytest.raises(StaleToken):
        wq.delete(first)
    with pytest.raises(StaleToken):
        wq.change_visibility(first, 10)
    with pytest.raises(StaleToken):
        wq.delete(first.id, first.token)
    wq.delete(second)


def test_payload_too_large(wq: Any) -> None:
    q = wq.create_queue(unique(), max_message_size=1024)
    with pytest.raises(PayloadTooLarge) as caught:
        wq.send(q.name, "x" * 1025)
    assert caught.value.status == 413 and caught.value.message
    with pytest.raises(PayloadTooLarge):
        wq.send_batch(q.name, ["fine", "é" * 513])  # 1026 UTF-8 bytes
    assert wq.peek(q.name) == []  # the request of the batch was all or nothing
    wq.send(q.name, "x" * 1024)


def test_invalid_parameter_and_message_not_found(wq: Any) -> None:
    q = wq.create_queue(unique())
    for call in (
        lambda: wq.receive(q.name, size=11, wait=0),
        lambda: wq.receive(q.name, wait=21),
        lambda: wq.create_queue("not a name!"),
        lambda: wq.create_queue(unique(), visibility_timeout=-1),
        lambda: wq.peek(q.name, size=0),
        lambda: wq.send(q.name, ""),
    ):
        with pytest.raises(InvalidParameter) as caught:
            call()
        assert isinstance(caught.value, BadRequest) and caught.value.message
    with pytest.raises(MessageNotFound):
        wq.delete(10**12)
    with pytest.raises(MessageNotFound):
        wq.change_visibility(10**12, 5, token="whatever")


def test_broker_unreachable(make: Make) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    wq = make(url, timeout=2)
    for call in (wq.ping, lambda: wq.send("jobs", "x"), lambda: wq.receive("jobs", wait=1)):
        with pytest.raises(BrokerUnreachable) as caught:
            call()
        assert url in caught.value.message
        assert isinstance(caught.value, Unavailable)
        assert isinstance(caught.value.__cause__, httpx.TransportError)


def test_error_without_the_envelope_maps_by_status() -> None:
    request = httpx.Request("GET", "http://broker.example/queues")
    proxy = error(httpx.Response(503, text="<html>upstream down</html>", request=request))
    assert type(proxy) is Unavailable and "upstream down" in proxy.message and "503" in proxy.message
    gateway = error(httpx.Response(502, text="", request=request))
    assert type(gateway) is WonderQError and "Bad Gateway" in gateway.message
    envelope = {"error": {"code": "teapot", "message": "short"}}
    unknown = error(httpx.Response(418, json=envelope, request=request))
    assert type(unknown) is WonderQError and (unknown.code, unknown.message) == ("teapot", "short")


# -- transport --


def test_long_poll_longer_than_the_timeout(make: Make) -> None:
    """The read timeout of a receive is its wait plus the client's timeout."""
    wq = make(timeout=1)
    q = wq.create_queue(unique())
    started = time.monotonic()
    assert wq.receive(q.name, wait=2) == []
    assert time.monotonic() - started >= 1.5  # it really waited past the 1 s timeout


def test_default_url_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WONDERQ_URL", raising=False)
    with Client() as c:
        assert c.url == DEFAULT_URL == "http://127.0.0.1:3213"
    monkeypatch.setenv("WONDERQ_URL", "http://broker.example:4000/")
    with Client() as c:
        assert c.url == "http://broker.example:4000"
    b = Blocking(None)  # type: ignore[arg-type]
    assert b.client.url == "http://broker.example:4000"
    b.close()
    with Client("http://other:1") as c:
        assert c.url == "http://other:1"


@pytest.mark.parametrize("cls", [Client, AsyncClient])
@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("localhost:3213", "the broker URL must start with http:// or https://, not 'localhost:3213'"),
        ("127.0.0.1:3213", "the broker URL must start with http:// or https://, not '127.0.0.1:3213'"),
        ("ftp://127.0.0.1:3213", "the broker URL must start with http:// or https://"),
        ("http://[::1", "the broker URL is not a valid URL: Invalid IPv6 URL"),
        ("http://127.0.0.1:port", "the broker URL is not a valid URL: Port could not be cast"),
        ("http:///queues", "the broker URL names no host"),
        ("http://broker\x00.example", "the broker URL is not a valid URL: Invalid non-printable"),
    ],
)
def test_a_url_that_is_no_broker_url_is_refused_at_construction(
    cls: type[Client] | type[AsyncClient], url: str, said: str
) -> None:
    """Nothing is sent to find out: a ValueError at once, not a BrokerUnreachable at the first call."""
    with pytest.raises(ValueError, match="^" + re.escape(said)):
        cls(url)


def test_a_bad_wonderq_url_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WONDERQ_URL", "broker.example:3213")
    for cls in (Client, AsyncClient):
        with pytest.raises(ValueError, match=r"^WONDERQ_URL must start with http:// or https://"):
            cls()
    with Client("HTTPS://broker.example") as c:  # a scheme is any case
        assert c.url == "HTTPS://broker.example"


def test_context_managers_close(broker: BrokerProcess) -> None:
    with Client(broker.url) as c:
        c.ping()
    assert c.http.is_closed

    async def main() -> AsyncClient:
        async with AsyncClient(broker.url) as ac:
            await ac.ping()
        return ac

    assert asyncio.run(main()).http.is_closed


def local_port(response: httpx.Response) -> Any:
    return response.extensions["network_stream"].get_extra_info("client_addr")


def test_sync_client_reuses_one_connection(broker: BrokerProcess) -> None:
    ports: set[Any] = set()
    with Client(broker.url) as c:
        c.http.event_hooks["response"].append(lambda r: ports.add(local_port(r)))
        q = c.create_queue(unique())
        for i in range(20):
            c.send(q.name, f"m{i}")
        assert len(c.receive(q.name, size=10, wait=0)) == 10
        c.stats()
    assert len(ports) == 1


async def test_async_client_reuses_connections(broker: BrokerProcess) -> None:
    ports: set[Any] = set()

    async def hook(response: httpx.Response) -> None:
        ports.add(local_port(response))

    async with AsyncClient(broker.url) as c:
        c.http.event_hooks["response"].append(hook)
        q = await c.create_queue(unique())
        for i in range(20):
            await c.send(q.name, f"m{i}")
        assert len(ports) == 1  # one after another: one connection
        await asyncio.gather(*(c.send(q.name, "x") for _ in range(20)))
        assert 1 < len(ports) <= 21  # concurrent requests open more, from one pool


async def test_async_client_concurrent_long_polls(broker: BrokerProcess) -> None:
    async with AsyncClient(broker.url) as c:
        q = await c.create_queue(unique())
        polls = [asyncio.create_task(c.receive(q.name, wait=10)) for _ in range(3)]
        await asyncio.sleep(0.2)
        await c.send_batch(q.name, ["a", "b", "c"])
        got = await asyncio.wait_for(asyncio.gather(*polls), 8)
        assert sorted(m.body for batch in got for m in batch) == ["a", "b", "c"]


def test_send_batch_splits_into_atomic_requests_of_10(make: Make) -> None:
    wq = make()
    requests: list[tuple[str, str, int]] = []

    def record(request: httpx.Request) -> None:
        if request.method == "POST":
            requests.append((request.method, request.url.path, len(json.loads(request.content)["messages"])))

    async def arecord(request: httpx.Request) -> None:
        record(request)

    q = wq.create_queue(unique())
    wq.http.event_hooks["request"].append(record if isinstance(wq, Client) else arecord)
    sent = wq.send_batch(q.name, [f"m{i:02}" for i in range(25)])
    assert requests == [("POST", "/messages", 10), ("POST", "/messages", 10), ("POST", "/messages", 5)]
    assert len(sent) == 25 and [s.id for s in sent] == sorted(s.id for s in sent)
    assert [m.body for m in wq.peek(q.name, size=100)] == [f"m{i:02}" for i in range(25)]


@pytest.mark.parametrize("answer", [{"foo": 1}, "text", [{"id": "1"}],
                                    [{"id": 1, "message_id": "m", "queue_id": True}]])
def test_an_answer_that_is_not_wonderqs_is_said_so(answer: object) -> None:
    """Another server at the URL (or a proxy's page) answers 200 with other JSON: a WonderQError
    naming what was wanted, not a KeyError or TypeError from deep in the parser."""
    with Client("http://127.0.0.1:9") as wq:
        wq.http = httpx.Client(base_url=wq.url, transport=httpx.MockTransport(
            lambda request: httpx.Response(200, json=answer)))
        for call in (lambda: wq.create_queue("q"), lambda: wq.receive("q", wait=0)):
            with pytest.raises(WonderQError, match="not a WonderQ broker's") as e:
                call()
            assert type(e.value) is WonderQError
