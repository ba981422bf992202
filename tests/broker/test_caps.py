"""The queue cap and the in-flight cap through both APIs (REST, and SQS over both
protocols), on both backends, with small caps and a clock the tests move: the
in-flight count is read at most once a second per queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.broker.sqs.conftest import PROTOCOLS, sqs_client
from tests.broker.sqs.test_queues import code
from tests.conftest import BACKENDS, create_queue, fresh_database, unique
from tests.inprocess import InProcess, serving
from wonderq.broker.app import create_app
from wonderq.cli import parser
from wonderq.clock import ManualClock
from wonderq.settings import Settings

CAP = 5
Capped = tuple[InProcess, ManualClock]


@pytest.fixture(scope="module", params=BACKENDS)
def capped(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capped]:
    """A broker with max_in_flight=5 on a hand-moved clock (PostgreSQL keeps message
    times on its own clock; only the broker's count readings follow this one)."""
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('caps')) / 'wonderq.db'}"
    else:
        url = fresh_database(request.getfixturevalue("postgres"))
    clock = ManualClock()
    with serving(create_app(Settings(db=url, retention_interval=3600, max_in_flight=CAP), clock=clock)) as app:
        yield app, clock


@pytest.fixture
def client(capped: Capped) -> Iterator[httpx.Client]:
    with capped[0].client() as c:
        yield c


@pytest.fixture(params=PROTOCOLS)
def sqs(request: pytest.FixtureRequest, capped: Capped) -> Any:
    return sqs_client(capped[0], request.param)


def fill(client: httpx.Client, name: str, n: int) -> None:
    r = client.post("/messages", json={"queue_name": name, "messages": [{"body": f"m{i}"} for i in range(n)]})
    assert r.status_code == 200, r.text


def consume(client: httpx.Client, name: str, size: int = CAP) -> httpx.Response:
    return client.get("/messages/consume", params={"queue_name": name, "size": size, "wait_time": 0,
                                                   "visibility_timeout": 600})


def test_rest_consume_at_the_cap_is_over_limit_until_deletes_are_seen(client: httpx.Client, capped: Capped) -> None:
    clock = capped[1]
    name = create_queue(client)["name"]
    fill(client, name, 10)
    held = consume(client, name).json()
    assert len(held) == CAP
    clock.advance(1)  # the count is read again: 5 in flight
    refused = consume(client, name)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "over_limit"
    assert "5 messages in flight" in error["message"] and "--max-in-flight" in error["message"]
    for m in held:
        assert client.delete(f"/messages/{m['id']}", params={"reservation_token": m["reservation_token"]}).is_success
    assert consume(client, name).status_code == 403  # within the second, the last reading stands
    clock.advance(1)
    assert [m["body"] for m in consume(client, name).json()] == [f"m{i}" for i in range(5, 10)]


def test_a_broker_counts_its_own_receives_between_readings(client: httpx.Client, capped: Capped) -> None:
    """Before any reading, the five this broker handed out are its estimate: the next
    receive reads the count (5), within the second of the last receive."""
    name = create_queue(client)["name"]
    fill(client, name, 10)
    assert len(consume(client, name).json()) == CAP
    r = consume(client, name, 1)
    assert r.status_code == 403 and "has 5 messages in flight" in r.json()["error"]["message"]


def test_the_cap_is_per_queue_and_by_id_too(client: httpx.Client, capped: Capped) -> None:
    """A queue named by id is counted apart from by name: its first receive, with no
    reading yet, hands one out; the next reads the count."""
    full, other = create_queue(client), create_queue(client)
    fill(client, full["name"], CAP + 1)
    fill(client, other["name"], 1)
    assert len(consume(client, full["name"]).json()) == CAP
    capped[1].advance(1)
    by_id = {"queue_id": full["id"], "wait_time": 0, "visibility_timeout": 600}
    assert len(client.get("/messages/consume", params=by_id).json()) == 1
    r = client.get("/messages/consume", params=by_id)
    assert r.status_code == 403 and r.json()["error"]["code"] == "over_limit"
    assert len(consume(client, other["name"]).json()) == 1


