"""Who a server is exposed to: this machine alone, or more.

A server bound to a loopback address (:func:`loopback`) serves only its own machine, unless a
proxy on the machine forwards to it: then every request comes from loopback, and only the
proxy's headers (:data:`PROXIED`) tell. A service with no login of its own (the broker with no
API key, the user app, the dev tool before a login) refuses to start on any other address
(:class:`Unprotected`) and refuses proxied requests, unless it is started with
``--insecure-no-auth``. A proxy that adds none of these headers (a bare ``proxy_pass``,
``ssh -L``) cannot be told from a local client.
"""

from __future__ import annotations

import ipaddress

from wonderq.edge.requests import Request

PROXIED = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip", b"via"})  # what proxies add


def loopback(host: str) -> bool:
    """The address serves this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a wildcard (""), or a name that may resolve anywhere


def proxied(request: Request) -> bool:
    """The request carries a proxy's header: it came from beyond this machine, maybe."""
    return request.has_any(PROXIED)


class Unprotected(Exception):
    """A service would serve a non-loopback address with no login (``hint``: what to do)."""

    def __init__(self, host: str, what: str = "no API key", hint: str = "") -> None:
        super().__init__(f"it would serve {host or 'every address'} with {what}, open to anyone who reaches it")
        self.hint = hint or ("create a key first (wonderq keys create --scope admin), bind 127.0.0.1 (--host),"
                             " or accept the risk with --insecure-no-auth (WONDERQ_INSECURE_NO_AUTH=1)")
