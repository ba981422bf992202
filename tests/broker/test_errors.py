"""Every error path over HTTP: the right status, the stable error envelope
``{"error": {"code": ..., "message": ...}}``, and never a traceback.

One broker app per backend serves the whole module, in this process (see
``conftest.py``), so every test works on its own uniquely named queues.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import FORM_AUTH, create_queue, unique

UNKNOWN_ID = 999_999_999


def receive(client: httpx.Client, queue: dict[str, Any], **params: Any) -> dict[str, Any]:
    """Send one message and receive it: the received message."""
    r = client.post("/messages", json={"queue_id": queue["id"], "body": "x"})
    assert r.status_code == 200, r.text
    r = client.get("/messages/consume", params={"queue_id": queue["id"], "wait_time": 0, **params})
    assert r.status_code == 200, r.text
    (message,) = r.json()
    return dict(message)


def stored(client: httpx.Client, queue: dict[str, Any]) -> list[dict[str, Any]]:
    r = client.get(f"/queues/{queue['id']}/messages")
    assert r.status_code == 200, r.text
    return list(r.json())


def assert_error(r: httpx.Response, status: int, code: str) -> str:
    """The response is the error envelope with this status and code; returns its message."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    envelope = r.json()
    assert set(envelope) == {"error"}, envelope
    assert set(envelope["error"]) == {"code", "message"}, envelope
    assert envelope["error"]["code"] == code, envelope
    message = envelope["error"]["message"]
    assert isinstance(message, str) and message
    assert "Traceback" not in r.text
    assert 'File "' not in r.text
    return message


def post_raw(client: httpx.Client, url: str, content: bytes, content_type: str) -> httpx.Response:
    return client.post(url, content=content, headers={"content-type": content_type})


# -- malformed requests ----------------------------------------------------------


@pytest.mark.parametrize("url", ["/queues", "/messages"])
@pytest.mark.parametrize(
    "content",
    [b"{", b'{"name": "x",}', b"{'name': 'x'}", b"not json", b'{"body": "\\ud800"}', b"\xff\xfe"],
    ids=["unclosed", "trailing-comma", "single-quotes", "text", "lone-surrogate", "not-utf8"],
)
def test_malformed_json(client: httpx.Client, url: str, content: bytes) -> None:
    assert_error(post_raw(client, url, content, "application/json"), 400, "bad_request")


def test_malformed_json_without_content_type(client: httpx.Client) -> None:
    r = client.post("/messages", content=b"{oops")
    assert_error(r, 400, "bad_request")


