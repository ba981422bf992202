"""A request as handlers see it: method, path, the route's arguments, headers,
the whole body, and parameters parsed on first use."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import parse_qsl

import orjson

from wonderq.errors import BadRequest, InvalidParameter, PayloadTooLarge, Unavailable
from wonderq.settings import MAX_REQUEST_BYTES

# The ASGI callables, typed as far as this edge relies on them.
Message = MutableMapping[str, object]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Scope(TypedDict, total=False):
    """The keys of an ASGI scope this edge reads (``http`` and ``lifespan``)."""

    type: str
    method: str
    path: str
    raw_path: bytes  # as sent: %2F still encoded
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
Params = dict[str, object]


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    receive: Receive
    args: dict[str, str]  # the route's {placeholders}, set once routed
    _params: Params | None = None
    _first: dict[bytes, bytes] | None = None  # each header's first value, made on the first lookup

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header (``name`` in lower case). A request is asked for
        several (Host, Content-Length, Authorization, Origin, ...): one dict serves them all."""
        if self._first is None:
            self._first = first_values(self.headers)
        return self._first.get(name)

    def has_any(self, names: frozenset[bytes]) -> bool:
        """Whether it carries any of these headers (lower case): one set operation, in C."""
        if self._first is None:
            self._first = first_values(self.headers)
        return not names.isdisjoint(self._first)

    @property
    def params(self) -> Params:
        """The query string's parameters and a JSON object or form body's, together.
        A name repeated in either is refused (:func:`form`); one in both must have the
        same value in both (a JSON number may match its digits): the same value twice
        says nothing new, but different values contradict each other, and neither may
        silently win. Only a request with both a query string and a body pays for that."""
        if self._params is None:
            if not self.body:
                self._params = form(self.query, "query string") if self.query else {}
            elif not self.query:
                self._params = self._parse_body()
            else:
                self._params = merged(form(self.query, "query string"), self._parse_body())
        return self._params

    def _parse_body(self) -> Params:
        if self.body[:1] != b"{" and self.is_form():  # a JSON object needs no header lookup
            return form(self.body, "form body")
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise BadRequest("request body must be a JSON object")
        return value

    def is_form(self) -> bool:
        content_type = self.header(b"content-type")
        return content_type is not None and b"form-urlencoded" in content_type

    async def disconnected(self) -> None:
        """Return once the client has hung up: an awaitable for the long poll."""
        while (await self.receive())["type"] != "http.disconnect":
            pass


def first_values(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Each header's first value: of repeated names, the first wins."""
    return dict(reversed(headers))


MAX_FIELDS = 2000  # a form's: SQS's largest request (a batch of ten, each with ten attributes) has ~500


def form(data: bytes, where: str) -> Params:
    """``a=1&b=2``, percent-decoded as UTF-8; invalid UTF-8 is refused, not replaced,
    and so is a name given more than once (``size=1&size=2``: which one was meant?).
    A blank value (``a=``) is kept as ``""``: each check says what blank means (mostly
    "not given"; an empty ``reservation_token`` is refused), and a name nothing takes is
    refused even blank. (SQS's Query protocol sends an empty list as ``Entries=``: its
    module drops blank values itself.)"""
    try:
        pairs = parse_qsl(data.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise BadRequest(f"the {where} is not valid UTF-8") from None
    except ValueError:  # more than MAX_FIELDS: refused before they are decoded, cheaply
        raise BadRequest(f"the {where} has more than {MAX_FIELDS} fields") from None
    params: Params = dict(pairs)
    if len(params) != len(pairs):  # a repeat: rare, so found out only then
        repeated = sorted(name for name, n in Counter(name for name, _ in pairs).items() if n > 1)
        said = f"{repeated[0]} is" if len(repeated) == 1 else f"{', '.join(repeated)} are"
        raise InvalidParameter(f"{said} given more than once in the {where}: give each once")
    return params


def merged(query: Params, body: Params) -> Params:
    """The body's parameters and the query string's; a name in both must mean the same."""
    for name in query.keys() & body.keys():
        if not same(query[name], body[name]):
            raise InvalidParameter(f"{name} is given in both the query string and the body, with different"
                                   " values: give it once")
    return query | body


def same(text: object, value: object) -> bool:
    """A query string's ``text`` says ``value``: equal, or the digits of a JSON integer."""
    return text == value or (type(value) is int and text == str(value))


class Budget:
    """The bytes of request bodies a process holds at once, across all requests:
    an upload past the bound waits for no memory, it is refused (503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> None:
        if self.held + n > self.limit:
            raise Unavailable(f"the server holds {self.held} bytes of unfinished requests already; retry")
        self.held += n


async def read_body(receive: Receive, declared: bytes | None, budget: Budget, held: list[int]) -> bytes:
    """The whole body: ``Content-Length`` checked before a byte is read, and every
    byte counted against ``budget`` (``held`` says how many this request took)."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"request body is over {MAX_REQUEST_BYTES} bytes")
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        assert isinstance(chunk, bytes)
        more = bool(message.get("more_body"))
        if not chunk:
            continue
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise PayloadTooLarge(f"request body is over {MAX_REQUEST_BYTES} bytes")
        budget.take(len(chunk))
        held[0] += len(chunk)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
