"""The dashboard's login: an API key pasted once, then held in a cookie no script can read.

While the broker takes no key, nothing here matters: the dashboard's calls carry none and
the broker answers them. Once it needs one (it answers 401 ``unauthorized``), the dashboard
shows a login form; ``POST /login`` with ``{"key": "wq_…"}`` checks the key against the
broker (:data:`PROBE`, a read any key that the broker takes may make) and sets the
:class:`Cookie`: ``HttpOnly`` (the page's scripts never see the key), ``SameSite=Strict``
(no other site's page makes the browser send it), ``Path=/``, and over TLS ``Secure`` with
the ``__Host-`` prefix (no other host can set it). Every call the dashboard makes to the
broker then carries that key, never the dev tool's own (which only the sampler uses); a key
the broker refuses later (revoked) clears the cookie in the same answer, and ``POST /logout``
clears it. A caller that is no browser (curl) may send ``Authorization: Bearer wq_…`` instead
(:func:`bearer`): no other site's page can make a browser send that header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wonderq.client import get_queue_call
from wonderq.edge.requests import Request
from wonderq.settings import MAX_ID

NAME = "wonderq_key"
SECURE_NAME = "__Host-" + NAME  # only a Secure cookie set by this very host may bear it
ATTRIBUTES = b"; HttpOnly; SameSite=Strict; Path=/"
# What a key may be made of: the characters of an Authorization token (RFC 7235's token68),
# none of which needs quoting in a cookie. The broker judges the rest.
KEY = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")
PROBE = get_queue_call(MAX_ID)  # no queue has this id: 404 with a key the broker takes, 401 without


def bearer(request: Request) -> str | None:
    """The key of an ``Authorization: Bearer …`` header, if any."""
    header = request.header(b"authorization")
    if header is None or header[:7].lower() != b"bearer ":
        return None
    value = header[7:].strip().decode("latin-1")
    return value if KEY.fullmatch(value) else None


@dataclass(frozen=True, slots=True)
class Cookie:
    """The login cookie of a dev tool served over TLS (``secure``) or plain HTTP."""

    secure: bool

    @property
    def name(self) -> str:
        return SECURE_NAME if self.secure else NAME

    def key(self, request: Request) -> str | None:
        """The key this browser logged in with, if any."""
        header = request.header(b"cookie")
        if header is None:
            return None
        for pair in header.decode("latin-1").split(";"):
            name, _, value = pair.strip().partition("=")
            if name == self.name and KEY.fullmatch(value):
                return value
        return None

    def set(self, key: str) -> tuple[bytes, bytes]:
        """The ``Set-Cookie`` header of a login (``key`` matches :data:`KEY`)."""
        return b"set-cookie", f"{self.name}={key}".encode() + self._attributes()

    def clear(self) -> tuple[bytes, bytes]:
        return b"set-cookie", f"{self.name}=".encode() + self._attributes() + b"; Max-Age=0"

    def _attributes(self) -> bytes:
        return ATTRIBUTES + (b"; Secure" if self.secure else b"")
