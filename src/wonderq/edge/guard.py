"""Browser safety: what a hostile web page makes a browser send is refused.

- **DNS rebinding**: a request's ``Host`` must name this machine's loopback
  (``localhost``, ``127.0.0.1``, ``::1``), the address the server is bound to,
  or one of the configured ``allowed_hosts`` (``*`` allows any).
- **CSRF**: a request that changes state must not come from another site. Its
  ``Origin``, when sent, must be this server's own (the ``Host`` it was sent to)
  or one of the configured ``allowed_origins``; without an ``Origin``, a
  ``Sec-Fetch-Site`` of ``cross-site`` or ``same-site`` is refused too, which
  catches the ``<img>`` and ``<form>`` a page can aim at a GET that changes
  state. Clients that are not browsers (curl, SDKs) send neither header; a
  browser that sends no ``Sec-Fetch-Site`` (Safari before 16.4, Firefox before
  90, and any browser over plain HTTP to a host other than localhost), known by
  its ``User-Agent: Mozilla/…``, may not change state with a GET at all, since
  its ``<img>`` would say nothing of where it came from.
- **JSON or auth**: a state change whose ``Content-Type`` is one a page can send
  cross-site without a CORS preflight (a form's ``application/x-www-form-urlencoded``
  or ``multipart/form-data``, or ``text/plain``) is refused unless it carries an
  ``Authorization`` header, which no page can add without a preflight. Should a
  browser leave ``Origin`` out, a page still cannot drive these APIs: JSON needs
  the preflight. A request with no body and no ``Content-Type`` is allowed (the
  Python client's purge, ``curl -X POST``).

Each check runs on every request, so the common answers are quick: a ``Host`` value that
passed once is remembered (a connection sends the same one every time), and the JSON types
that need a preflight pass as sent.

All answer 403 ``forbidden``: the origin and content-type checks in the routed API's own
error format; the Host check, which runs before anything is routed, in the first mounted
API's (the broker's: REST JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wonderq.edge.requests import Request
from wonderq.errors import Forbidden, Unsigned
from wonderq.settings import Settings

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
SIMPLE_TYPES = frozenset({b"application/x-www-form-urlencoded", b"multipart/form-data", b"text/plain"})
PREFLIGHTED = frozenset({b"application/json", b"application/x-amz-json-1.0"})  # the common bodies, as sent
REMEMBERED = 64  # Host values that passed, kept so that a connection's next requests skip the parse
WILDCARD_BINDS = ("", "0.0.0.0", "::")


def host_name(value: str) -> str:
    """``example.com:3213`` -> ``example.com``; ``[::1]:3213`` -> ``::1``."""
    if value.startswith("["):
        return value[1:value.find("]")].lower()
    return value.rsplit(":", 1)[0].lower() if value.count(":") == 1 else value.lower()


@dataclass(frozen=True, slots=True)
class BrowserGuard:
    hosts: frozenset[str] = LOOPBACK  # "*" in it: any host
    origins: frozenset[str] = frozenset()  # full origins, e.g. "https://app.example"
    passed: set[bytes] = field(default_factory=set, compare=False, repr=False)  # Host values allowed

    @classmethod
    def of(cls, bind: str, allowed_hosts: str = "", allowed_origins: str = "") -> BrowserGuard:
        """Loopback, the bound address (unless a wildcard), and the configured comma lists."""
        hosts = set(LOOPBACK) | {h.strip().lower() for h in allowed_hosts.split(",") if h.strip()}
        if bind not in WILDCARD_BINDS:
            hosts.add(host_name(bind) if bind.startswith("[") else bind.lower())
        origins = {o.strip().rstrip("/").lower() for o in allowed_origins.split(",") if o.strip()}
        return cls(frozenset(hosts), frozenset(origins))

    @classmethod
    def for_settings(cls, settings: Settings) -> BrowserGuard:
        return cls.of(settings.host, settings.allowed_hosts, settings.allowed_origins)

    def check_host(self, request: Request) -> None:
        host = request.header(b"host")
        if host is None or host in self.passed or "*" in self.hosts:
            return  # HTTP/1.0 without Host: no browser sends that
        name = host_name(host.decode("latin-1"))
        if name not in self.hosts:
            raise Forbidden(f"Host {name!r} is not allowed here (DNS rebinding?); allow it with --allowed-hosts")
        if len(self.passed) < REMEMBERED:
            self.passed.add(host)

    def check_change(self, request: Request) -> None:
        """For a request that changes state: its origin, then its content type."""
        self.check_origin(request)
        content_type = request.header(b"content-type")
        if content_type is None or content_type in PREFLIGHTED or request.header(b"authorization") is not None:
            return
        media = content_type.split(b";", 1)[0].strip().lower()  # without its parameters (a boundary)
        if media in SIMPLE_TYPES:
            raise Unsigned(f"a body of type {media.decode('latin-1')} may change state here only with an"
                            " Authorization header (a web page can post such a body cross-site, but not that"
                            " header): sign it, as SQS clients do, or send JSON (Content-Type: application/json)")

    def check_origin(self, request: Request) -> None:
        """Another origin, or a cross-site fetch, may not change state."""
        origin = request.header(b"origin")
        if origin is not None:
            text = origin.decode("latin-1").rstrip("/").lower()
            own = request.header(b"host")
            netloc = text.partition("://")[2]
            if text in self.origins or (own is not None and netloc == own.decode("latin-1").lower()):
                return
            raise Forbidden(f"a request from {text!r} may not change state here (CSRF?);"
                            " allow that origin with --allowed-origins")
        site = request.header(b"sec-fetch-site")
        if site in (b"cross-site", b"same-site"):
            raise Forbidden("a request from another site may not change state here (CSRF?)")
        if site is None and request.method == "GET" and (request.header(b"user-agent") or b"").startswith(b"Mozilla/"):
            raise Forbidden("a browser that does not say where a request comes from (no Sec-Fetch-Site: an older"
                            " one, or any over plain HTTP to a host but localhost) may not change state with a GET"
                            " here (CSRF?); use curl or a client library (PowerShell: give -UserAgent)")
