"""What a service logs, and how each line looks.

One format for every process: ``2026-12-01T13:05:00Z broker[4711] INFO listening on …``
(UTC time, the service, its process id, the level, the message), so the three
services of ``wonderq up`` can share a terminal. By default a service logs what
matters: that it listens and stops, errors, the user app's listeners, and once a
minute a one-line :class:`Activity` summary, only if something changed state or
failed in that minute (a dashboard polling an idle broker is not news). One line
per request (the access log, ``wonderq.access``) is opt-in: ``--access-log``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from urllib.parse import unquote_plus

from wonderq.edge.requests import Request

SUMMARY_INTERVAL = 60.0  # seconds between activity summaries
access = logging.getLogger("wonderq.access")
# What the access log leaves out of a query string (by a name's decoded last part): signatures
# and keys, tokens and bodies
SECRETS = re.compile(r"(?i)(?:.*\.)?(?:x-amz-signature|x-amz-credential|x-amz-security-token|key|reservation_token"
                     r"|receipthandle|messagebody|body|stringvalue|binaryvalue)")
FORMAT = "%(asctime)s %(service)s[%(process)d] %(levelname)s %(message)s"


def log_request(peer: object, request: Request, version: str, status: int) -> None:
    """The access log's line for an answered request, its query's secrets left out."""
    client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "-"
    query = "?" + hidden(request.query.decode("latin-1")) if request.query else ""
    access.info('%s - "%s %s%s HTTP/%s" %d', client, request.method, request.path, query, version, status)


def hidden(query: str) -> str:
    """``query`` with the values of :data:`SECRETS` left out (``name=…``)."""
    pairs = (part.partition("=") for part in query.split("&"))
    return "&".join(f"{name}=…" if SECRETS.fullmatch(unquote_plus(name)) else name + eq + value
                    for name, eq, value in pairs)


class ServiceName(logging.Filter):
    """Stamps each record with the service's name."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


def configure_logging(service: str, level: str) -> None:
    """Log to stderr in :data:`FORMAT`; the HTTP client's per-request lines only when debugging."""
    handler = logging.StreamHandler()
    formatter = logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(ServiceName(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if level != "debug":
        logging.getLogger("httpx").setLevel(logging.WARNING)
        handler.addFilter(one_line)  # asyncpg's pool retries in an outage: a traceback each


def one_line(record: logging.LogRecord) -> bool:
    """asyncpg's records without their tracebacks: the exception's own words, on the same line."""
    if record.name.startswith("asyncpg") and record.exc_info and record.exc_info[1] is not None:
        record.msg = f"{record.getMessage()}: {record.exc_info[1]!r}"
        record.args, record.exc_info, record.exc_text = None, None, None
    return True


class Activity:
    """Requests counted per endpoint; :meth:`summary` says what happened since the last one."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.changes = self.errors = 0
        self.since = time.monotonic()

    def reset(self) -> None:
        self.requests = Counter()
        self.changes = self.errors = 0
        self.since = time.monotonic()

    def count(self, endpoint: str, status: int, changes_state: bool) -> None:
        self.requests[endpoint] += 1
        self.changes += changes_state
        self.errors += status >= 500

    def summary(self) -> str | None:
        """One line about the requests since the last call, or None if none changed state or failed."""
        requests, changes, errors, since = self.requests, self.changes, self.errors, self.since
        self.reset()
        if not changes and not errors:
            return None
        top = ", ".join(f"{endpoint} {n:,}" for endpoint, n in requests.most_common(4))
        more = ", …" if len(requests) > 4 else ""
        total = requests.total()
        return (f"{total:,} request{'' if total == 1 else 's'} in the last {time.monotonic() - since:.0f} s"
                f" ({top}{more}); {errors:,} failed with 5xx")

    async def report(self, log: logging.Logger, interval: float = SUMMARY_INTERVAL) -> None:
        """Log a summary every ``interval`` seconds (until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            line = self.summary()
            if line is not None:
                log.info("%s", line)
