"""Parameter checks: each says what is wrong with the value, in the same words
however the value came (query string, JSON, form)."""

from __future__ import annotations

import pytest

from wonderq.edge.params import integer, optional_integer
from wonderq.errors import InvalidParameter

MAX = 2**63 - 1
RANGE = f"^n must be between 1 and {MAX}, not "


@pytest.mark.parametrize("value", [
    "9223372036854775808", "99999999999999999999", " 99999999999999999999 ", "-99999999999999999999",
    "9" * 5000,  # past what int() takes from text at all
    2**63, 10**30, 1e20,  # orjson reads 99999999999999999999 as 1e+20
])
def test_an_integer_past_the_bounds_is_out_of_range(value: object) -> None:
    with pytest.raises(InvalidParameter, match=RANGE):
        optional_integer({"n": value}, "n", 1, MAX)


def test_the_number_is_named_as_a_number() -> None:
    with pytest.raises(InvalidParameter, match=f"{RANGE}99999999999999999999$"):
        optional_integer({"n": "0099999999999999999999"}, "n", 1, MAX)
    with pytest.raises(InvalidParameter, match=f"{RANGE}-99999999999999999999$"):
        optional_integer({"n": "-99999999999999999999"}, "n", 1, MAX)
    with pytest.raises(InvalidParameter, match=f"{RANGE}1e\\+20$"):
        optional_integer({"n": 1e20}, "n", 1, MAX)


@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7), (" 7 ", 7), ("0" * 40 + "7", 7), ("-" + "0" * 40, 0), (MAX, MAX), (str(MAX), MAX),
])
def test_an_integer_in_any_spelling(value: object, expected: int) -> None:
    assert optional_integer({"n": value}, "n", -1, MAX) == expected


@pytest.mark.parametrize("value", ["x", "1.5", "1e3", "--1", "-", " ", "0x10", 1.5, 2.0, [1], True])
def test_what_is_not_an_integer(value: object) -> None:
    with pytest.raises(InvalidParameter, match=r"^n must be an integer"):
        optional_integer({"n": value}, "n", 1, MAX)


def test_a_missing_integer_is_required_or_its_default() -> None:
    with pytest.raises(InvalidParameter, match=r"^n is required$"):
        integer({}, "n", None, 1, 10)
    assert integer({"n": ""}, "n", 3, 1, 10) == 3  # blank: not given
    assert optional_integer({"n": None}, "n", 1, 10) is None


def test_a_refusal_of_many_unknown_parameters_names_a_few() -> None:
    """Each name guessed at costs difflib's time: a body of 100,000 unknown names took over a
    second, before any key was checked. Five are named; the rest counted."""
    from wonderq.edge.params import known

    with pytest.raises(InvalidParameter) as e:
        known({f"k{i}": 1 for i in range(100_000)}, frozenset({"body"}), "POST /messages")
    assert "'k4'" in e.value.message and "'k5'" not in e.value.message and "and 99995 more" in e.value.message
    assert len(e.value.message) < 300
