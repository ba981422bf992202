"""Parameter checks: each returns the value or raises InvalidParameter with a
message that names the parameter and says what it must be."""

from __future__ import annotations

import re
from collections.abc import Mapping

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
