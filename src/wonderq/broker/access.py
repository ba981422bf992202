"""Who may do what: a key's scope, and the queues it is limited to. Written once,
for the REST API (bearer keys) and the SQS API (SigV4 access keys) alike.

Scopes are ordered, each including the ones before it:

- ``read``: list queues, read their attributes, stats and tags, peek at messages;
- ``write``: also the message verbs: send, receive, delete, change visibility;
- ``admin``: also the queue verbs: create, delete, purge, set attributes and tags,
  permissions, message move tasks.

A grant's ``queues`` are names, or prefixes ending in ``*`` (``orders-*``); none
means every queue. A request the grant does not cover is :class:`~wonderq.errors.Forbidden`.
"""

from __future__ import annotations

from dataclasses import dataclass

from wonderq.errors import Forbidden

SCOPES = ("read", "write", "admin")
READ, WRITE, ADMIN = SCOPES


def queue_patterns(text: str) -> tuple[str, ...]:
    """``"a, orders-*"`` -> ``("a", "orders-*")``; a ``*`` anywhere but at the end is refused."""
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    for pattern in patterns:
        if "*" in pattern[:-1]:
            raise ValueError(f"{pattern!r}: a queue pattern is a name, or a prefix ending in *")
    return patterns


@dataclass(frozen=True, slots=True)
class Grant:
    key_id: str  # "" when authentication is off
    scope: str = ADMIN
    queues: tuple[str, ...] = ()  # names or "prefix*"; () = every queue

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {self.scope!r}")

    def has(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def covers(self, queue: str) -> bool:
        """The grant reaches this queue (by name)."""
        if not self.queues:
            return True
        return any(queue.startswith(p[:-1]) if p.endswith("*") else queue == p for p in self.queues)

    def check(self, scope: str, queue: str | None = None) -> None:
        """Forbidden unless the grant has ``scope`` (on ``queue``, when one is named)."""
        if not self.has(scope):
            raise Forbidden(f"this key's scope is {self.scope}; this needs {scope}")
        if queue is not None and not self.covers(queue):
            raise Forbidden(f"this key does not reach queue {queue!r}")


OPEN = Grant("")  # what every request has while authentication is off