def test_rest_fifo_queues_are_capped_too(client: httpx.Client, capped: Capped) -> None:
    name = create_queue(client, unique("f") + ".fifo")["name"]
    fill(client, name, CAP)
    assert len(consume(client, name).json()) == CAP
    capped[1].advance(1)
    assert consume(client, name).status_code == 403


def test_a_missing_queue_is_still_not_found(client: httpx.Client) -> None:
    r = client.get("/messages/consume", params={"queue_name": unique("nope"), "wait_time": 0})
    assert r.status_code == 404 and r.json()["error"]["code"] == "queue_not_found"


def sqs_fill(sqs: Any, url: str, fifo: bool = False) -> None:
    """CAP + 1 messages, CAP of them received: one is left to hand out (in a FIFO
    queue too: each message is a group of its own)."""
    for i in range(CAP + 1):
        ids = {"MessageGroupId": f"g{i}", "MessageDeduplicationId": str(i)} if fifo else {}
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}", **ids)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=CAP, VisibilityTimeout=600)["Messages"]
    assert len(got) == CAP


def test_sqs_short_poll_of_a_standard_queue_at_the_cap_is_over_limit(sqs: Any, capped: Capped) -> None:
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    sqs_fill(sqs, url)
    capped[1].advance(1)
    with pytest.raises(ClientError) as refused:
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert code(refused) == "OverLimit"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "--max-in-flight" in refused.value.response["Error"]["Message"]


def test_sqs_long_poll_at_the_cap_gets_no_error_and_no_messages(sqs: Any, capped: Capped) -> None:
    """As AWS documents: "If you use long polling, Amazon SQS returns no error messages"."""
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    sqs_fill(sqs, url)
    capped[1].advance(1)
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)


