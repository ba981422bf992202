"""POST /messages/delete: many messages deleted in one request, each answered on its own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.broker.test_rest import consume, peek, send, stats


def delete_batch(client: httpx.Client, entries: list[dict[str, Any]]) -> httpx.Response:
    return client.post("/messages/delete", json={"messages": entries})


def entry(message: dict[str, Any]) -> dict[str, Any]:
    return {"id": message["id"], "reservation_token": message["reservation_token"]}


def test_deletes_every_message_it_names(client: httpx.Client, queue: dict[str, Any]) -> None:
    for i in range(10):
        send(client, queue, f"m{i}")
    got = consume(client, queue, size=10)
    assert len(got) == 10
    r = delete_batch(client, [entry(m) for m in got])
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": 10, "messages": [{"id": m["id"], "deleted": True} for m in got]}
    assert peek(client, queue) == []
    counts = stats(client, queue)
    assert (counts["queue_size"], counts["in_flight_size"], counts["deleted"]) == (0, 0, 10)


def test_one_bad_entry_fails_only_itself(client: httpx.Client, queue: dict[str, Any]) -> None:
    for i in range(3):
        send(client, queue, f"m{i}")
    first = consume(client, queue, size=3, visibility_timeout=0)  # at once visible again
    again = consume(client, queue, size=3, visibility_timeout=600)  # received again: first's tokens are stale
    assert sorted(m["id"] for m in again) == sorted(m["id"] for m in first)
    held = {m["id"]: m for m in again}
    stale, current, other = first[0], held[first[1]["id"]], held[first[2]["id"]]
    missing = max(held) + 1_000_000
    r = delete_batch(client, [entry(stale), entry(current), {"id": missing, "reservation_token": "x"},
                              {"id": other["id"]}])  # no token: deleted unconditionally, as DELETE does
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["deleted"] == 2
    answers = body["messages"]
    assert [a["id"] for a in answers] == [stale["id"], current["id"], missing, other["id"]]
    assert [a["deleted"] for a in answers] == [False, True, False, True]
    assert answers[0]["error"]["code"] == "stale_token"
    assert answers[2]["error"]["code"] == "message_not_found"
    assert "error" not in answers[1] and "error" not in answers[3]
    assert [m["id"] for m in peek(client, queue)] == [stale["id"]]  # still there for its holder
    r = delete_batch(client, [entry(held[stale["id"]])])
    assert r.json()["deleted"] == 1


def test_the_same_message_twice_is_deleted_once(client: httpx.Client, queue: dict[str, Any]) -> None:
    send(client, queue)
    (got,) = consume(client, queue)
    r = delete_batch(client, [entry(got), entry(got)])
    assert r.status_code == 200, r.text
    answers = r.json()["messages"]
    assert sorted(a["deleted"] for a in answers) == [False, True]
    assert r.json()["deleted"] == 1


@pytest.mark.parametrize("payload", [
    {},
    {"messages": []},
    {"messages": "1,2"},
    {"messages": [{"id": i} for i in range(1, 12)]},  # 11: past the batch limit
    {"messages": [7]},
    {"messages": [{"reservation_token": "t"}]},
    {"messages": [{"id": 0}]},
    {"messages": [{"id": "seven"}]},
    {"messages": [{"id": 1, "reservation_token": 5}]},
])
def test_malformed_requests_are_refused_whole(
    client: httpx.Client, queue: dict[str, Any], payload: dict[str, Any]
) -> None:
    send(client, queue)
    r = client.post("/messages/delete", json=payload)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_parameter"
    assert len(peek(client, queue)) == 1


def test_the_metric_counts_only_what_was_deleted(client: httpx.Client, queue: dict[str, Any]) -> None:
    def deleted_total() -> float:
        text = client.get("/metrics").text
        line = next(x for x in text.splitlines() if x.startswith("wonderq_messages_deleted_total "))
        return float(line.split()[1])

    send(client, queue)
    (got,) = consume(client, queue)
    before = deleted_total()
    delete_batch(client, [entry(got), {"id": got["id"] + 1_000_000}])
    assert deleted_total() == before + 1


def test_a_misspelt_token_is_refused_not_taken_for_none(client: httpx.Client, queue: dict[str, Any]) -> None:
    """Without a token a delete checks nothing: a misspelt one must not pass for none."""
    send(client, queue)
    (held,) = consume(client, queue, size=1)
    r = delete_batch(client, [{"id": held["id"], "reservation_tokn": "0000000000000000-1"}])
    assert r.status_code == 400 and "did you mean" in r.json()["error"]["message"], r.text
    assert stats(client, queue)["in_flight_size"] == 1
