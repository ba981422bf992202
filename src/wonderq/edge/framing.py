"""What a request's headers may not say here, checked as they arrive, before its body
(:meth:`Connection.on_headers_complete <wonderq.edge.connection.Connection.on_headers_complete>`):
RFC 9112's framing rules that llhttp leaves to the server, and this server's own size limit.
"""

from __future__ import annotations

from typing import Protocol

from wonderq.edge.requests import Request
from wonderq.errors import BadRequest, PayloadTooLarge, WonderQError
from wonderq.settings import MAX_REQUEST_BYTES

Headers = list[tuple[bytes, bytes]]


class Parser(Protocol):  # what is asked of httptools' HttpRequestParser
    def should_upgrade(self) -> bool: ...

    def get_http_version(self) -> str: ...


def refusal(headers: Headers, first: dict[bytes, bytes], parser: Parser) -> WonderQError | None:
    """Why a request is refused before its body is read (``first``: each header's first value), or None:

    - a ``Content-Length`` over the largest request (413);
    - HTTP/1.1 without ``Host``, or with two (RFC 9112 3.2);
    - a transfer coding but ``chunked`` alone (llhttp reads ``gzip, chunked`` as chunked and
      drops the gzip);
    - a body on a request that asks to upgrade the protocol: llhttp stops at its headers, so
      the body would be read as a request of its own, smuggled past whatever checked this one.
    """
    length = first.get(b"content-length")  # llhttp refuses a second one
    if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        return too_large()
    rare = len(first) < len(headers) or b"host" not in first or b"transfer-encoding" in first
    if rare and (odd := odd_headers(headers, parser)) is not None:  # a name repeated, no Host, a coding
        return odd
    if parser.should_upgrade() and (b"transfer-encoding" in first or length not in (None, b"0")):
        return BadRequest("a request asking to upgrade the protocol cannot carry a body here:"
                          " this server speaks only HTTP/1.1; send it without Upgrade")
    return None


def too_large() -> PayloadTooLarge:
    """A body over the largest request: refused by its Content-Length, or as its chunks come."""
    return PayloadTooLarge(f"request body is over {MAX_REQUEST_BYTES} bytes")


def odd_headers(headers: Headers, parser: Parser) -> BadRequest | None:
    hosts = sum(1 for name, _ in headers if name == b"host")
    codings = [c for name, value in headers if name == b"transfer-encoding"
               for v in value.split(b",") if (c := v.strip().lower())]  # empty list elements are none (RFC 9110 5.6.1)
    if hosts > 1 or (hosts == 0 and parser.get_http_version() != "1.0"):
        why = "more than one Host header" if hosts else "no Host header"
        return BadRequest(f"malformed HTTP request: {why} (an HTTP/1.1 request names its host once)")
    if codings and codings != [b"chunked"]:
        return BadRequest("malformed HTTP request: the only Transfer-Encoding served here is chunked")
    return None


def authority(host: bytes, port: int | None) -> bytes:
    """The ``Host`` an absolute-form target (``http://host:port/path``) names (RFC 9112 3.2.2)."""
    host = b"[%b]" % host if b":" in host else host
    return host if port is None else b"%b:%d" % (host, port)


def sent_size(request: Request, raw_path: bytes) -> int:
    """About the bytes a request took on the wire (a chunked body's framing aside): what a read
    that ended it held of it, so that the rest is the next request's."""
    target = len(raw_path) + (len(request.query) + 1 if request.query else 0)
    head = len(request.method) + target + 12 + sum(len(n) + len(v) + 4 for n, v in request.headers) + 2
    return head + len(request.body)
