"""Settings: one frozen object, read once at start from flags and ``WONDERQ_*``,
and the one set of limits, defaults, ports and URLs every layer uses.

A flag beats its environment variable, which beats the default.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

# -- limits (as in SQS) and defaults -----------------------------------------------
MAX_BATCH = 10  # messages per send or receive
MAX_WAIT = 20  # seconds of long polling
MAX_VISIBILITY = 43_200  # seconds
MAX_DELAY = 900  # seconds
MAX_MESSAGE_SIZE = 1_048_576  # bytes of a message (SQS: with its attributes), and of a batch's together
MAX_RECEIVE_COUNT = 1000  # receives before a message moves to its dead-letter queue
MAX_PEEK = 1000  # messages per peek
MAX_ID = 2**63 - 1
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_RETENTION = 4 * 24 * 3600
DEFAULT_MAX_MESSAGE_SIZE = MAX_MESSAGE_SIZE  # as on AWS since 2025
# (attribute, low, high) of each integer queue attribute
QUEUE_BOUNDS = (
    ("visibility_timeout", 0, MAX_VISIBILITY),
    ("delay_seconds", 0, MAX_DELAY),
    ("retention_seconds", 60, 1_209_600),
    ("max_message_size", 1024, MAX_MESSAGE_SIZE),
    ("max_receive_count", 0, MAX_RECEIVE_COUNT),
)
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_PENDING_BYTES = 256 * 1024 * 1024  # request bodies held at once by one process

# -- where the services listen ------------------------------------------------------
BROKER_PORT = 3213
DEV_PORT = 3210
USER_PORT = 3000
DEFAULT_URL = f"http://127.0.0.1:{BROKER_PORT}"

DURABILITY = ("full", "normal")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOWER_CASE = ("durability", "log_level")  # settings whose values are read case-insensitively


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = BROKER_PORT
    db: str = "sqlite:///wonderq.db"  # database URL (a bare path means SQLite)
    cluster: int = 0  # worker processes; 0 (off) runs the broker in this process
    durability: str = "full"  # full: fsync every commit; normal: on checkpoint
    log_level: str = "info"
    access_log: bool = False  # one log line per request
    retention_interval: float = 60.0  # seconds between retention sweeps
    pool_size: int = 10  # PostgreSQL connections per broker process
    url: str = DEFAULT_URL  # where the dev tool, user app and CLI find the broker
    dev_port: int = DEV_PORT
    user_port: int = USER_PORT
    # the door: browser safety (edge/guard.py) and connection limits (edge/connection.py)
    allowed_hosts: str = ""  # comma-separated Host names besides loopback and the bound address; * any
    allowed_origins: str = ""  # comma-separated origins that may change state (e.g. https://app.example)
    header_timeout: float = 10.0  # seconds for a request's line and headers to arrive
    body_timeout: float = 30.0  # seconds for its body, after the headers; and to take any of an answer
    keep_alive_timeout: int = 75  # seconds an idle kept-alive connection stays open
    max_header_bytes: int = 64 * 1024  # request line and headers together
    max_connections: int = 10_000  # open at once per process, kept below the descriptor limit
    max_pending_bytes: int = MAX_PENDING_BYTES  # request bodies held in memory at once, per process
    # authentication (broker/access.py): API keys in the database, SigV4 credentials in a file
    api_key: str = ""  # the key the dev tool, user app and CLI send to the broker (WONDERQ_API_KEY)
    insecure_no_auth: bool = False  # serve a non-loopback address, or proxied requests, with no keys
    sqs_credentials: str = ""  # file of SigV4 access keys: "<access key id> <secret> <scope> [queues]"
    # TLS, on each service: both files or neither
    tls_cert: str = ""
    tls_key: str = ""
    ca_file: str = ""  # PEM CA certificates the dev tool, user app and CLI trust for an https broker URL
    # caps that hold against abuse
    max_queues: int = 10_000  # queues in one database; CreateQueue beyond it is refused
    max_in_flight: int = 120_000  # received but not deleted, per standard queue (SQS: OverLimit)
    # the SQS API (broker/sqs/): queue URLs are http://<Host>/<account_id>/<name>
    account_id: str = "000000000000"
    region: str = "us-east-1"  # in ARNs: arn:aws:sqs:<region>:<account_id>:<name>

    def __post_init__(self) -> None:
        refused = next(problems(self), None)
        if refused is not None:
            raise BadSetting(*refused)
        object.__setattr__(self, "db", database_url(self.db))

    @classmethod
    def load(
        cls, flags: Mapping[str, object], env: Mapping[str, str] = os.environ,
        flag_names: Mapping[str, str] | None = None,
    ) -> Settings:
        """Flags (None = not given) over ``WONDERQ_<NAME>`` over defaults. A bad value is a
        ValueError naming its flag (``flag_names[field]``, else ``--field-name``) or variable."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        defaults = cls()
        for f in fields(cls):
            raw, source = flags.get(f.name), (flag_names or {}).get(f.name, f"--{f.name.replace('_', '-')}")
            if raw is None:
                raw, source = env.get(variable(f.name)), variable(f.name)
            if raw is None:
                continue
            value = convert(raw, type(getattr(defaults, f.name)), source)
            values[f.name] = value.lower() if isinstance(value, str) and f.name in LOWER_CASE else value
            sources[f.name] = source
        try:
            return cls(**values)
        except BadSetting as exc:
            raise ValueError(f"{sources.get(exc.name, exc.name)} {exc.problem}") from None


