"""A request's parameters: the query string's and the body's together, none of them
silently dropped or overridden."""

from __future__ import annotations

import pytest

from wonderq.edge.requests import Params, Request
from wonderq.errors import BadRequest, InvalidParameter

FORM = [(b"content-type", b"application/x-www-form-urlencoded")]
JSON = [(b"content-type", b"application/json")]


async def never() -> dict[str, object]:
    raise AssertionError("not read")


def params(query: bytes = b"", body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Params:
    return Request("POST", "/", query, headers or JSON, body, never, {}).params


def test_either_alone() -> None:
    assert params() == {}
    assert params(b"a=1&b=x%20y") == {"a": "1", "b": "x y"}
    assert params(body=b'{"a": 1, "b": [2]}') == {"a": 1, "b": [2]}
    assert params(body=b"a=1&b=2", headers=FORM) == {"a": "1", "b": "2"}


def test_both_together() -> None:
    assert params(b"a=1", b'{"b": 2}') == {"a": "1", "b": 2}
    assert params(b"a=1", b"b=2", FORM) == {"a": "1", "b": "2"}


@pytest.mark.parametrize(("query", "body", "headers"), [
    (b"name=qs2", b'{"name": "qs3"}', JSON),
    (b"name=qs2", b"name=qs3", FORM),
    (b"size=1", b'{"size": 2}', JSON),
    (b"size=1", b'{"size": "2"}', JSON),
    (b"size=1", b'{"size": true}', JSON),
    (b"size=1", b'{"size": 1.0}', JSON),
])
def test_different_values_in_the_query_string_and_the_body_are_refused(
    query: bytes, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    name = query.split(b"=")[0].decode()
    with pytest.raises(InvalidParameter, match=f"^{name} is given in both the query string and the body"):
        params(query, body, headers)


@pytest.mark.parametrize(("query", "body", "headers", "expected"), [
    (b"name=qs2", b'{"name": "qs2"}', JSON, {"name": "qs2"}),
    (b"name=qs2", b"name=qs2", FORM, {"name": "qs2"}),
    (b"size=1&a=b", b'{"size": 1}', JSON, {"size": 1, "a": "b"}),  # a JSON integer matches its digits
])
def test_the_same_value_twice_is_taken(
    query: bytes, body: bytes, headers: list[tuple[bytes, bytes]], expected: Params
) -> None:
    assert params(query, body, headers) == expected


def test_a_name_repeated_in_the_query_string_or_a_form_is_refused() -> None:
    with pytest.raises(InvalidParameter, match=r"^size is given more than once in the query string"):
        params(b"size=1&size=2")
    with pytest.raises(InvalidParameter, match=r"^size is given more than once in the query string"):
        params(b"size=1&size=1")  # even the same: a list was meant, or a URL built wrong
    with pytest.raises(InvalidParameter, match=r"^a, b are given more than once in the form body"):
        params(body=b"b=1&a=1&b=2&a=2&c=3", headers=FORM)


def test_a_blank_value_is_kept_in_a_query_string_and_a_form() -> None:
    """Each check says what blank means: an empty token must not pass for none."""
    assert params(b"reservation_token=&a=1") == {"reservation_token": "", "a": "1"}
    assert params(body=b"reservation_token=&a=1", headers=FORM) == {"reservation_token": "", "a": "1"}


def test_what_is_not_parameters_is_refused() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        params(b"a=1", b"{nope")
    with pytest.raises(BadRequest, match="must be a JSON object"):
        params(body=b"[1]")
    with pytest.raises(BadRequest, match="query string is not valid UTF-8"):
        params(b"a=%ff")


def test_a_form_of_too_many_fields_is_refused_before_it_is_decoded() -> None:
    """2,000 fields is four times SQS's largest request; a million cost seconds to decode."""
    body = b"&".join(b"a%d=1" % i for i in range(2001))
    with pytest.raises(BadRequest, match="more than 2000 fields"):
        params(body=body, headers=FORM)
    assert len(params(body=body.rsplit(b"&", 1)[0], headers=FORM)) == 2000
