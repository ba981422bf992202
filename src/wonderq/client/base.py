"""What both clients share: the broker's URL, the API key, the CA to trust, the timeouts,
and how a :class:`~wonderq.client.calls.Call` becomes an httpx request."""

from __future__ import annotations

import os
import ssl
from typing import TypedDict, TypeVar

import httpx

from wonderq import __version__
from wonderq.client.calls import Call
from wonderq.settings import DEFAULT_URL, broker_url_problem

DEFAULT_TIMEOUT = 10.0
T = TypeVar("T")


class HttpxOptions(TypedDict):  # what both clients' httpx pools are made with
    base_url: str
    verify: ssl.SSLContext | bool
    timeout: httpx.Timeout
    limits: httpx.Limits
    headers: dict[str, str]


def trusting(ca_file: str) -> ssl.SSLContext:
    """Verification against the CA certificates in ``ca_file`` only (as ``curl --cacert``)."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except OSError as exc:  # ssl.SSLError too: no certificate in it
        why = exc.strerror if exc.strerror and not isinstance(exc, ssl.SSLError) else "no PEM certificate in it"
        raise ValueError(f"cannot use the CA file {ca_file} (WONDERQ_CA_FILE): {why}") from exc


def base_url(url: str | None) -> str:
    """``url``, else ``$WONDERQ_URL``, else the default, without a trailing slash; a ValueError
    naming it if it is no http:// or https:// URL with a host (nothing is sent to find out)."""
    given = url or os.environ.get("WONDERQ_URL") or DEFAULT_URL
    problem = broker_url_problem(given)
    if problem is None:
        try:
            httpx.URL(given)
        except httpx.InvalidURL as exc:
            problem = f"is not a valid URL: {exc}"
    if problem is not None:
        raise ValueError(f"{'the broker URL' if url else 'WONDERQ_URL'} {problem}")
    return given.rstrip("/")


class BaseClient:
    """What both clients share: the URL, the timeouts and the httpx settings."""

    def __init__(
        self, url: str | None, timeout: float, max_connections: int, api_key: str | None, ca_file: str | None
    ) -> None:
        self.url = base_url(url)
        self.timeout = timeout
        self.max_connections = max_connections
        self.api_key = api_key if api_key is not None else os.environ.get("WONDERQ_API_KEY") or None
        self.ca_file = ca_file if ca_file is not None else os.environ.get("WONDERQ_CA_FILE") or None

    def _httpx_options(self) -> HttpxOptions:
        headers = {"user-agent": f"wonderq-python/{__version__}"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return {
            "base_url": self.url,
            "verify": trusting(self.ca_file) if self.ca_file else True,
            "timeout": httpx.Timeout(self.timeout),
            "limits": httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=20),
            "headers": headers,
        }

    def _request(self, http: httpx.Client | httpx.AsyncClient, call: Call[T], api_key: str | None) -> httpx.Request:
        """A long poll's read timeout is its wait plus the usual timeout; ``api_key`` is this
        request's key instead of the client's."""
        return http.build_request(
            call.method, call.path, params=call.params, json=call.json,
            headers={"authorization": f"Bearer {api_key}"} if api_key else None,
            timeout=httpx.Timeout(self.timeout, read=call.wait + self.timeout),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
