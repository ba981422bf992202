"""Parameter checks: each returns the value or raises InvalidParameter with a
message that names the parameter and says what it must be. :func:`known` refuses
parameters a route does not take, with a "did you mean" (the app runs it for every
route that lists its parameters, before the handler)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping

from wonderq.errors import InvalidParameter

INTEGER = re.compile(r"\s*-?[0-9]{1,19}\s*")  # every bound fits in 19 digits; more: long_integer
DIGITS = re.compile(r"-?[0-9]+")
NATURAL = re.compile(r"[0-9]{1,18}")
BEYOND_INT64 = 2**63  # past it orjson gives a JSON integer as a float
Params = Mapping[str, object]


def integer(params: Params, name: str, default: int | None, low: int, high: int) -> int:
    """A required integer (``default`` None) or one with a default."""
    value = optional_integer(params, name, low, high)
    if value is not None:
        return value
    if default is None:
        raise InvalidParameter(f"{name} is required")
    return default


def optional_integer(params: Params, name: str, low: int, high: int) -> int | None:
    """An integer within bounds, or None when absent, null or blank."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        if isinstance(value, float) and value.is_integer() and abs(value) >= BEYOND_INT64:
            raise outside(name, low, high, f"{value:g}")  # 99999999999999999999 in JSON: 1e+20
        raise InvalidParameter(f"{name} must be an integer")
    if isinstance(value, str):
        value = int(value) if INTEGER.fullmatch(value) else long_integer(value, name, low, high)
    if not low <= value <= high:
        raise outside(name, low, high, str(value))
    return value


def natural(text: str) -> int | None:
    """``text`` as a whole number if it is 1-18 ASCII digits, else None. (``str.isdigit``
    also takes "²", which ``int`` refuses, and ``int`` refuses 4,300 digits.)"""
    return int(text) if NATURAL.fullmatch(text) else None


def long_integer(value: str, name: str, low: int, high: int) -> int:
    """An integer of more than 19 digits (leading zeros, or past every bound), else not one.
    Past every bound it is refused unread: int() is slow on long text, and refuses 4,300 digits."""
    text = value.strip()
    if not DIGITS.fullmatch(text):
        raise InvalidParameter(f"{name} must be an integer, not {value!r}")
    sign = "-" if text.startswith("-") else ""
    digits = text.lstrip("-").lstrip("0") or "0"
    if len(digits) > 19:
        raise outside(name, low, high, sign + digits)
    return int(sign + digits)


def outside(name: str, low: int, high: int, value: str) -> InvalidParameter:
    return InvalidParameter(f"{name} must be between {low} and {high}, not {value}")


def string(params: Params, name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidParameter(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"{name} must be a string")
    return value


def present(params: Params, name: str) -> bool:
    """The parameter was given, and not blank."""
    return params.get(name) not in (None, "")


NAMED = 5  # unknown parameters a refusal names (and guesses at)


def known(params: Params, names: Collection[str], what: str = "this endpoint") -> None:
    """Refuse any parameter not in ``names``: a misspelt one must not be silently ignored."""
    if isinstance(names, frozenset) and params.keys() <= names:  # a route's: one comparison, in C
        return
    unknown = [key for key in params if key not in names]
    if not unknown:
        return
    guesses = []
    for key in unknown[:NAMED]:  # a guess costs difflib's time: a body of a million names gets a few
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.6) or sorted(
            name for name in names if name.startswith(key) or key.startswith(name))  # delay: delay_seconds
        guesses.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    takes = f"it takes {', '.join(sorted(names))}" if names else "it takes none"
    noun = "parameter" if len(unknown) == 1 else "parameters"
    more = f" and {len(unknown) - NAMED} more" if len(unknown) > NAMED else ""
    raise InvalidParameter(f"unknown {noun} {', '.join(guesses)}{more} for {what}: {takes}")


def one_of(params: Params, *names: str) -> str | None:
    """The one of ``names`` given (not blank), None if none is; two given contradict each other."""
    given = [name for name in names if present(params, name)]
    if len(given) > 1:
        raise InvalidParameter(f"{' and '.join(given)} are both given: give only one")
    return given[0] if given else None
