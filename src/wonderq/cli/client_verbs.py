"""The ``wonderq`` verbs over :class:`~wonderq.client.Client`, and their output.

``queues``, ``stats [QUEUE]``, ``create QUEUE``, ``send QUEUE [BODY...]``,
``receive QUEUE``, ``tail QUEUE``, ``purge QUEUE`` and ``delete-queue QUEUE``
(``wonderq VERB --help`` tells their flags); the servers ``dev``, ``user`` and
``up`` are in :mod:`wonderq.cli.servers`. Each client verb takes ``--broker-url``
(default ``$WONDERQ_URL``, else ``http://127.0.0.1:3213``) and ``--json``.

QUEUE is a queue's name, or its id when all digits (names never are). Output is
for people by default (tables, counts); ``--json`` prints one JSON document on
stdout instead (``tail``: one object per line), with the client's field names
and ISO 8601 times. ``send`` without BODY sends each non-empty line of stdin,
10 per request, with a progress bar on stderr when it is a terminal. A message
is printed (and flushed) before it is deleted (``receive --delete``, ``tail``):
an interruption may leave a printed message undeleted, to be received again,
never delete one unprinted.

Exit status (also in ``--help``; the table is :data:`wonderq.cli.output.EXIT_CODES`):

    0    ok
    1    the broker said no: stderr gets ``wonderq: <code>: <message>`` (from its
         error envelope; ``send`` adds how many messages had been sent)
    2    usage: a bad flag or argument (a ``--size`` out of range too), a bad
         WONDERQ_* setting, a broker URL without http:// or one that cannot be
         parsed, stdin not UTF-8
    3    the broker is unreachable (no answer at all)
    4    ``receive`` found no message within ``--wait`` (so a script can loop)
    130  interrupted by Ctrl-C; ``tail`` exits 0, since that is how it stops
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from wonderq.cli.output import (
    EMPTY,
    OK,
    REFUSED,
    UNREACHABLE,
    USAGE,
    VERB_EPILOG,
    Run,
    UsageError,
    age,
    bounded,
    complain,
    plural,
    print_json,
    table,
)
from wonderq.errors import BrokerUnreachable, QueueNotFound, WonderQError
from wonderq.models import QueueRef
from wonderq.settings import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_BATCH,
    MAX_VISIBILITY,
    MAX_WAIT,
    QUEUE_BOUNDS,
    Settings,
)

if TYPE_CHECKING:  # the client is imported when a client verb runs: the broker never loads httpx
    from wonderq.cli.output import Verbs
    from wonderq.client import Client, Message, QueueStats, Sent

    ClientRun = Callable[[Client, argparse.Namespace], int]

CLIENT_VERBS = ("queues", "stats", "create", "send", "receive", "tail", "purge", "delete-queue")
BATCH = MAX_BATCH  # messages per request when sending stdin


# -- registration --


def register(verbs: Verbs) -> None:
    """Add the client verbs to ``wonderq``'s subcommands."""
    queue_verbs(verbs)
    message_verbs(verbs)


def client_verb(verbs: Verbs, name: str, help: str, command: ClientRun) -> argparse.ArgumentParser:
    assert name in CLIENT_VERBS, name
    p = verbs.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=VERB_EPILOG)
    p.add_argument("--broker-url", dest="url", metavar="URL",
                   help="the broker (WONDERQ_URL, default http://127.0.0.1:3213)")
    p.add_argument("--json", action="store_true", help="print JSON, for scripts")
    p.set_defaults(run=with_client(command))
    return p


def with_client(command: ClientRun) -> Run:
    """Run ``command`` with a Client on the settings' URL; map the broker's errors to exit codes."""

    def run_with_client(args: argparse.Namespace, settings: Settings) -> int:
        from wonderq.client import Client

        try:
            client = Client(settings.url, api_key=settings.api_key or None, ca_file=settings.ca_file or None)
        except ValueError as exc:  # a CA file that cannot be used, a URL httpx cannot parse
            return complain(exc, USAGE)
        try:
            with client:
                return command(client, args)
        except WonderQError as exc:
            status = UNREACHABLE if isinstance(exc, BrokerUnreachable) else REFUSED
            return complain(f"{exc.code}: {exc.message}", status, exc)

    return run_with_client


def queue_ref(text: str) -> QueueRef:
    """A name, or an id when all digits (the broker refuses all-digit names)."""
    if not text:
        raise argparse.ArgumentTypeError("a queue name cannot be empty")
    return int(text) if text.isdigit() else text