@pytest.mark.parametrize("url", ["/queues", "/messages"])
@pytest.mark.parametrize("content", [b"[]", b'["a"]', b'"text"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object(client: httpx.Client, url: str, content: bytes) -> None:
    message = assert_error(post_raw(client, url, content, "application/json"), 400, "bad_request")
    assert "object" in message


def test_change_visibility_json_must_be_an_object(client: httpx.Client, queue: dict[str, Any]) -> None:
    m = receive(client, queue)
    r = post_raw(client, f"/messages/{m['id']}/visibility", b"[1, 2]", "application/json")
    assert_error(r, 400, "bad_request")


# -- sending: body and queue --------------------------------------------------------


def test_missing_body(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.post("/messages", json={"queue_id": queue["id"]})
    assert "body" in assert_error(r, 400, "invalid_parameter")
    assert stored(client, queue) == []


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_empty_body(client: httpx.Client, queue: dict[str, Any], encoding: str) -> None:
    fields = {"queue_id": str(queue["id"]), "body": ""}
    r = (client.post("/messages", json=fields) if encoding == "json"
         else client.post("/messages", data=fields, headers=FORM_AUTH))
    assert "body" in assert_error(r, 400, "invalid_parameter")
    assert stored(client, queue) == []


@pytest.mark.parametrize("body", [None, 42, 1.5, True, ["a"], {"a": 1}], ids=repr)
def test_non_string_body(client: httpx.Client, queue: dict[str, Any], body: Any) -> None:
    r = client.post("/messages", json={"queue_id": queue["id"], "body": body})
    assert "body" in assert_error(r, 400, "invalid_parameter")
    assert stored(client, queue) == []


def test_empty_request_body(client: httpx.Client) -> None:
    r = post_raw(client, "/messages", b"", "application/json")
    assert "queue_id or queue_name" in assert_error(r, 400, "invalid_parameter")


def test_send_without_queue(client: httpx.Client) -> None:
    r = client.post("/messages", json={"body": "orphan"})
    assert "queue_id or queue_name" in assert_error(r, 400, "invalid_parameter")


def test_consume_without_queue(client: httpx.Client) -> None:
    r = client.get("/messages/consume", params={"wait_time": 0})
    assert "queue_id or queue_name" in assert_error(r, 400, "invalid_parameter")


@pytest.mark.parametrize(
    "queue_id", ["abc", "1.5", "0", "-1", "99999999999999999999", 1.5, True, [1]], ids=repr
)
def test_bad_queue_id(client: httpx.Client, queue_id: Any) -> None:
    r = client.post("/messages", json={"queue_id": queue_id, "body": "x"})
    assert "queue_id" in assert_error(r, 400, "invalid_parameter")


@pytest.mark.parametrize("delay", ["abc", -1, 901, 1.5], ids=repr)
def test_bad_delay_seconds(client: httpx.Client, queue: dict[str, Any], delay: Any) -> None:
    r = client.post("/messages", json={"queue_id": queue["id"], "body": "x", "delay_seconds": delay})
    assert "delay_seconds" in assert_error(r, 400, "invalid_parameter")
    assert stored(client, queue) == []


# -- sending: sizes -------------------------------------------------------------------


def test_body_over_the_default_max_message_size(client: httpx.Client, queue: dict[str, Any]) -> None:
    limit = queue["max_message_size"]
    ok = client.post("/messages", json={"queue_id": queue["id"], "body": "a" * limit})
    assert ok.status_code == 200, ok.text
    r = client.post("/messages", json={"queue_id": queue["id"], "body": "a" * (limit + 1)})
    assert_error(r, 413, "payload_too_large")
    assert len(stored(client, queue)) == 1


@pytest.mark.parametrize(
    ("char", "fits"),
    [("a", 1024), ("é", 512), ("€", 341), ("🎉", 256)],
    ids=["1-byte", "2-byte", "3-byte", "4-byte"],
)
def test_body_over_a_small_max_message_size_counts_utf8_bytes(
    client: httpx.Client, char: str, fits: int
) -> None:
    q = create_queue(client, max_message_size=1024)
    ok = client.post("/messages", json={"queue_id": q["id"], "body": char * fits})
    assert ok.status_code == 200, ok.text
    r = client.post("/messages", json={"queue_id": q["id"], "body": char * (fits + 1)})
    assert "1024" in assert_error(r, 413, "payload_too_large")
    assert [m["body"] for m in stored(client, q)] == [char * fits]


def test_form_body_over_max_message_size(client: httpx.Client) -> None:
    q = create_queue(client, max_message_size=1024)
    r = client.post("/messages", data={"queue_name": q["name"], "body": "é" * 513}, headers=FORM_AUTH)
    assert_error(r, 413, "payload_too_large")


def test_batch_with_one_body_too_large_stores_nothing(client: httpx.Client) -> None:
    q = create_queue(client, max_message_size=1024)
    batch = [{"body": "small"}, {"body": "x" * 1025}, {"body": "small too"}]
    r = client.post("/messages", json={"queue_id": q["id"], "messages": batch})
    assert_error(r, 413, "payload_too_large")
    assert stored(client, q) == []


def test_request_over_16_mib(client: httpx.Client, queue: dict[str, Any]) -> None:
    body = "a" * (16 * 1024 * 1024 + 1)
    r = client.post("/messages", json={"queue_id": queue["id"], "body": body})
    assert_error(r, 413, "payload_too_large")
    assert stored(client, queue) == []


# -- sending: batches -------------------------------------------------------------------


def test_batch_of_eleven(client: httpx.Client, queue: dict[str, Any]) -> None:
    batch = [{"body": f"m{i}"} for i in range(11)]
    r = client.post("/messages", json={"queue_id": queue["id"], "messages": batch})
    assert "messages" in assert_error(r, 400, "invalid_parameter")
    assert stored(client, queue) == []


@pytest.mark.parametrize("messages", [[], "m1", {"body": "x"}, None], ids=repr)
def test_batch_that_is_not_a_list_of_one_to_ten(
    client: httpx.Client, queue: dict[str, Any], messages: Any
) -> None:
    r = client.post("/messages", json={"queue_id": queue["id"], "messages": messages})
    assert_error(r, 400, "invalid_parameter")


@pytest.mark.parametrize(
    "bad_item",
    [{}, {"delay_seconds": 0}, {"body": ""}, {"body": 7}, "just a string", None],
    ids=["empty", "no-body", "empty-body", "int-body", "string", "null"],
)
def test_batch_item_without_a_valid_body_stores_nothing(
    client: httpx.Client, queue: dict[str, Any], bad_item: Any
) -> None:
    batch = [{"body": "fine"}, bad_item, {"body": "also fine"}]
    r = client.post("/messages", json={"queue_id": queue["id"], "messages": batch})
    assert_error(r, 400, "invalid_parameter")
    assert stored(client, queue) == []


def test_batch_to_unknown_queue(client: httpx.Client) -> None:
    r = client.post("/messages", json={"queue_name": unique("ghost"), "messages": [{"body": "x"}]})
    assert_error(r, 404, "queue_not_found")


# -- consuming: parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("size", "abc"), ("size", "1.5"), ("size", "0"), ("size", "11"), ("size", "-1"),
        ("wait_time", "abc"), ("wait_time", "-1"), ("wait_time", "21"),
        ("visibility_timeout", "abc"), ("visibility_timeout", "-1"), ("visibility_timeout", "43201"),
    ],
)
def test_bad_consume_parameter(client: httpx.Client, queue: dict[str, Any], name: str, value: str) -> None:
    client.post("/messages", json={"queue_id": queue["id"], "body": "x"}).raise_for_status()
    r = client.get("/messages/consume", params={"queue_id": queue["id"], "wait_time": 0, name: value})
    assert name in assert_error(r, 400, "invalid_parameter")
    assert stored(client, queue)[0]["receive_count"] == 0  # nothing was received


@pytest.mark.parametrize(
    ("name", "value"),
    [("size", 1), ("size", 10), ("wait_time", 0), ("visibility_timeout", 0), ("visibility_timeout", 43200)],
)
def test_consume_parameter_bounds_are_inclusive(
    client: httpx.Client, queue: dict[str, Any], name: str, value: int
) -> None:
    r = client.get("/messages/consume", params={"queue_id": queue["id"], "wait_time": 0, name: value})
    assert r.status_code == 200, r.text


# -- queues: names and attributes ------------------------------------------------------------


BAD_NAMES = {
    "81-chars": "x" * 81,
    "81-chars-fifo": "y" * 76 + ".fifo",
    "space": "has space",
    "dot": "a.b",
    "slash": "a/b",
    "non-ascii": "ünï",
    "only-fifo": ".fifo",
    "double-fifo": "a.fifo.fifo",
    "empty": "",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_create_queue_with_bad_name(client: httpx.Client, name: str) -> None:
    assert "name" in assert_error(client.post("/queues", json={"name": name}), 400, "invalid_parameter")
    assert name not in [q["name"] for q in client.get("/queues").json()]


@pytest.mark.parametrize("name", [None, 42, ["a"]], ids=repr)
def test_create_queue_with_missing_or_non_string_name(client: httpx.Client, name: Any) -> None:
    assert_error(client.post("/queues", json={"name": name}), 400, "invalid_parameter")


def test_create_queue_without_any_body(client: httpx.Client) -> None:
    assert_error(client.post("/queues"), 400, "invalid_parameter")


@pytest.mark.parametrize("name", ["has space", "x" * 81], ids=["space", "81-chars"])
def test_bad_queue_name_when_referring_to_a_queue(client: httpx.Client, name: str) -> None:
    assert_error(client.post("/messages", json={"queue_name": name, "body": "x"}), 400, "invalid_parameter")
    r = client.get("/messages/consume", params={"queue_name": name, "wait_time": 0})
    assert_error(r, 400, "invalid_parameter")
    assert_error(client.get("/queues/find", params={"name": name}), 400, "invalid_parameter")
    assert_error(client.delete(f"/queues/{name}"), 400, "invalid_parameter")
    assert_error(client.post(f"/queues/{name}/purge"), 400, "invalid_parameter")
    assert_error(client.get(f"/queues/{name}/messages"), 400, "invalid_parameter")


def test_duplicate_queue(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.post("/queues", json={"name": queue["name"], "visibility_timeout": 5})
    assert queue["name"] in assert_error(r, 409, "queue_exists")
    assert client.get("/queues/find", params={"name": queue["name"]}).json() == queue


def test_duplicate_queue_by_form(client: httpx.Client, queue: dict[str, Any]) -> None:
    assert_error(client.post("/queues", data={"name": queue["name"]}, headers=FORM_AUTH), 409, "queue_exists")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("visibility_timeout", -1), ("visibility_timeout", 43201), ("visibility_timeout", "abc"),
        ("delay_seconds", -1), ("delay_seconds", 901),
        ("retention_seconds", 59), ("retention_seconds", 1_209_601),
        ("max_message_size", 1023), ("max_message_size", 1_048_577), ("max_message_size", 1.5),
        ("max_receive_count", -1), ("max_receive_count", 1001),
    ],
)
def test_queue_attribute_out_of_range(client: httpx.Client, name: str, value: Any) -> None:
    queue_name = unique()
    fields = {"name": queue_name, name: value}
    if name == "max_receive_count":
        fields["redrive_target"] = unique("dlq")
    assert name in assert_error(client.post("/queues", json=fields), 400, "invalid_parameter")
    assert client.get("/queues/find", params={"name": queue_name}).status_code == 404


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_max_receive_count_without_redrive_target(client: httpx.Client, encoding: str) -> None:
    fields = {"name": unique(), "max_receive_count": "3"}
    r = (client.post("/queues", json=fields) if encoding == "json"
         else client.post("/queues", data=fields, headers=FORM_AUTH))
    assert "redrive_target" in assert_error(r, 400, "invalid_parameter")
    assert client.get("/queues/find", params={"name": fields["name"]}).status_code == 404


def test_bad_redrive_target_name(client: httpx.Client) -> None:
    r = client.post("/queues", json={"name": unique(), "redrive_target": "bad name", "max_receive_count": 2})
    assert "redrive_target" in assert_error(r, 400, "invalid_parameter")


def test_redrive_target_must_be_another_existing_queue(client: httpx.Client) -> None:
    name = unique()
    for target in (unique("missing"), name):
        r = client.post("/queues", json={"name": name, "redrive_target": target, "max_receive_count": 2})
        assert "redrive_target" in assert_error(r, 400, "invalid_parameter")
    assert client.get("/queues/find", params={"name": name}).status_code == 404


def test_all_digit_queue_name_is_refused(client: httpx.Client) -> None:
    assert "digits" in assert_error(client.post("/queues", json={"name": "123"}), 400, "invalid_parameter")


@pytest.mark.parametrize("params", [{}, {"name": ""}, {"id": ""}], ids=["none", "empty-name", "empty-id"])
def test_find_queue_needs_a_name_or_id(client: httpx.Client, params: dict[str, str]) -> None:
    assert_error(client.get("/queues/find", params=params), 400, "invalid_parameter")


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5"])
def test_find_queue_with_bad_id(client: httpx.Client, value: str) -> None:
    assert "id" in assert_error(client.get("/queues/find", params={"id": value}), 400, "invalid_parameter")


# -- unknown queues: every endpoint that takes one ----------------------------------------


def unknown_queue_requests() -> Iterator[Any]:
    """A request to every endpoint that takes a queue, by a name and an id no queue has."""
    for by, ref in (("name", "no-such-queue"), ("id", UNKNOWN_ID)):
        field = f"queue_{by}"
        yield pytest.param("POST", "/messages", {"json": {field: ref, "body": "x"}}, id=f"send-{by}")
        batch = {"json": {field: ref, "messages": [{"body": "x"}]}}
        yield pytest.param("POST", "/messages", batch, id=f"send-batch-{by}")
        consume = {"params": {field: ref, "wait_time": 0}}
        yield pytest.param("GET", "/messages/consume", consume, id=f"consume-{by}")
        long_poll = {"params": {field: ref}}  # must answer at once, not after the default wait
        yield pytest.param("GET", "/messages/consume", long_poll, id=f"consume-default-wait-{by}")
        yield pytest.param("GET", "/queues/find", {"params": {by: ref}}, id=f"find-{by}")
        yield pytest.param("DELETE", f"/queues/{ref}", {}, id=f"delete-queue-{by}")
        yield pytest.param("POST", f"/queues/{ref}/purge", {}, id=f"purge-{by}")
        yield pytest.param("GET", f"/queues/{ref}/messages", {}, id=f"peek-{by}")


@pytest.mark.parametrize(("method", "url", "kwargs"), list(unknown_queue_requests()))
def test_unknown_queue(client: httpx.Client, method: str, url: str, kwargs: dict[str, Any]) -> None:
    r = client.request(method, url, timeout=5, **kwargs)
    assert_error(r, 404, "queue_not_found")


def test_deleted_queue_is_unknown(client: httpx.Client, queue: dict[str, Any]) -> None:
    client.delete(f"/queues/{queue['id']}").raise_for_status()
    assert_error(client.delete(f"/queues/{queue['id']}"), 404, "queue_not_found")
    assert_error(client.delete(f"/queues/{queue['name']}"), 404, "queue_not_found")
    r = client.post("/messages", json={"queue_name": queue["name"], "body": "x"})
    assert_error(r, 404, "queue_not_found")
    r = client.get("/messages/consume", params={"queue_name": queue["name"], "wait_time": 0})
    assert_error(r, 404, "queue_not_found")


# -- messages: unknown, stale, bad parameters ------------------------------------------------


def test_unknown_message(client: httpx.Client) -> None:
    assert_error(client.delete(f"/messages/{UNKNOWN_ID}"), 404, "message_not_found")
    r = client.delete(f"/messages/{UNKNOWN_ID}", params={"reservation_token": "t"})
    assert_error(r, 404, "message_not_found")
    r = client.post(
        f"/messages/{UNKNOWN_ID}/visibility", json={"reservation_token": "t", "visibility_timeout": 0}
    )
    assert_error(r, 404, "message_not_found")


def test_deleted_message_is_unknown(client: httpx.Client, queue: dict[str, Any]) -> None:
    m = receive(client, queue)
    client.delete(f"/messages/{m['id']}").raise_for_status()
    assert_error(client.delete(f"/messages/{m['id']}"), 404, "message_not_found")
    r = client.post(
        f"/messages/{m['id']}/visibility",
        json={"reservation_token": m["reservation_token"], "visibility_timeout": 10},
    )
    assert_error(r, 404, "message_not_found")


@pytest.mark.parametrize("message_id", ["abc", "0", "-1", "1.5", "99999999999999999999"])
def test_bad_message_id(client: httpx.Client, message_id: str) -> None:
    assert_error(client.delete(f"/messages/{message_id}"), 400, "invalid_parameter")
    r = client.post(
        f"/messages/{message_id}/visibility", json={"reservation_token": "t", "visibility_timeout": 0}
    )
    assert_error(r, 400, "invalid_parameter")


def test_stale_token_on_delete(client: httpx.Client, queue: dict[str, Any]) -> None:
    mine = receive(client, queue, visibility_timeout=0)
    r = client.get("/messages/consume", params={"queue_id": queue["id"], "wait_time": 0})
    (theirs,) = r.json()  # someone else received it again
    assert theirs["reservation_token"] != mine["reservation_token"]

    r = client.delete(f"/messages/{mine['id']}", params={"reservation_token": mine["reservation_token"]})
    assert str(mine["id"]) in assert_error(r, 409, "stale_token")
    assert len(stored(client, queue)) == 1


def test_stale_token_on_change_visibility(client: httpx.Client, queue: dict[str, Any]) -> None:
    mine = receive(client, queue, visibility_timeout=600)
    token = mine["reservation_token"]
    release = {"reservation_token": token, "visibility_timeout": 0}
    client.post(f"/messages/{mine['id']}/visibility", json=release).raise_for_status()
    r = client.get("/messages/consume", params={"queue_id": queue["id"], "wait_time": 0})
    assert len(r.json()) == 1  # someone else holds it now

    r = client.post(f"/messages/{mine['id']}/visibility", json=release)
    assert_error(r, 409, "stale_token")
    r = client.delete(f"/messages/{mine['id']}", params={"reservation_token": token})
    assert_error(r, 409, "stale_token")


def test_made_up_token(client: httpx.Client, queue: dict[str, Any]) -> None:
    m = receive(client, queue)
    r = client.delete(f"/messages/{m['id']}", params={"reservation_token": "made-up"})
    assert_error(r, 409, "stale_token")
    r = client.post(
        f"/messages/{m['id']}/visibility", json={"reservation_token": "made-up", "visibility_timeout": 0}
    )
    assert_error(r, 409, "stale_token")


TOKEN = object()  # stands for the message's current reservation token


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"visibility_timeout": 0}, "reservation_token"),
        ({"reservation_token": 123, "visibility_timeout": 0}, "reservation_token"),
        ({"reservation_token": TOKEN}, "visibility_timeout"),
        ({"reservation_token": TOKEN, "visibility_timeout": "abc"}, "visibility_timeout"),
        ({"reservation_token": TOKEN, "visibility_timeout": 1.5}, "visibility_timeout"),
        ({"reservation_token": TOKEN, "visibility_timeout": -1}, "visibility_timeout"),
        ({"reservation_token": TOKEN, "visibility_timeout": 43201}, "visibility_timeout"),
    ],
    ids=["no-token", "int-token", "no-timeout", "text-timeout", "float-timeout", "negative", "too-long"],
)
def test_bad_change_visibility_parameters(
    client: httpx.Client, queue: dict[str, Any], fields: dict[str, Any], bad: str
) -> None:
    m = receive(client, queue, visibility_timeout=600)
    fields = {k: m["reservation_token"] if v is TOKEN else v for k, v in fields.items()}
    r = client.post(f"/messages/{m['id']}/visibility", json=fields)
    assert bad in assert_error(r, 400, "invalid_parameter")
    r = client.get("/messages/consume", params={"queue_id": queue["id"], "wait_time": 0})
    assert r.json() == []  # the message is still held


