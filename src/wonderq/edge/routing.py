"""Routes: a method, a path of literal segments and ``{placeholders}``, and
optionally a condition on the request, so that several actions can share one
path and be told apart by a header (``X-Amz-Target``) or a form field
(``Action=``). An :class:`Api` is a list of routes and the way it renders its
own errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

from wonderq.edge.requests import Request
from wonderq.edge.responses import Response, Stream, error_envelope
from wonderq.errors import WonderQError

Handler = Callable[[Request], Awaitable[Response | Stream]]
Condition = Callable[[Request], bool]
RenderError = Callable[[WonderQError], Response]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    when: Condition | None = None  # None: the method and path suffice
    changes_state: bool | None = None  # None: every method but GET and HEAD does
    params: Collection[str] | None = None  # the parameters it takes (others are refused); None: any
    parts: tuple[str, ...] = field(init=False)
    literal: list[str] | None = field(init=False)  # the parts of a path with no placeholder
    endpoint: str = field(init=False)  # "METHOD /path/{pattern}", for metrics

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.path.strip("/").split("/")))
        object.__setattr__(self, "literal", None if "{" in self.path else list(self.parts))
        object.__setattr__(self, "endpoint", f"{self.method} {self.path}")
        if self.changes_state is None:
            object.__setattr__(self, "changes_state", self.method not in ("GET", "HEAD"))
        if self.params is not None:
            object.__setattr__(self, "params", frozenset(self.params))

    @property
    def serves_head(self) -> bool:
        """A HEAD with no route of its own may take this one: a GET that changes nothing."""
        return self.method == "GET" and not self.changes_state and self.when is None

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """The placeholders' values if the path matches, else None."""
        if self.literal is not None:
            return {} if parts == self.literal else None
        if len(self.parts) != len(parts):
            return None
        args = {}
        for want, got in zip(self.parts, parts, strict=True):
            if want.startswith("{"):
                args[want[1:-1]] = got
            elif want != got:
                return None
        return args


def header(name: str, prefix: str = "") -> Condition:
    """The request has header ``name`` starting with ``prefix``."""
    key, start = name.lower().encode(), prefix.encode()

    def has_header(request: Request) -> bool:
        value = request.header(key)
        return value is not None and value.startswith(start)

    return has_header


def form_field(name: str) -> Condition:
    """The query string or a form body has the field ``name``. A form body not read at all
    (a request refused as it arrives: :meth:`App.refusal <wonderq.edge.app.App.refusal>`)
    may hold it, so its refusal is told in the format of the API that reads such forms."""

    def has_field(request: Request) -> bool:
        if not (request.query or request.is_form()):
            return False
        if not request.body and request.is_form() and (  # complete requests have their body by now:
                request.header(b"transfer-encoding") is not None  # this one was refused unread
                or request.header(b"content-length") not in (None, b"0")):
            return True
        try:
            return name in request.params
        except WonderQError:  # a field repeated, say: the route's API says so, in its own format
            return name.encode() in request.query or name.encode() in request.body

    return has_field


@dataclass(frozen=True, slots=True)
class Api:
    """Routes mounted together, and how their errors look on the wire."""

    routes: Sequence[Route]
    render_error: RenderError = error_envelope
    # the routes by method and number of path segments, in their order: a request
    # is matched against only the few it could be
    index: dict[tuple[str, int], list[Route]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, int], list[Route]] = {}
        for route in self.routes:
            index.setdefault((route.method, len(route.parts)), []).append(route)
        object.__setattr__(self, "index", index)

    def find(self, request: Request, parts: list[str]) -> Route | None:
        """The route for this request, its placeholders into ``request.args``. HEAD with no
        route of its own takes GET's, if that changes nothing (the connection drops the body):
        HTTP asks every server for HEAD wherever GET is, and ``curl -I`` should not be a 405."""
        for route in self.index.get((request.method, len(parts)), ()):
            if (args := route.match(parts)) is not None and (route.when is None or route.when(request)):
                request.args = args
                return route
        if request.method == "HEAD":
            for route in self.index.get(("GET", len(parts)), ()):
                if route.serves_head and (args := route.match(parts)) is not None:
                    request.args = args
                    return route
        return None

    def allowed(self, parts: list[str]) -> set[str]:
        """The methods some route takes on this path (for a 405's ``Allow``). A
        route with a condition does not count: it claims only what it is told by."""
        routes = [route for route in self.routes if route.when is None and route.match(parts) is not None]
        heads = {"HEAD" for route in routes if route.serves_head}
        return {route.method for route in routes} | heads