def queue_verbs(verbs: Verbs) -> None:
    client_verb(verbs, "queues", "list every queue with its message counts", queues)
    p = client_verb(verbs, "stats", "message counts of one queue, or of every queue", stats)
    p.add_argument("queue", nargs="?", type=queue_ref, metavar="QUEUE", help="a queue (default: all)")
    p = client_verb(verbs, "create", "create a queue", create)
    p.add_argument("queue", metavar="QUEUE", help="its name: [A-Za-z0-9_-]{1,80}, not all digits")
    bounds = {name: (low, high) for name, low, high in QUEUE_BOUNDS}
    for flag, attribute, what in (
        ("--visibility-timeout", "visibility_timeout", "seconds a received message stays hidden (30)"),
        ("--delay", "delay_seconds", "seconds before a new message is visible (0)"),
        ("--retention", "retention_seconds", "seconds a message is kept (345600)"),
        ("--max-message-size", "max_message_size", f"bytes of UTF-8 body ({DEFAULT_MAX_MESSAGE_SIZE})"),
        ("--max-receive-count", "max_receive_count", "receives before dead-lettering (0: never)"),
    ):
        low, high = bounds[attribute]
        p.add_argument(flag, type=bounded(low, high), metavar="N", help=f"{what}; {low}-{high}")
    p.add_argument("--redrive-target", metavar="QUEUE", help="the dead-letter queue's name")


def message_verbs(verbs: Verbs) -> None:
    p = client_verb(verbs, "send", "send messages: each BODY, or each line of stdin", send)
    p.add_argument("queue", type=queue_ref, metavar="QUEUE")
    p.add_argument("bodies", nargs="*", default=[], metavar="BODY",  # a default: optional to argparse
                   help="a message (none: read stdin, one per line)")
    p.add_argument("--progress", action="store_true", help="draw the progress bar even if stderr is no tty")
    p = client_verb(verbs, "receive", "receive messages and print them", receive)
    p.add_argument("queue", type=queue_ref, metavar="QUEUE")
    p.add_argument("--size", type=bounded(1, MAX_BATCH), default=1, metavar="N",
                   help=f"at most N messages, 1-{MAX_BATCH} (1)")
    p.add_argument("--wait", type=bounded(0, MAX_WAIT), default=MAX_WAIT, metavar="S",
                   help=f"long poll up to S seconds, 0-{MAX_WAIT} ({MAX_WAIT})")
    p.add_argument("--visibility-timeout", type=bounded(0, MAX_VISIBILITY), metavar="S",
                   help=f"hide them S seconds, 0-{MAX_VISIBILITY} (the queue's)")
    p.add_argument("--delete", action="store_true", help="delete them (with their tokens) once printed")
    p = client_verb(verbs, "tail", "print and delete a queue's messages as they come, until Ctrl-C", tail)
    p.add_argument("queue", type=queue_ref, metavar="QUEUE")
    p.add_argument("--visibility-timeout", type=bounded(0, MAX_VISIBILITY), metavar="S",
                   help=f"hide them S seconds, 0-{MAX_VISIBILITY} (the queue's)")
    for name, help, command in (("purge", "delete every message of a queue", purge),
                                ("delete-queue", "delete a queue and all its messages", delete_queue)):
        client_verb(verbs, name, help, command).add_argument("queue", type=queue_ref, metavar="QUEUE")


def counts(s: QueueStats) -> dict[str, Any]:
    return {"id": s.queue.id, "name": s.queue.name, "messages": s.messages, "visible": s.visible,
            "in_flight": s.in_flight, "delayed": s.delayed, "oldest_message_age": s.oldest_message_age}


def print_message(m: Message, as_json: bool) -> None:
    if as_json:
        print_json(m, indent=None)
        return
    print(f"message {m.id}  {m.message_id}  received {m.receive_count}x  token {m.token}")
    print("\n".join("  " + line for line in m.body.split("\n")), flush=True)


# -- the client verbs: each (client, args) -> exit status --


def queues(client: Client, args: argparse.Namespace) -> int:
    stats = client.stats()
    if args.json:
        print_json([asdict(s.queue) | counts(s) for s in stats])
    elif not stats:
        print("no queues")
    else:
        table(("id", "name", "messages", "visible", "in flight", "delayed", "oldest age"), (
            (s.queue.id, s.queue.name, s.messages, s.visible, s.in_flight, s.delayed,
             age(s.oldest_message_age)) for s in stats))
    return OK


def stats(client: Client, args: argparse.Namespace) -> int:
    if args.queue is None:
        every = [counts(s) for s in client.stats()]
    else:
        queue = client.get_queue(args.queue)  # the broker's own queue_not_found
        every = [counts(s) for s in client.stats() if s.queue.id == queue.id]
        if not every:  # deleted in between
            raise QueueNotFound(f"queue {args.queue!r} does not exist")
    if args.json:
        print_json(every[0] if args.queue is not None else every)
        return OK
    keys = ("messages", "visible", "in_flight", "delayed")
    if args.queue is None:
        ages = [c["oldest_message_age"] for c in every if c["oldest_message_age"] is not None]
        every.append({"name": "total", **{k: sum(c[k] for c in every) for k in keys},
                      "oldest_message_age": max(ages, default=None)})
    table(("name", "messages", "visible", "in flight", "delayed", "oldest age"), (
        (c["name"], *(c[k] for k in keys), age(c["oldest_message_age"])) for c in every))
    return OK