def test_non_string_reservation_token_on_delete(client: httpx.Client, queue: dict[str, Any]) -> None:
    m = receive(client, queue)
    r = client.request("DELETE", f"/messages/{m['id']}", json={"reservation_token": 123})
    assert "reservation_token" in assert_error(r, 400, "invalid_parameter")
    assert len(stored(client, queue)) == 1


# -- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/queues/jobs/nope"),
        ("GET", "/queues/jobs/messages/extra"),
        ("POST", "/messages/1/nope"),
        ("GET", "/messages/1/visibility/x"),
    ],
)
def test_unknown_route(client: httpx.Client, method: str, url: str) -> None:
    assert_error(client.request(method, url), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", "/queues"),
        ("DELETE", "/queues"),
        ("POST", "/queues/find"),
        ("GET", "/queues/jobs"),
        ("GET", "/queues/jobs/purge"),
        ("POST", "/queues/jobs/messages"),
        ("GET", "/messages"),
        ("POST", "/messages/consume"),
        ("GET", "/messages/1"),
        ("PATCH", "/messages/1"),
        ("GET", "/messages/1/visibility"),
        ("POST", "/healthz"),
        ("DELETE", "/readyz"),
    ],
)
def test_wrong_method(client: httpx.Client, method: str, url: str) -> None:
    assert method in assert_error(client.request(method, url), 405, "method_not_allowed")


