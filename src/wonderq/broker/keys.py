"""API keys: the token format, the hash kept of it, and the broker's key ring.

A token is ``wq_<id>_<secret>``: ``id`` is 16 hex digits, public, the row's
primary key; ``secret`` is ``secrets.token_urlsafe(32)`` (256 random bits),
shown once when the key is made and never stored. The database keeps the
secret's SHA-256. A slow KDF (bcrypt, scrypt, argon2) is for passwords, which
are guessable; a 256-bit random secret cannot be guessed, so one SHA-256 is as
safe and costs a microsecond per request. A token is checked by looking its id
up and comparing digests with :func:`hmac.compare_digest`.

The :class:`KeyRing` lives in the broker's lifespan (``broker/app.py``). It
holds the active keys and reloads them from the backend every
:data:`RELOAD_SECONDS`, so a key made or revoked with ``wonderq keys`` takes
effect within about a second on every broker sharing the database.
Authentication is on (:attr:`KeyRing.required`) while any active key exists or
SQS credentials are configured; while it is off every request has
:data:`~wonderq.broker.access.OPEN` and nothing is hashed, but only this machine's
own clients are served: a request that carries a proxy's header (``Forwarded``,
``X-Forwarded-For``, ``X-Real-IP``, ``Via``) comes from wherever the proxy is
reached, so it is refused (:meth:`KeyRing.check_local`) unless ``--insecure-no-auth``.
A proxy that adds none of them (a bare ``proxy_pass``, a TCP forwarder) cannot be
told from a local client: put none in front of a broker without a key.

The SQS API can take the same two things: ``required`` (is auth on) and a
:class:`~wonderq.broker.access.Grant` per caller (``grant`` for a bearer token).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence

from wonderq.backends.base import Backend
from wonderq.broker.access import OPEN, Grant
from wonderq.edge.exposure import Unprotected, loopback, proxied
from wonderq.edge.requests import Request
from wonderq.errors import Unauthorized, WonderQError
from wonderq.models import ApiKey
from wonderq.settings import Settings

log = logging.getLogger("wonderq.keys")
PREFIX = "wq_"
ID_HEX = 8  # bytes: 16 hex digits
RELOAD_SECONDS = 1.0
BEARER = "Bearer "
SHOWN_ONCE = "this token is shown once and will not be shown again: keep it now"


def digest(secret: str) -> str:
    """The hex SHA-256 kept of a secret (no KDF needed: the secret is 256 random bits)."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create(db: Backend, scope: str, queues: Sequence[str] = (), name: str = "") -> tuple[ApiKey, str]:
    """Make and store a key; return it and its token (the only time the token exists)."""
    key_id, secret = secrets.token_hex(ID_HEX), secrets.token_urlsafe(32)
    key = await db.create_key(key_id, name, scope, queues, digest(secret))
    return key, f"{PREFIX}{key_id}_{secret}"


def parse(token: str) -> tuple[str, str] | None:
    """``wq_<id>_<secret>`` -> (id, secret); None if it is not of that form."""
    if not token.startswith(PREFIX):
        return None
    key_id, _, secret = token[len(PREFIX):].partition("_")
    if len(key_id) != 2 * ID_HEX or not secret:
        return None
    return key_id, secret


class KeyRing:
    """The active keys, by id, with their grants; reloaded about once a second."""

    def __init__(self, db: Backend, settings: Settings) -> None:
        self.db = db
        self.floor = bool(settings.sqs_credentials)  # auth stays on even with no key
        self.required = self.floor  # until the first load
        self.insecure = settings.insecure_no_auth  # proxied requests served with auth off
        self._keys: dict[str, tuple[str, Grant]] = {}  # id -> (secret's digest, grant)

    async def reload(self) -> None:
        """Read the active keys from the backend; auth is on if any (or SQS credentials)."""
        keys = await self.db.list_keys(active_only=True)
        self._keys = {k.id: (k.secret_hash, Grant(k.id, k.scope, k.queues)) for k in keys}
        self.required = bool(self._keys) or self.floor

    async def watch(self) -> None:
        """Reload every RELOAD_SECONDS until cancelled; a failed reload keeps the keys it had. An
        outage is logged once, when it starts (a database's in one line), and once when it ends."""
        failing = False
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            try:
                await self.reload()
            except Exception as exc:
                if not failing:
                    why = exc.message if isinstance(exc, WonderQError) else repr(exc)
                    log.warning("could not reload the API keys (%s); keeping the ones loaded", why,
                                exc_info=not isinstance(exc, WonderQError))
                failing = True
                continue
            if failing:
                log.info("the API keys reload again")
            failing = False

    def grant(self, token: str) -> Grant:
        """The grant of a token, or Unauthorized (unknown, revoked or malformed)."""
        parsed = parse(token)
        entry = self._keys.get(parsed[0]) if parsed else None
        if parsed is None or entry is None or not hmac.compare_digest(digest(parsed[1]), entry[0]):
            raise Unauthorized("unknown or revoked API key")
        return entry[1]

    def check_local(self, request: Request) -> None:
        """With auth off, refuse a request that a proxy forwarded: behind nginx every request
        comes from loopback, and the loopback bind alone would open the broker to the world."""
        if self.insecure or not proxied(request):  # every REST request with auth off asks
            return
        raise Unauthorized("this broker has no API key, so it serves only its own machine, and this request"
                           " came through a proxy (it carries a proxy's header): create a key (`wonderq keys"
                           " create`) and send it, or start the broker with --insecure-no-auth")

    def bearer(self, authorization: bytes | None) -> Grant:
        """The grant of a request's ``Authorization: Bearer wq_…`` header (OPEN while auth is off)."""
        if not self.required:
            return OPEN
        if authorization is None:
            raise Unauthorized("this broker needs an API key: send Authorization: Bearer wq_…"
                               " (`wonderq keys create` makes one)")
        text = authorization.decode("latin-1")
        if text[:len(BEARER)].lower() != BEARER.lower():
            raise Unauthorized("the REST API takes Authorization: Bearer wq_…")
        return self.grant(text[len(BEARER):].strip())


def check_exposure(ring: KeyRing, settings: Settings) -> None:
    """Refuse an exposed bind without auth, unless ``insecure_no_auth`` (then warn).
    An exposed broker that starts with auth on keeps it on (fails closed)."""
    if loopback(settings.host):
        if settings.insecure_no_auth and not ring.required:
            log.warning("serving requests a proxy forwards WITHOUT AUTHENTICATION (--insecure-no-auth): anyone"
                        " who reaches the proxy may read, send and delete every message")
        return
    if ring.required:
        ring.floor = True  # revoking the last key later leaves it refusing everyone, not open
        return
    if not settings.insecure_no_auth:
        raise Unprotected(settings.host)
    log.warning("serving %s WITHOUT AUTHENTICATION (--insecure-no-auth): anyone who reaches it may read,"
                " send and delete every message; create a key with `wonderq keys create`", settings.host)