class BadSetting(ValueError):
    """A value :class:`Settings` refuses: ``name`` the field, ``problem`` what is wrong
    (``must be 1-65535, not 0``), said after the setting's name."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name.replace('_', ' ')} {problem}")
        self.name, self.problem = name, problem


def variable(name: str) -> str:
    """The environment variable of the setting ``name``: ``WONDERQ_<NAME>``."""
    return f"WONDERQ_{name.upper()}"


PORTS = ("port", "dev_port", "user_port")
AT_LEAST = (  # integer settings and their least value
    ("max_header_bytes", 1024), ("max_connections", 1), ("max_pending_bytes", 1), ("max_queues", 1),
    ("max_in_flight", 1), ("pool_size", 1), ("cluster", 0),
)
POSITIVE = ("header_timeout", "body_timeout", "keep_alive_timeout", "retention_interval")  # seconds


def problems(s: Settings) -> Iterator[tuple[str, str]]:
    """Each refused value of ``s``: its field and what is wrong with it."""
    for name, choices in (("durability", DURABILITY), ("log_level", LOG_LEVELS)):
        if getattr(s, name) not in choices:
            yield name, f"must be one of {', '.join(choices)}, not {getattr(s, name)!r}"
    for name in PORTS:
        if not 0 < getattr(s, name) < 65536:
            yield name, f"must be 1-65535, not {getattr(s, name)}"
    for name, least in AT_LEAST:
        if getattr(s, name) < least:
            yield name, f"must be at least {least}, not {getattr(s, name)}"
    for name in POSITIVE:
        if not getattr(s, name) > 0:
            yield name, f"must be a positive number of seconds, not {getattr(s, name)}"
    if not (len(s.account_id) == 12 and s.account_id.isascii() and s.account_id.isdigit()):
        yield "account_id", f"must be 12 digits, not {s.account_id!r}"
    if not (s.api_key.isascii() and s.api_key.isprintable() and " " not in s.api_key):  # a header's value
        yield "api_key", "must be printable ASCII with no spaces, as `wonderq keys create` prints it"  # not echoed
    for name, problem in (("url", broker_url_problem(s.url)), ("db", database_url_problem(s.db))):
        if problem is not None:
            yield name, problem


def broker_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a broker's base URL, or None: it must be http:// or https://,
    with a host and, if any, a port that is a number (one rule for the CLI and the clients)."""
    if not url[:8].lower().startswith(("http://", "https://")):
        return f"must start with http:// or https://, not {url!r}"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # a port that is no number, or out of range, raises
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    if not host:
        return f"names no host: {url!r}"
    return f"names port 0: {url!r}" if port == 0 else None


def database_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a database URL, or None (the backend checks the rest when it opens it).
    Never echoes the URL: it may hold a password."""
    if "://" not in url:
        return None  # a path
    try:
        urlsplit(url)
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    return None


def convert(raw: object, kind: type, source: str) -> object:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("1", "true", "yes", "on"):
            return True
        if str(raw).lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{source} must be true or false, not {raw!r}")
    try:
        value: object = kind(raw)
    except ValueError:
        what = {int: "an integer", float: "a number"}.get(kind, kind.__name__)
        raise ValueError(f"{source} must be {what}, not {raw!r}") from None
    return value


def database_url(value: str) -> str:
    """Accept a URL or a plain SQLite path; return a URL with an absolute path."""
    if "://" not in value:
        return "sqlite:///" + os.path.abspath(value)
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(value.removeprefix("sqlite:///"))
    return value
