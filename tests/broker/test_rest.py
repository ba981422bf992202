"""The broker's HTTP API over the wire: every endpoint, its JSON shape and semantics.

One broker app per backend serves the whole module, in this process (see
``conftest.py``), so every test works on its own uniquely named queues and never
on global totals.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import FORM_AUTH, create_queue, unique
from tests.inprocess import InProcess

QUEUE_KEYS = {
    "id", "name", "created_at", "visibility_timeout", "delay_seconds", "retention_seconds",
    "max_message_size", "redrive_target", "max_receive_count", "receive_wait_seconds", "fifo", "tags",
}
STATS_KEYS = QUEUE_KEYS | {
    "queue_size", "retrievable_size", "in_flight_size", "delayed_size", "oldest_message_age",
}
MESSAGE_KEYS = {
    "id", "queue_id", "body", "retrievable_at", "reservation_token", "created_at", "receive_count",
}
DEFAULT_ATTRIBUTES = {
    "visibility_timeout": 30, "delay_seconds": 0, "retention_seconds": 345_600,
    "max_message_size": 1_048_576, "redrive_target": None, "max_receive_count": 0,  # SQS since 2025
}


def send(client: httpx.Client, queue: dict[str, Any], body: str = "hello", **extra: Any) -> int:
    r = client.post("/messages", json={"queue_name": queue["name"], "body": body, **extra})
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def consume(client: httpx.Client, queue: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    r = client.get("/messages/consume", params={"queue_name": queue["name"], "wait_time": 0, **params})
    assert r.status_code == 200, r.text
    return list(r.json())


def peek(client: httpx.Client, queue: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"/queues/{queue['name']}/messages", params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


def stats(client: httpx.Client, queue: dict[str, Any]) -> dict[str, Any]:
    r = client.get("/queues")
    assert r.status_code == 200, r.text
    (row,) = [q for q in r.json() if q["id"] == queue["id"]]
    return dict(row)


def when(stamp: str) -> datetime:
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp)


# -- health -------------------------------------------------------------------


def test_healthz(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"status": "ok"}


def test_readyz(client: httpx.Client) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


# -- queues -------------------------------------------------------------------


def test_create_queue_with_json_body_has_defaults(client: httpx.Client) -> None:
    name = unique()
    r = client.post("/queues", json={"name": name})
    assert r.status_code == 200, r.text
    q = r.json()
    assert set(q) >= QUEUE_KEYS
    assert isinstance(q["id"], int) and q["id"] > 0
    assert q["name"] == name
    assert {k: q[k] for k in DEFAULT_ATTRIBUTES} == DEFAULT_ATTRIBUTES
    assert abs(when(q["created_at"]).timestamp() - time.time()) < 60


def test_create_queue_with_form_body_and_attributes(client: httpx.Client) -> None:
    dlq = create_queue(client)
    name = unique()
    form = {
        "name": name, "visibility_timeout": "45", "delay_seconds": "3", "retention_seconds": "600",
        "max_message_size": "2048", "redrive_target": dlq["name"], "max_receive_count": "5",
    }
    r = client.post("/queues", data=form, headers=FORM_AUTH)
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["name"] == name
    assert q["visibility_timeout"] == 45
    assert q["delay_seconds"] == 3
    assert q["retention_seconds"] == 600
    assert q["max_message_size"] == 2048
    assert q["redrive_target"] == dlq["name"]
    assert q["max_receive_count"] == 5


def test_create_queue_with_json_attributes(client: httpx.Client) -> None:
    create_queue(client, "elsewhere")
    q = create_queue(
        client, visibility_timeout=0, delay_seconds=900, retention_seconds=1_209_600,
        max_message_size=1024, redrive_target="elsewhere",
    )
    assert q["visibility_timeout"] == 0
    assert q["delay_seconds"] == 900
    assert q["retention_seconds"] == 1_209_600
    assert q["max_message_size"] == 1024
    assert q["redrive_target"] == "elsewhere"
    assert q["max_receive_count"] == 0


@pytest.mark.parametrize(
    "name",
    ["a", "A-z_0-9", "x" * 80, "orders.fifo", "y" * 75 + ".fifo"],
    ids=["one-char", "all-classes", "80-chars", "fifo", "80-chars-fifo"],
)
def test_create_queue_accepts_valid_names(client: httpx.Client, name: str) -> None:
    q = create_queue(client, name)  # the module's other queues have random names: no clash
    assert q["name"] == name
    found = client.get("/queues/find", params={"name": name})
    assert found.status_code == 200
    assert found.json()["id"] == q["id"]


def test_find_queue_by_name_and_by_id(client: httpx.Client, queue: dict[str, Any]) -> None:
    by_name = client.get("/queues/find", params={"name": queue["name"]})
    by_id = client.get("/queues/find", params={"id": queue["id"]})
    assert by_name.status_code == by_id.status_code == 200
    assert by_name.json() == by_id.json() == queue


def test_list_queues_counts_every_state(client: httpx.Client, queue: dict[str, Any]) -> None:
    empty = create_queue(client)
    send(client, queue, "visible")
    send(client, queue, "in flight")
    send(client, queue, "delayed", delay_seconds=900)
    assert [m["body"] for m in consume(client, queue, visibility_timeout=600)] == ["visible"]

    row = stats(client, queue)
    assert set(row) >= STATS_KEYS
    assert {k: row[k] for k in QUEUE_KEYS} == queue
    assert row["queue_size"] == 3
    assert row["retrievable_size"] == 1
    assert row["in_flight_size"] == 1
    assert row["delayed_size"] == 1
    assert isinstance(row["oldest_message_age"], int | float)
    assert 0 <= row["oldest_message_age"] < 60

    empty_row = stats(client, empty)  # empty queues are listed too
    assert empty_row["name"] == empty["name"]
    assert empty_row["queue_size"] == empty_row["retrievable_size"] == 0
    assert empty_row["in_flight_size"] == empty_row["delayed_size"] == 0
    assert empty_row["oldest_message_age"] is None


def test_list_queues_is_ordered_by_id(client: httpx.Client) -> None:
    mine = [create_queue(client)["id"] for _ in range(3)]
    ids = [q["id"] for q in client.get("/queues").json()]
    assert ids == sorted(ids)
    assert [i for i in ids if i in mine] == mine


@pytest.mark.parametrize("ref", ["name", "id"])
def test_delete_queue_deletes_it_and_its_messages(client: httpx.Client, ref: str) -> None:
    q = create_queue(client)
    other = create_queue(client)
    ids = [send(client, q, f"m{i}") for i in range(3)]
    kept = send(client, other, "kept")

    r = client.delete(f"/queues/{q[ref]}")
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True}

    assert client.get("/queues/find", params={"name": q["name"]}).status_code == 404
    assert q["id"] not in [row["id"] for row in client.get("/queues").json()]
    for message_id in ids:
        assert client.delete(f"/messages/{message_id}").status_code == 404
    assert [m["id"] for m in peek(client, other)] == [kept]

    again = create_queue(client, q["name"])  # the name is free again, and the queue empty
    assert again["id"] != q["id"]
    assert peek(client, again) == []


@pytest.mark.parametrize("ref", ["name", "id"])
def test_purge_empties_the_queue_but_keeps_it(client: httpx.Client, queue: dict[str, Any], ref: str) -> None:
    other = create_queue(client)
    for i in range(3):
        send(client, queue, f"m{i}")
    send(client, other, "kept")

    r = client.post(f"/queues/{queue[ref]}/purge")
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "purged": 3}
    assert peek(client, queue) == []
    assert stats(client, queue)["queue_size"] == 0
    assert [m["body"] for m in peek(client, other)] == ["kept"]

    assert client.post(f"/queues/{queue[ref]}/purge").json() == {"success": True, "purged": 0}
    send(client, queue, "after purge")  # the queue still works
    assert [m["body"] for m in consume(client, queue)] == ["after purge"]


# -- peek -----------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["name", "id"])
def test_peek_shows_messages_without_consuming(client: httpx.Client, queue: dict[str, Any], ref: str) -> None:
    ids = [send(client, queue, f"m{i}") for i in range(3)]
    r = client.get(f"/queues/{queue[ref]}/messages")
    assert r.status_code == 200, r.text
    shown = r.json()
    assert [m["id"] for m in shown] == ids
    assert [m["body"] for m in shown] == ["m0", "m1", "m2"]
    for m in shown:
        assert set(m) >= MESSAGE_KEYS
        assert m["queue_id"] == queue["id"]
        assert m["receive_count"] == 0
        assert m["reservation_token"] is None

    assert peek(client, queue) == shown  # looking twice changes nothing
    assert [m["id"] for m in consume(client, queue, size=10)] == ids
    assert stats(client, queue)["in_flight_size"] == 3


def test_peek_pages_with_after(client: httpx.Client, queue: dict[str, Any]) -> None:
    ids = [send(client, queue, f"m{i}") for i in range(5)]
    pages, after = [], 0
    while page := peek(client, queue, size=2, after=after):
        pages.append([m["id"] for m in page])
        after = page[-1]["id"]
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    assert peek(client, queue, after=ids[-1]) == []
    assert len(peek(client, queue)) == 5  # default size 10


# -- sending ----------------------------------------------------------------------


def test_send_by_name_returns_the_id(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.post("/messages", json={"queue_name": queue["name"], "body": "hello"})
    assert r.status_code == 200, r.text
    sent = r.json()
    assert isinstance(sent["id"], int)
    assert isinstance(sent["message_id"], str) and sent["message_id"]
    (stored,) = peek(client, queue)
    assert stored["id"] == sent["id"]
    assert stored["body"] == "hello"


def test_send_by_id_with_form_body(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.post("/messages", data={"queue_id": str(queue["id"]), "body": "héllo wörld"}, headers=FORM_AUTH)
    assert r.status_code == 200, r.text
    (stored,) = peek(client, queue)
    assert stored["id"] == r.json()["id"]
    assert stored["body"] == "héllo wörld"


def test_send_keeps_the_body_verbatim(client: httpx.Client, queue: dict[str, Any]) -> None:
    body = '{"nested": "json"} \n\t ünïcödé € 🎉'
    send(client, queue, body)
    (got,) = consume(client, queue)
    assert got["body"] == body


def test_send_batch_of_ten_in_order(client: httpx.Client, queue: dict[str, Any]) -> None:
    messages = [{"body": f"m{i}"} for i in range(10)]
    r = client.post("/messages", json={"queue_id": queue["id"], "messages": messages})
    assert r.status_code == 200, r.text
    ids = r.json()["ids"]
    assert len(ids) == 10
    assert ids == sorted(ids)
    stored = peek(client, queue)
    assert [m["id"] for m in stored] == ids
    assert [m["body"] for m in stored] == [f"m{i}" for i in range(10)]


def test_send_batch_with_delays(client: httpx.Client, queue: dict[str, Any]) -> None:
    messages = [{"body": "now"}, {"body": "later", "delay_seconds": 900}]
    r = client.post("/messages", json={"queue_name": queue["name"], "messages": messages})
    assert r.status_code == 200, r.text
    assert [m["body"] for m in consume(client, queue, size=10)] == ["now"]
    assert stats(client, queue)["delayed_size"] == 1


def test_send_with_delay_seconds(client: httpx.Client, queue: dict[str, Any]) -> None:
    send(client, queue, "delayed", delay_seconds=1)
    (stored,) = peek(client, queue)
    assert when(stored["retrievable_at"]) - when(stored["created_at"]) == timedelta(seconds=1)
    assert consume(client, queue) == []
    assert stats(client, queue)["delayed_size"] == 1

    started = time.monotonic()
    (got,) = consume(client, queue, wait_time=5)  # a long poll picks it up once it is due
    assert time.monotonic() - started < 3
    assert got["body"] == "delayed"


def test_queue_delay_is_the_default_and_a_message_delay_overrides_it(client: httpx.Client) -> None:
    q = create_queue(client, delay_seconds=900)
    send(client, q, "queue default")
    send(client, q, "no delay", delay_seconds=0)
    assert [m["body"] for m in consume(client, q, size=10)] == ["no delay"]
    assert stats(client, q)["delayed_size"] == 1


@pytest.mark.parametrize("blank", [None, ""], ids=["null", "empty"])
def test_blank_delay_seconds_means_the_queue_default(client: httpx.Client, blank: str | None) -> None:
    q = create_queue(client, delay_seconds=900)
    send(client, q, "blank delay", delay_seconds=blank)
    (stored,) = peek(client, q)
    assert when(stored["retrievable_at"]) - when(stored["created_at"]) == timedelta(seconds=900)
    assert consume(client, q) == []


@pytest.mark.parametrize("blank", [None, ""], ids=["null", "empty"])
def test_blank_delay_seconds_in_a_batch_item_means_the_default(
    client: httpx.Client, blank: str | None
) -> None:
    q = create_queue(client, delay_seconds=900)
    batch = [{"body": "blank delay", "delay_seconds": blank}]
    r = client.post("/messages", json={"queue_id": q["id"], "messages": batch})
    assert r.status_code == 200, r.text
    (stored,) = peek(client, q)
    assert when(stored["retrievable_at"]) - when(stored["created_at"]) == timedelta(seconds=900)
    assert consume(client, q) == []


# -- consuming ----------------------------------------------------------------------


def test_consume_defaults_to_one_message_for_30_seconds(client: httpx.Client, queue: dict[str, Any]) -> None:
    ids = [send(client, queue, f"m{i}") for i in range(3)]
    r = client.get("/messages/consume", params={"queue_name": queue["name"]})  # default wait_time too
    assert r.status_code == 200, r.text
    (got,) = r.json()
    assert set(got) >= MESSAGE_KEYS
    assert got["id"] == ids[0]
    assert got["queue_id"] == queue["id"]
    assert got["body"] == "m0"
    assert got["receive_count"] == 1
    assert isinstance(got["reservation_token"], str) and got["reservation_token"]
    assert when(got["retrievable_at"]) - when(got["first_received_at"]) == timedelta(seconds=30)
    assert when(got["created_at"]) <= when(got["first_received_at"])


def test_consume_by_queue_id_with_size(client: httpx.Client, queue: dict[str, Any]) -> None:
    ids = [send(client, queue, f"m{i}") for i in range(12)]
    r = client.get("/messages/consume", params={"queue_id": queue["id"], "size": 10, "wait_time": 0})
    assert r.status_code == 200, r.text
    got = r.json()
    assert [m["id"] for m in got] == ids[:10]
    assert len({m["reservation_token"] for m in got}) == 10
    assert [m["id"] for m in consume(client, queue, size=10)] == ids[10:]


def test_consumed_messages_stay_hidden_until_their_timeout(
    client: httpx.Client, queue: dict[str, Any]
) -> None:
    send(client, queue)
    assert len(consume(client, queue, visibility_timeout=600)) == 1
    assert consume(client, queue, size=10) == []
    row = stats(client, queue)
    assert (row["retrievable_size"], row["in_flight_size"]) == (0, 1)


def test_visibility_timeout_zero_redelivers_with_a_new_token(
    client: httpx.Client, queue: dict[str, Any]
) -> None:
    send(client, queue)
    (first,) = consume(client, queue, visibility_timeout=0)
    (second,) = consume(client, queue, visibility_timeout=0)
    assert first["id"] == second["id"]
    assert (first["receive_count"], second["receive_count"]) == (1, 2)
    assert first["reservation_token"] != second["reservation_token"]
    assert second["first_received_at"] == first["first_received_at"]


def test_wait_time_zero_returns_at_once(client: httpx.Client, queue: dict[str, Any]) -> None:
    started = time.monotonic()
    assert consume(client, queue, wait_time=0) == []
    assert time.monotonic() - started < 0.5


def test_wait_time_waits_then_returns_empty(client: httpx.Client, queue: dict[str, Any]) -> None:
    started = time.monotonic()
    assert consume(client, queue, wait_time=1) == []
    assert 0.9 <= time.monotonic() - started < 3


def test_long_poll_returns_as_soon_as_a_message_arrives(
    broker: InProcess, client: httpx.Client, queue: dict[str, Any]
) -> None:
    def long_poll() -> tuple[float, list[dict[str, Any]]]:
        with broker.client() as other:
            started = time.monotonic()
            r = other.get("/messages/consume", params={"queue_name": queue["name"], "wait_time": 10})
            return time.monotonic() - started, r.json()

    with ThreadPoolExecutor(1) as pool:
        polling = pool.submit(long_poll)
        time.sleep(0.3)
        send(client, queue, "wake up")
        elapsed, got = polling.result(timeout=15)
    assert [m["body"] for m in got] == ["wake up"]
    assert elapsed < 3


# -- deleting and changing visibility ----------------------------------------------


def test_delete_message_without_token(client: httpx.Client, queue: dict[str, Any]) -> None:
    message_id = send(client, queue)
    r = client.delete(f"/messages/{message_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True}
    assert peek(client, queue) == []


def test_delete_message_with_its_current_token(client: httpx.Client, queue: dict[str, Any]) -> None:
    send(client, queue)
    (got,) = consume(client, queue)
    r = client.delete(f"/messages/{got['id']}", params={"reservation_token": got["reservation_token"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True}
    assert peek(client, queue) == []
    assert stats(client, queue)["in_flight_size"] == 0


def test_delete_message_with_token_in_a_json_body(client: httpx.Client, queue: dict[str, Any]) -> None:
    send(client, queue)
    (got,) = consume(client, queue)
    r = client.request(
        "DELETE", f"/messages/{got['id']}", json={"reservation_token": got["reservation_token"]}
    )
    assert r.status_code == 200, r.text
    assert peek(client, queue) == []


def test_stale_token_cannot_delete_after_redelivery(client: httpx.Client, queue: dict[str, Any]) -> None:
    send(client, queue)
    (mine,) = consume(client, queue, visibility_timeout=0)
    (theirs,) = consume(client, queue, visibility_timeout=600)  # someone else received it again
    r = client.delete(f"/messages/{mine['id']}", params={"reservation_token": mine["reservation_token"]})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "stale_token"
    assert len(peek(client, queue)) == 1  # still there for its current holder
    r = client.delete(f"/messages/{theirs['id']}", params={"reservation_token": theirs["reservation_token"]})
    assert r.status_code == 200, r.text


def test_change_visibility_extends_the_timeout(client: httpx.Client, queue: dict[str, Any]) -> None:
    send(client, queue)
    (got,) = consume(client, queue, visibility_timeout=5)
    r = client.post(
        f"/messages/{got['id']}/visibility",
        json={"reservation_token": got["reservation_token"], "visibility_timeout": 600},
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert set(changed) >= MESSAGE_KEYS
    assert changed["id"] == got["id"]
    assert changed["reservation_token"] == got["reservation_token"]
    assert when(changed["retrievable_at"]) - when(got["retrievable_at"]) > timedelta(seconds=590)
    assert consume(client, queue) == []


def test_change_visibility_to_zero_releases_at_once(client: httpx.Client, queue: dict[str, Any]) -> None:
    send(client, queue)
    (got,) = consume(client, queue, visibility_timeout=600)
    r = client.post(
        f"/messages/{got['id']}/visibility",
        data={"reservation_token": got["reservation_token"], "visibility_timeout": "0"}, headers=FORM_AUTH,
    )
    assert r.status_code == 200, r.text
    assert stats(client, queue)["retrievable_size"] == 1
    (again,) = consume(client, queue)
    assert again["id"] == got["id"]
    assert again["receive_count"] == 2
    assert again["reservation_token"] != got["reservation_token"]


def test_stale_token_cannot_change_visibility(client: httpx.Client, queue: dict[str, Any]) -> None:
    send(client, queue)
    (mine,) = consume(client, queue, visibility_timeout=600)
    client.post(
        f"/messages/{mine['id']}/visibility",
        json={"reservation_token": mine["reservation_token"], "visibility_timeout": 0},
    ).raise_for_status()
    consume(client, queue, visibility_timeout=600)  # someone else holds it now
    r = client.post(
        f"/messages/{mine['id']}/visibility",
        json={"reservation_token": mine["reservation_token"], "visibility_timeout": 0},
    )
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "stale_token"
    assert consume(client, queue) == []  # the stale holder did not release it


# -- redrive ------------------------------------------------------------------------


def test_redrive_moves_a_message_to_the_dead_letter_queue(client: httpx.Client) -> None:
    dlq = create_queue(client, unique("dlq"))
    source = create_queue(client, redrive_target=dlq["name"], max_receive_count=2)
    message_id = send(client, source, "poison")

    for count in (1, 2):
        (got,) = consume(client, source, visibility_timeout=0)
        assert (got["id"], got["receive_count"]) == (message_id, count)
    assert consume(client, source, visibility_timeout=0) == []  # the third receive moves it

    assert peek(client, source) == []
    (moved,) = peek(client, dlq)
    assert (moved["id"], moved["body"], moved["queue_id"]) == (message_id, "poison", dlq["id"])
    assert stats(client, dlq)["retrievable_size"] == 1
    (got,) = consume(client, dlq)
    assert got["body"] == "poison"


def test_redrive_keeps_delivering_other_messages(client: httpx.Client) -> None:
    dlq = create_queue(client, unique("dlq"))
    source = create_queue(client, redrive_target=dlq["name"], max_receive_count=1)
    poison = send(client, source, "poison")
    assert [m["id"] for m in consume(client, source, visibility_timeout=0)] == [poison]
    fresh = send(client, source, "fresh")
    assert [m["id"] for m in consume(client, source, size=10)] == [fresh]
    assert [m["id"] for m in peek(client, dlq)] == [poison]


def test_consume_defaults_to_the_queues_visibility_timeout(client: httpx.Client) -> None:
    q = create_queue(client, visibility_timeout=0)
    client.post("/messages", json={"queue_id": q["id"], "body": "x"})
    params = {"queue_id": q["id"], "wait_time": 0}
    first = client.get("/messages/consume", params=params).json()
    again = client.get("/messages/consume", params=params).json()
    assert again[0]["id"] == first[0]["id"] and again[0]["receive_count"] == 2


def test_metrics_in_prometheus_format(client: httpx.Client) -> None:
    q = create_queue(client)
    client.post("/messages", json={"queue_id": q["id"], "body": "x"})
    got = client.get("/messages/consume", params={"queue_id": q["id"], "wait_time": 0}).json()
    client.delete(f"/messages/{got[0]['id']}")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for line in (
        f'wonderq_queue_messages{{queue="{q["name"]}"}} 0.0',
        f'wonderq_queue_messages_sent_total{{queue="{q["name"]}"}} 1.0',
        f'wonderq_queue_messages_received_total{{queue="{q["name"]}"}} 1.0',
        f'wonderq_queue_messages_deleted_total{{queue="{q["name"]}"}} 1.0',
    ):
        assert line in text, line
    for name in ("visible", "in_flight", "delayed", "oldest_message_age_seconds"):
        assert f'wonderq_queue_{name}{{queue="{q["name"]}"}}' in text
    assert 'wonderq_request_duration_seconds_count{endpoint="POST /messages"}' in text
    assert "wonderq_messages_redelivered_total" in text
