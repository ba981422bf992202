"""Parameter checks: each returns the value or raises InvalidParameter with a
message that names the parameter and says what it must be. :func:`known` refuses
parameters a route does not take, with a "did you mean" (the app runs it for every
route that lists its parameters, before the handler)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping

from wonderq.errors import InvalidParameter

INTEGER = re.compile(r"\s*-?[0-9]{1,19}\s*")
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
        raise InvalidParameter(f"{name} must be an integer")
    if isinstance(value, str):
        if not INTEGER.fullmatch(value):
            raise InvalidParameter(f"{name} must be an integer, not {value!r}")
        value = int(value)
    if not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low} and {high}, not {value}")
    return value


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


def known(params: Params, names: Collection[str], what: str = "this endpoint") -> None:
    """Refuse any parameter not in ``names``: a misspelt one must not be silently ignored."""
    if isinstance(names, frozenset) and params.keys() <= names:  # a route's: one comparison, in C
        return
    unknown = [key for key in params if key not in names]
    if not unknown:
        return
    guesses = []
    for key in unknown:
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.6) or sorted(
            name for name in names if name.startswith(key) or key.startswith(name))  # delay: delay_seconds
        guesses.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    takes = f"it takes {', '.join(sorted(names))}" if names else "it takes none"
    noun = "parameter" if len(unknown) == 1 else "parameters"
    raise InvalidParameter(f"unknown {noun} {', '.join(guesses)} for {what}: {takes}")


def one_of(params: Params, *names: str) -> str | None:
    """The one of ``names`` given (not blank), None if none is; two given contradict each other."""
    given = [name for name in names if present(params, name)]
    if len(given) > 1:
        raise InvalidParameter(f"{' and '.join(given)} are both given: give only one")
    return given[0] if given else None