def test_sqs_fifo_at_the_cap_gets_no_error_and_no_messages(sqs: Any, capped: Capped) -> None:
    """AWS: FIFO queues support 120,000 in flight; "If this limit is reached, Amazon SQS
    does not return an error"."""
    url = sqs.create_queue(QueueName=unique("f") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sqs_fill(sqs, url, fifo=True)
    capped[1].advance(1)
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


QUEUE_CAP = 3


@pytest.fixture(params=BACKENDS)
def few(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InProcess]:
    """A fresh broker whose database may hold 3 queues."""
    url = f"sqlite:///{tmp_path / 'few.db'}" if request.param == "sqlite" else fresh_database(
        request.getfixturevalue("postgres"))
    with serving(create_app(Settings(db=url, retention_interval=3600, max_queues=QUEUE_CAP))) as app:
        yield app


def test_rest_create_past_the_queue_cap_is_over_limit(few: InProcess) -> None:
    with few.client() as client:
        for i in range(QUEUE_CAP):
            create_queue(client, f"q{i}")
        r = client.post("/queues", json={"name": "one-more"})
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "over_limit" and "--max-queues" in error["message"]
        assert client.post("/queues", json={"name": "q0"}).json()["error"]["code"] == "queue_exists"
        assert client.delete("/queues/q1").is_success
        create_queue(client, "one-more")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sqs_create_past_the_queue_cap_is_over_limit(few: InProcess, protocol: str) -> None:
    sqs = sqs_client(few, protocol)
    urls = [sqs.create_queue(QueueName=f"q{i}")["QueueUrl"] for i in range(QUEUE_CAP)]
    with pytest.raises(ClientError) as refused:
        sqs.create_queue(QueueName="one-more")
    assert code(refused) == "OverLimit" and "--max-queues" in refused.value.response["Error"]["Message"]
    assert sqs.create_queue(QueueName="q0")["QueueUrl"] == urls[0]  # a repeated create still answers


@pytest.mark.parametrize("field", ["max_queues", "max_in_flight"])
def test_a_cap_below_one_is_refused_at_start(field: str) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Settings.load({field: "0"}, env={})


def test_the_broker_verb_takes_both_caps() -> None:
    args = parser().parse_args(["broker", "--max-queues", "7", "--max-in-flight", "9"])
    settings = Settings.load(vars(args), env={})
    assert (settings.max_queues, settings.max_in_flight) == (7, 9)
    assert Settings.load({}, env={"WONDERQ_MAX_QUEUES": "8"}).max_queues == 8


async def test_a_queue_far_from_the_cap_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 busy queues read once each cost SQLite's reader 0.2 ms a queue, a fifth of
    a spread consume's rate: a queue is read only once its estimate (what this broker
    handed out, with no reading yet) is past an eighth of the cap, then at most once a
    second; a broker that starts beside a full queue finds it full after an eighth."""
    from wonderq.backends import backend_for
    from wonderq.broker.caps import InFlightCap
    from wonderq.models import NewMessage, QueueAttributes

    clock = ManualClock()
    db = backend_for(Settings(db=str(tmp_path / "w.db")), clock)
    await db.open()
    reads: list[object] = []
    real = db.queue_stats

    async def counted(ref: Any) -> Any:
        reads.append(ref)
        return await real(ref)

    monkeypatch.setattr(db, "queue_stats", counted)
    cap = InFlightCap(db, 800, clock)
    try:
        await db.create_queue("q", QueueAttributes())
        for _ in range(99):  # an estimate of up to 99: under 800 / 8
            assert await cap.full("q") is None
            cap.took("q", 1)
            clock.advance(1)
        assert reads == []
        cap.took("q", 1)  # 100: watched now, so read (it never was)
        assert await cap.full("q") is None and await cap.full("q") is None
        assert reads == ["q"]  # and then at most once a second
        cap.took("q", 800)  # the reading's 0 and this broker's 800 since: at the cap, with no new read
        full = await cap.full("q")
        assert full is not None and full.in_flight == 800 and reads == ["q"]
        await db.send_batch("q", [NewMessage("m") for _ in range(10)])
        await db.claim("q", 10, None)  # by another broker: 10 in flight, none counted here
        fresh = InFlightCap(db, 10, clock)
        assert await fresh.full("q") is None  # it knows of none
        fresh.took("q", 2)  # then past an eighth of 10: read, 10 in flight
        full = await fresh.full("q")
        assert full is not None and full.in_flight == 10
    finally:
        await db.close()


async def test_forgetting_keeps_the_queues_near_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound on readings the cap forgets the queues far from it (deleted ones
    among them), never one at the cap: that one would be let through, counted afresh."""
    from wonderq.backends import backend_for
    from wonderq.broker import caps
    from wonderq.models import QueueAttributes

    monkeypatch.setattr(caps, "PRUNE_AT", 4)
    clock = ManualClock()
    db = backend_for(Settings(db=str(tmp_path / "w.db")), clock)
    await db.open()
    cap = caps.InFlightCap(db, 80, clock)
    try:
        await db.create_queue("hot", QueueAttributes())
        cap.took("hot", 10)
        assert await cap.full("hot") is None  # read: none in flight in the database, 0 since
        cap.took("hot", 80)
        for i in range(20):  # many far from the cap, several times over the bound
            cap.took(f"cold{i}", 1)
        full = await cap.full("hot")
        assert full is not None and full.in_flight == 80
        assert len(cap._readings) < 20  # the cold ones went
    finally:
        await db.close()


async def test_a_failed_reading_forgets_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that fails (the database away) keeps what the broker counted: the next
    receive reads again, and finds the queue at the cap."""
    from wonderq.backends import backend_for
    from wonderq.broker.caps import InFlightCap
    from wonderq.errors import Unavailable
    from wonderq.models import NewMessage, QueueAttributes

    clock = ManualClock()
    db = backend_for(Settings(db=str(tmp_path / "w.db")), clock)
    await db.open()
    cap = InFlightCap(db, 80, clock)
    real = db.queue_stats

    async def away(ref: Any) -> Any:
        raise Unavailable("database unavailable")

    try:
        await db.create_queue("q", QueueAttributes())
        for _ in range(8):
            await db.send_batch("q", [NewMessage(f"m{i}") for i in range(10)])
            cap.took("q", len((await db.claim("q", 10, None)).messages))
        monkeypatch.setattr(db, "queue_stats", away)
        with pytest.raises(Unavailable):
            await cap.full("q")
        monkeypatch.setattr(db, "queue_stats", real)
        full = await cap.full("q")
        assert full is not None and full.in_flight == 80
    finally:
        await db.close()
