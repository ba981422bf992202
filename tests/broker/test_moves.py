"""Move tasks through the REST API and the Python client: a dead-letter
queue's messages back to where they came from."""

from __future__ import annotations

import time

import httpx

from tests.conftest import unique


def poison(client: httpx.Client) -> tuple[str, str]:
    dead, work = unique("dead"), unique("work")
    client.post("/queues", json={"name": dead}).raise_for_status()
    client.post("/queues", json={"name": work, "redrive_target": dead, "max_receive_count": 1}).raise_for_status()
    client.post("/messages", json={"queue_name": work, "body": "poison"}).raise_for_status()
    for _ in range(2):
        client.get("/messages/consume", params={"queue_name": work, "wait_time": 0, "visibility_timeout": 0})
    return dead, work


def counts(client: httpx.Client, name: str) -> int:
    return int(next(q for q in client.get("/queues").json() if q["name"] == name)["queue_size"])


def test_move_back_through_rest(client: httpx.Client) -> None:
    dead, work = poison(client)
    assert counts(client, dead) == 1 and counts(client, work) == 0
    r = client.post(f"/queues/{dead}/move")
    assert r.status_code == 200, r.text
    assert r.json()["to_move"] == 1 and r.json()["status"] == "RUNNING" and r.json()["destination"] is None
    for _ in range(100):
        if counts(client, work) == 1:
            break
        time.sleep(0.02)
    assert counts(client, work) == 1 and counts(client, dead) == 0
    (m,) = client.get("/messages/consume", params={"queue_name": work, "wait_time": 0}).json()
    assert m["body"] == "poison" and m["receive_count"] == 1


def test_move_errors(client: httpx.Client) -> None:
    plain = unique("plain")
    client.post("/queues", json={"name": plain}).raise_for_status()
    r = client.post(f"/queues/{plain}/move")
    assert r.status_code == 400 and "dead-letter" in r.json()["error"]["message"]
    assert client.post(f"/queues/{unique('missing')}/move").status_code == 404
    dead, _ = poison(client)
    assert client.post(f"/queues/{dead}/move", json={"destination": unique("nowhere")}).status_code == 404


def test_a_move_goes_only_to_a_queue_of_its_kind(client: httpx.Client) -> None:
    """A standard queue's messages have no group to keep in a FIFO queue, and the other way round."""
    dead, _ = poison(client)
    fifo = unique("fifo") + ".fifo"
    client.post("/queues", json={"name": fifo}).raise_for_status()
    r = client.post(f"/queues/{dead}/move", json={"destination": fifo})
    assert r.status_code == 400 and "a FIFO queue" in r.json()["error"]["message"], r.text
    assert counts(client, dead) == 1 and counts(client, fifo) == 0
