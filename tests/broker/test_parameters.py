"""Unknown parameters and contradictory queue references are refused with a 400
that names them (and says "did you mean" when one is close); every parameter the
original WonderQ documents, and every one our own client sends, still passes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.broker.test_errors import assert_error, receive
from tests.conftest import FORM_AUTH, create_queue, unique


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "wrong", "meant"),
    [
        ("POST", "/queues", {"data": {"name": "typo", "visiblity_timeout": "60"}, "headers": FORM_AUTH},
         "visiblity_timeout", "visibility_timeout"),
        ("GET", "/messages/consume", {"params": {"queue_name": "jobs", "visibilty_timeout": "600"}},
         "visibilty_timeout", "visibility_timeout"),
        ("GET", "/messages/consume", {"params": {"queue_name": "jobs", "wait": "5"}}, "wait", "wait_time"),
        ("POST", "/messages", {"json": {"queue_name": "jobs", "bdy": "x"}}, "bdy", "body"),
        ("GET", "/queues/find", {"params": {"nam": "jobs"}}, "nam", "name"),
        ("GET", "/queues/jobs/messages", {"params": {"sise": "3"}}, "sise", "size"),
        ("DELETE", "/messages/1", {"params": {"reservation_tokn": "t"}}, "reservation_tokn", "reservation_token"),
    ],
)
def test_a_misspelt_parameter_is_named_with_a_guess(
    client: httpx.Client, method: str, url: str, kwargs: dict[str, Any], wrong: str, meant: str
) -> None:
    message = assert_error(client.request(method, url, **kwargs), 400, "invalid_parameter")
    assert f"unknown parameter '{wrong}' (did you mean '{meant}'?)" in message, message
    assert meant in message.rsplit("takes", 1)[1]  # and it lists what the endpoint takes


def test_a_misspelt_create_creates_nothing(client: httpx.Client) -> None:
    name = unique()
    client.post("/queues", data={"name": name, "visiblity_timeout": "60"}, headers=FORM_AUTH)
    assert client.get("/queues/find", params={"name": name}).status_code == 404


def test_unknown_parameters_without_a_guess(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.get("/queues", params={"zzz": "1", "qqq": "2"})
    message = assert_error(r, 400, "invalid_parameter")
    assert "unknown parameters 'zzz', 'qqq' for GET /queues: it takes none" in message, message
    r = client.post(f"/queues/{queue['name']}/purge", params={"force": "1"})
    assert "'force'" in assert_error(r, 400, "invalid_parameter")


def test_unknown_field_in_a_batch_message(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.post("/messages", json={"queue_id": queue["id"], "messages": [{"body": "a", "delay": 5}]})
    message = assert_error(r, 400, "invalid_parameter")
    assert "'delay' (did you mean 'delay_seconds'?) for each of messages" in message, message


@pytest.mark.parametrize(
    ("method", "url"), [("POST", "/messages"), ("GET", "/messages/consume")],
)
def test_queue_id_and_queue_name_together_contradict(
    client: httpx.Client, queue: dict[str, Any], method: str, url: str
) -> None:
    other = create_queue(client)
    both = {"queue_name": queue["name"], "queue_id": str(other["id"])}
    both |= {"wait_time": "0"} if method == "GET" else {"body": "x"}
    r = client.request(method, url, params=both)
    assert "queue_id and queue_name are both given" in assert_error(r, 400, "invalid_parameter")


def test_find_by_name_and_id_together_contradicts(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.get("/queues/find", params={"name": queue["name"], "id": queue["id"]})
    assert "name and id are both given" in assert_error(r, 400, "invalid_parameter")


def test_the_seeds_parameters_pass(client: httpx.Client) -> None:
    """Every parameter ../seed/WONDERQ.md names, on its endpoint, as its clients send them."""
    name = unique()
    q = client.post("/queues", data={"name": name}, headers=FORM_AUTH).json()
    assert client.get("/queues/find", params={"name": name}).status_code == 200
    assert client.get("/queues/find", params={"id": q["id"]}).status_code == 200
    for ref in ({"queue_id": q["id"]}, {"queue_name": name}):
        assert client.post("/messages", data={**ref, "body": "hello"}, headers=FORM_AUTH).status_code == 200
    r = client.get("/messages/consume",
                   params={"queue_name": name, "size": 2, "wait_time": 0, "visibility_timeout": 30})
    assert r.status_code == 200 and len(r.json()) == 2
    for m in r.json():
        assert client.delete(f"/messages/{m['id']}").status_code == 200
    assert client.get("/queues").status_code == 200
    assert client.get(f"/queues/{name}/messages", params={"size": 10}).status_code == 200


def test_every_documented_extra_passes(client: httpx.Client, queue: dict[str, Any]) -> None:
    """The parameters this broker adds (README): attributes, batches, tokens, paging."""
    dlq = create_queue(client)
    attributes = {"visibility_timeout": 5, "delay_seconds": 0, "retention_seconds": 60,
                  "max_message_size": 2048, "redrive_target": dlq["name"], "max_receive_count": 3}
    assert client.post("/queues", json={"name": unique(), **attributes}).status_code == 200
    r = client.post("/messages", json={"queue_id": queue["id"], "delay_seconds": 0,
                                       "messages": [{"body": "a", "delay_seconds": 0}]})
    assert r.status_code == 200, r.text
    m = receive(client, queue)
    token = {"reservation_token": m["reservation_token"]}
    r = client.post(f"/messages/{m['id']}/visibility", json={**token, "visibility_timeout": 10})
    assert r.status_code == 200, r.text
    assert client.delete(f"/messages/{m['id']}", params=token).status_code == 200
    assert client.get(f"/queues/{queue['id']}/messages", params={"size": 5, "after": 0}).status_code == 200


def test_a_body_and_a_batch_together_contradict(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.post("/messages", json={"queue_name": queue["name"], "messages": [{"body": "a"}], "body": "b"})
    assert "body and messages are both given: give only one" in assert_error(r, 400, "invalid_parameter")
    assert client.get(f"/queues/{queue['id']}/messages").json() == []  # neither was stored


def test_a_parameter_in_the_query_string_and_the_body_must_agree(client: httpx.Client) -> None:
    query, body = unique(), unique()
    r = client.post("/queues", params={"name": query}, json={"name": body})
    message = assert_error(r, 400, "invalid_parameter")
    assert "name is given in both the query string and the body, with different values" in message
    for name in (query, body):
        assert client.get("/queues/find", params={"name": name}).status_code == 404  # neither was made
    r = client.post("/queues", params={"name": query}, data={"name": body}, headers=FORM_AUTH)
    assert "name is given in both" in assert_error(r, 400, "invalid_parameter")
    # The same value twice says nothing new: taken (a JSON integer matches its digits too).
    r = client.post("/queues", params={"name": query, "delay_seconds": "5"}, json={"name": query, "delay_seconds": 5})
    assert (r.status_code, r.json()["delay_seconds"]) == (200, 5), r.text
    r = client.post("/messages", params={"queue_name": query}, json={"queue_name": query, "body": "x"})
    assert r.status_code == 200, r.text


def test_a_repeated_query_parameter_is_refused(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.get("/messages/consume?" + f"queue_name={queue['name']}&wait_time=0&size=1&size=2")
    message = assert_error(r, 400, "invalid_parameter")
    assert "size is given more than once in the query string: give each once" in message, message
    r = client.get(f"/queues/{queue['id']}/messages?size=1&after=0&size=1&after=0")
    assert "after, size are given more than once" in assert_error(r, 400, "invalid_parameter")
    form = {"content-type": "application/x-www-form-urlencoded", **FORM_AUTH}
    r = client.post("/queues", content=b"name=a&name=b", headers=form)
    assert "name is given more than once in the form body" in assert_error(r, 400, "invalid_parameter")


def test_a_missing_name_is_said_to_be_required(client: httpx.Client) -> None:
    for kwargs in ({}, {"json": {}}, {"json": {"name": None}}, {"json": {"name": ""}}, {"params": {"name": ""}}):
        assert assert_error(client.post("/queues", **kwargs), 400, "invalid_parameter") == "name is required"
    message = assert_error(client.post("/queues", json={"name": "no spaces"}), 400, "invalid_parameter")
    assert message.startswith("name must be 1-80 characters")


def test_an_empty_reservation_token_is_refused_not_taken_for_none(client: httpx.Client, queue: dict[str, Any]) -> None:
    m = receive(client, queue)
    r = client.delete(f"/messages/{m['id']}?reservation_token=")
    assert "reservation_token is empty" in assert_error(r, 400, "invalid_parameter")
    form = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer x"}  # a form needs one
    r = client.request("DELETE", f"/messages/{m['id']}", content=b"reservation_token=", headers=form)
    assert "reservation_token is empty" in assert_error(r, 400, "invalid_parameter")
    r = client.post("/messages/delete", json={"messages": [{"id": m["id"], "reservation_token": ""}]})
    assert "reservation_token is empty" in assert_error(r, 400, "invalid_parameter")
    r = client.post(f"/messages/{m['id']}/visibility", json={"reservation_token": "", "visibility_timeout": 0})
    assert "reservation_token is empty" in assert_error(r, 400, "invalid_parameter")
    peeked = client.get(f"/queues/{queue['id']}/messages").json()
    assert [(p["id"], p["state"]) for p in peeked] == [(m["id"], "in_flight")]  # still there, still held
    assert client.delete(f"/messages/{m['id']}").status_code == 200  # no token at all: unconditional


@pytest.mark.parametrize("value", ["99999999999999999999", "9223372036854775808", "-99999999999999999999",
                                   "9" * 5000])
def test_an_over_large_integer_is_said_to_be_out_of_range(client: httpx.Client, value: str) -> None:
    r = client.get("/queues/find", params={"id": value})
    message = assert_error(r, 400, "invalid_parameter")
    assert message.startswith("id must be between 1 and 9223372036854775807, not "), message


def test_an_over_large_json_integer_is_said_to_be_out_of_range(client: httpx.Client) -> None:
    r = client.post("/queues", content=b'{"name":"big","delay_seconds":99999999999999999999}',
                    headers={"content-type": "application/json"})
    assert "delay_seconds must be between 0 and 900" in assert_error(r, 400, "invalid_parameter")


def test_leading_zeros_are_still_an_integer(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.get("/queues/find", params={"id": "0" * 30 + str(queue["id"])})
    assert r.status_code == 200 and r.json()["name"] == queue["name"], r.text


def test_a_blank_query_parameter_is_still_a_parameter(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.get("/queues?sise=")
    assert "unknown parameter 'sise'" in assert_error(r, 400, "invalid_parameter")
    r = client.get(f"/queues/{queue['id']}/messages?size=&after=")  # blank: the defaults
    assert r.status_code == 200, r.text
