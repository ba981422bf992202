"""The limits a server's connections hold against abuse, and the count of what they refused.

- A request's headers must arrive within ``header_timeout`` seconds of the
  connection opening (or of the first byte of the next request on a kept-alive
  one), and its body within ``body_timeout`` of the headers; otherwise the
  connection is closed with a 408. An idle kept-alive connection is closed after
  ``keep_alive_timeout``. A client that takes none of an answer the server could
  not write at once for ``body_timeout`` is cut off (over TLS, "none" means less
  than the TLS layer's buffer, about 48 KiB, in that time).
- Request line and headers together may be at most ``max_header_bytes`` (431).
- A body over the largest request is refused (413; an SQS client gets its API's
  error) before it is read, and every body byte counts against the app's
  :class:`~wonderq.edge.requests.Budget` (503).
- At most ``max_connections`` are open at once; one more closes the oldest idle
  kept-alive connection to make room, or with none is answered 503 and closed at
  once, so descriptors never run out (the limit is set below the
  process's descriptor limit, which :func:`wonderq.edge.server.raise_file_limit`
  raises to the hard limit).

:mod:`wonderq.edge.connection` enforces them. Each refusal is counted here, and a
summary is logged at most once a minute.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from wonderq.errors import WonderQError

log = logging.getLogger("wonderq.edge")
REPORT_EVERY = 60.0  # seconds between summaries of refused connections


@dataclass(frozen=True, slots=True)
class Limits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 75.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 10_000


class Refusals:
    """How many connections were refused or closed, by error code, logged now and then."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.reported_at = 0.0

    def count(self, error: WonderQError) -> None:
        self.counts[error.code] = self.counts.get(error.code, 0) + 1
        now = time.monotonic()
        if now - self.reported_at >= REPORT_EVERY:
            self.reported_at = now
            summary = ", ".join(f"{n} {code}" for code, n in sorted(self.counts.items()))
            log.warning("connections refused or closed so far: %s", summary)
