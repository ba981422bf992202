"""The dashboard's login: an API key pasted once, then held here, its browser given a session.

While the broker takes no key, nothing here matters: the dashboard's calls carry none and
the broker answers them. Once it needs one (it answers 401 ``unauthorized``), the dashboard
shows a login form; ``POST /login`` with ``{"key": "wq_…"}`` checks the key against the
broker (:data:`PROBE`, a read any key that the broker takes may make), keeps it in this
process's memory and sets the :class:`Cookie` to a random session id, not the key: cookies
are not kept apart by port, so every other web server on the host is sent it. The cookie is
``HttpOnly`` (the page's scripts never see it), ``SameSite=Strict`` (no other site's page
makes the browser send it), ``Path=/``, and over TLS ``Secure`` with the ``__Host-`` prefix
(no other host can set it). A cookie of a session this process never made (one another
port's page planted, or one from before a restart) is no login. Every call the dashboard makes to the
broker then carries that key, never the dev tool's own (which only the sampler uses); a key
the broker refuses later (revoked) clears the cookie in the same answer, and ``POST /logout``
clears it. A caller that is no browser (curl) may send ``Authorization: Bearer wq_…`` instead
(:func:`bearer`): no other site's page can make a browser send that header.
"""

from __future__ import annotations

import re
import secrets

from wonderq.client import get_queue_call
from wonderq.edge.requests import Request
from wonderq.settings import MAX_ID

NAME = "wonderq_key"
SECURE_NAME = "__Host-" + NAME  # only a Secure cookie set by this very host may bear it
ATTRIBUTES = b"; HttpOnly; SameSite=Strict; Path=/"
# What a key may be made of: the characters of an Authorization token (RFC 7235's token68),
# none of which needs quoting in a cookie. The broker judges the rest.
KEY = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")
# No queue has this id: 404 with a key the broker takes (403 if it is limited to some queues), 401 without
PROBE = get_queue_call(MAX_ID)
MAX_SESSIONS = 1000  # logins kept at once; the oldest is forgotten first


def bearer(request: Request) -> str | None:
    """The key of an ``Authorization: Bearer …`` header, if any."""
    header = request.header(b"authorization")
    if header is None or header[:7].lower() != b"bearer ":
        return None
    value = header[7:].strip().decode("latin-1")
    return value if KEY.fullmatch(value) else None


class Cookie:
    """The login cookie of a dev tool served over TLS (``secure``) or plain HTTP, and the
    sessions it names (session id -> key), in this process only."""

    def __init__(self, secure: bool) -> None:
        self.secure = secure
        self.sessions: dict[str, str] = {}

    @property
    def name(self) -> str:
        return SECURE_NAME if self.secure else NAME

    def key(self, request: Request) -> str | None:
        """The key this browser logged in with, if any: of every cookie of the name (a page on
        another port may have planted one beside it), the one this process's session made."""
        for session in self._ids(request):
            if (key := self.sessions.get(session)) is not None:
                return key
        return None

    def set(self, key: str) -> tuple[bytes, bytes]:
        """A new session for ``key``, and its ``Set-Cookie`` header."""
        session = secrets.token_urlsafe(24)
        while len(self.sessions) >= MAX_SESSIONS:
            del self.sessions[next(iter(self.sessions))]
        self.sessions[session] = key
        return b"set-cookie", f"{self.name}={session}".encode() + self._attributes()

    def clear(self, request: Request) -> tuple[bytes, bytes]:
        """Forget this browser's session; the header that clears its cookie."""
        for session in self._ids(request):
            self.sessions.pop(session, None)
        return b"set-cookie", f"{self.name}=".encode() + self._attributes() + b"; Max-Age=0"

    def sent(self, request: Request) -> bool:
        """Whether the browser sent a cookie of this name, of a session kept or not."""
        return bool(self._ids(request))

    def _ids(self, request: Request) -> list[str]:
        header = request.header(b"cookie")
        if header is None:
            return []
        pairs = (pair.strip().partition("=") for pair in header.decode("latin-1").split(";"))
        return [value for name, _, value in pairs if name == self.name and value]

    def _attributes(self) -> bytes:
        return ATTRIBUTES + (b"; Secure" if self.secure else b"")