def test_nul_in_a_body_is_refused(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.post("/messages", json={"queue_id": queue["id"], "body": "a\u0000b"})
    assert "NUL" in assert_error(r, 400, "invalid_parameter")


def test_a_purge_hidden_in_a_queue_name_purges_nothing(client: httpx.Client) -> None:
    """``%2F`` is part of a name, never a separator: POST /queues/q%2Fpurge is no purge of q."""
    name = unique("hidden")
    client.post("/queues", json={"name": name}).raise_for_status()
    client.post("/messages", json={"queue_name": name, "body": "kept"}).raise_for_status()
    r = client.post(f"/queues/{name}%2Fpurge")
    assert r.status_code in (400, 404, 405), r.text
    assert [m["body"] for m in client.get(f"/queues/{name}/messages").json()] == ["kept"]


def test_invalid_utf8_in_a_form_is_refused(client: httpx.Client, queue: dict[str, Any]) -> None:
    r = client.post("/messages", content=b"queue_name=" + queue["name"].encode() + b"&body=caf%E9",
                    headers={"content-type": "application/x-www-form-urlencoded", **FORM_AUTH})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"


def test_a_stale_token_is_not_called_received_again(client: httpx.Client, queue: dict[str, Any]) -> None:
    """A token that never was the message's gets the same 409, worded so it is true for both."""
    m = receive(client, queue)
    r = client.delete(f"/messages/{m['id']}", params={"reservation_token": "never-issued"})
    message = assert_error(r, 409, "stale_token")
    assert message == f"the token is not message {m['id']}'s current receipt token", message


@pytest.mark.parametrize("url", ["/healthz", "/readyz"])
def test_head_on_the_health_checks(client: httpx.Client, url: str) -> None:
    r = client.head(url)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"


def test_405_says_what_is_allowed(client: httpx.Client) -> None:
    r = client.post("/healthz")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert client.put("/queues").headers["allow"] == "GET, HEAD, POST"
    assert client.head("/queues").status_code == 200  # HEAD wherever a GET changes nothing


@pytest.mark.parametrize("token", ["\x00", "a\x00b"])
def test_token_with_nul_is_refused(client: httpx.Client, queue: dict[str, Any], token: str) -> None:
    """Found by schemathesis: PostgreSQL cannot compare text holding NUL, so such a
    token was a 500 there (and a batch retried alone); now 400 on both backends."""
    message = receive(client, queue)
    r = client.request("DELETE", f"/messages/{message['id']}", params={"reservation_token": token})
    assert_error(r, 400, "invalid_parameter")
    r = client.post(f"/messages/{message['id']}/visibility",
                    json={"reservation_token": token, "visibility_timeout": 0})
    assert_error(r, 400, "invalid_parameter")
    r = client.post("/messages/delete", json={"messages": [{"id": message["id"], "reservation_token": token}]})
    assert_error(r, 400, "invalid_parameter")
    r = client.request("DELETE", f"/messages/{message['id']}",
                       params={"reservation_token": message["reservation_token"]})
    assert r.status_code == 200, r.text