def create(client: Client, args: argparse.Namespace) -> int:
    q = client.create_queue(
        args.queue, visibility_timeout=args.visibility_timeout, delay_seconds=args.delay,
        retention_seconds=args.retention, max_message_size=args.max_message_size,
        redrive_target=args.redrive_target, max_receive_count=args.max_receive_count,
    )
    if args.json:
        print_json(q)
        return OK
    dlq = f", dead letters to {q.redrive_target} after {plural(q.max_receive_count, 'receive')}"
    print(f"created queue {q.name} (id {q.id}): visibility timeout {q.visibility_timeout}s,"
          f" delay {q.delay_seconds}s, retention {q.retention_seconds}s,"
          f" max message size {q.max_message_size} bytes{dlq if q.redrive_target else ''}")
    return OK


def send(client: Client, args: argparse.Namespace) -> int:
    from wonderq.cli.progress import Progress

    if args.bodies:
        sent = client.send_batch(args.queue, args.bodies)
    else:
        if sys.stdin.isatty() and not args.json:
            print("wonderq: one message per line; end with Ctrl-D", file=sys.stderr)
        with Progress(sys.stderr, sys.stdin.buffer, args.progress or sys.stderr.isatty()) as progress:
            sent = send_lines(client, args.queue, sys.stdin.buffer, progress.update)
    if args.json:
        print_json({"queue": args.queue, "sent": len(sent), "messages": sent})
    elif len(sent) == 1:
        print(f"sent message {sent[0].id} ({sent[0].message_id}) to {args.queue}")
    else:
        print(f"sent {plural(len(sent), 'message')} to {args.queue}")
    return OK


def send_lines(
    client: Client, queue: QueueRef, lines: IO[bytes], update: Callable[[int, int], None]
) -> list[Sent]:
    """Send each non-empty line (UTF-8, without its line break) as a message, 10 per request;
    ``update(sent, bytes_read)`` after each request."""
    sent: list[Sent] = []
    batch: list[str] = []
    done = 0
    try:
        for number, raw in enumerate(lines, 1):
            done += len(raw)
            try:
                line = raw.decode().rstrip("\r\n")
            except UnicodeDecodeError:
                raise UsageError(f"line {number} of stdin is not UTF-8") from None
            if line:
                batch.append(line)
            if len(batch) == BATCH:
                sent += client.send_batch(queue, batch)
                batch = []
                update(len(sent), done)
        if batch:
            sent += client.send_batch(queue, batch)
            update(len(sent), done)
    except (WonderQError, UsageError, KeyboardInterrupt) as exc:
        exc.add_note(f"wonderq: {plural(len(sent), 'message')} had been sent")
        raise
    return sent


def receive(client: Client, args: argparse.Namespace) -> int:
    messages = client.receive(
        args.queue, size=args.size, wait=args.wait, visibility_timeout=args.visibility_timeout
    )
    if not messages:
        if not args.json:
            print("wonderq: no message", file=sys.stderr)
        else:
            print_json([])
        return EMPTY
    if args.json:
        print_json(messages)
    else:
        for m in messages:
            print_message(m, as_json=False)
    sys.stdout.flush()  # printed, really, before anything is deleted
    if args.delete:
        for m in messages:
            client.delete(m)
        if not args.json:
            print(f"wonderq: deleted {plural(len(messages), 'message')}", file=sys.stderr)
    return OK


class Stop:
    """SIGINT and SIGTERM for ``tail``: at once while it waits for messages, else once the
    messages in hand are printed and deleted."""

    def __init__(self) -> None:
        self.requested = False
        self.waiting = False

    def __call__(self, signum: int, frame: object) -> None:
        self.requested = True
        if self.waiting:
            raise KeyboardInterrupt


def tail(client: Client, args: argparse.Namespace) -> int:
    stop = Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.requested:
            try:
                stop.waiting = True
                messages = client.receive(args.queue, size=10, wait=20,
                                          visibility_timeout=args.visibility_timeout)
            except KeyboardInterrupt:
                break
            finally:
                stop.waiting = False
            for m in messages:
                print_message(m, args.json)
                client.delete(m)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return OK


def purge(client: Client, args: argparse.Namespace) -> int:
    n = client.purge(args.queue)
    if args.json:
        print_json({"queue": args.queue, "purged": n})
    else:
        print(f"purged {plural(n, 'message')} from {args.queue}")
    return OK


def delete_queue(client: Client, args: argparse.Namespace) -> int:
    client.delete_queue(args.queue)
    if args.json:
        print_json({"queue": args.queue, "deleted": True})
    else:
        print(f"deleted queue {args.queue}")
    return OK
