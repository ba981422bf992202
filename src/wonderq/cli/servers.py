"""The servers: ``wonderq broker``, ``dev``, ``user`` and ``up``.

``broker`` serves :func:`wonderq.broker.app.create_app` (in this process, or as
``--cluster`` workers); ``dev`` and ``user`` serve the dev tool and the user app
(:mod:`wonderq.apps`), in this process and never as a cluster. Each app module
is imported only when its verb runs.

``up`` reads the settings once and runs ``python -m wonderq broker``, ``dev`` and
``user`` as child processes with those settings in their environment
(``WONDERQ_*``), so all three agree; unless ``--broker-url`` or ``WONDERQ_URL``
says otherwise, the dev tool and user app talk to the broker ``up`` started. It
prints where each listens. Ctrl-C, SIGTERM or SIGHUP stops all three (SIGTERM to
each, SIGKILL after 15 s) and ``up`` exits 0; if a child exits on its own, ``up``
stops the others and exits 1 (5 if the child could not start, 2 if it found a setting
bad). Two services given one port are refused before any starts (2). With
``--tls-cert``/``--tls-key`` all three serve HTTPS (the pair is checked once, here),
and the dev tool and user app reach the broker over https, trusting the
certificate it serves (as ``WONDERQ_CA_FILE``, unless that is set). The children are
in their own process group, so a Ctrl-C reaches them once, through ``up``; an
``up`` killed with SIGKILL leaves them running.

A server that cannot start (its port in use, its database not to be opened) says
so in one line on stderr, naming the address or the database, with a hint naming the
flag of the command that was run (``up`` starts each child with ``--under-up``, so a
dev tool on a busy port names ``--dev-port``), and exits 5
(:data:`~wonderq.cli.output.CANNOT_START`); a bad setting (a database URL the backend
cannot parse, too) is usage (2).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, NamedTuple

from wonderq.cli.databases import DB_FLAG, invalid_url, redact, unsupported
from wonderq.cli.output import CANNOT_START, FAILED, OK, UNREACHABLE, USAGE, VERB_EPILOG, Run, UsageError, complain
from wonderq.edge.app import App
from wonderq.settings import BROKER_PORT, DEV_PORT, DURABILITY, LOG_LEVELS, USER_PORT, Settings, variable

if TYPE_CHECKING:
    from wonderq.edge.server import CannotStart

if TYPE_CHECKING:
    from wonderq.cli.output import Verbs

SERVER_STATUS = (
    f"{VERB_EPILOG}\n\nOn SIGTERM a server shuts down cleanly and then ends by that signal (up: exits 0)."
)


class Service(NamedTuple):
    verb: str
    doing: str  # what its verb does: run, serve
    what: str  # what the messages call it
    module: str  # the module with its create_app(settings)
    port_field: str  # the Settings field of its port; `up`'s flag for it is named after it
    default_port: int

    def port_flag(self, under_up: bool) -> str:
        """The flag that sets its port: ``--port`` on its own verb, ``--dev-port`` (…) under ``up``."""
        return "--" + self.port_field.replace("_", "-") if under_up else "--port"

    def port_setting(self, under_up: bool) -> str:
        """Its port's flag and variable, for a hint."""
        return f"{self.port_flag(under_up)} or {variable(self.port_field)}"


SERVICES = (
    Service("broker", "run", "broker", "wonderq.broker.app", "port", BROKER_PORT),
    Service("dev", "serve", "dev tool", "wonderq.apps.devtool", "dev_port", DEV_PORT),
    Service("user", "serve", "user app", "wonderq.apps.userapp", "user_port", USER_PORT),
)
INSECURE_APP = ("serve a non-loopback --host, or requests a proxy forwarded, to callers with no key"
                " (WONDERQ_INSECURE_NO_AUTH=1): without it the user app, which has no login, refuses to"
                " start or serve such a request, and the dev tool asks every such caller to log in")
UNDER_UP = "--under-up"  # how `up` starts each service: its messages name `up`'s flags
STOP_TIMEOUT = 15.0  # seconds a child gets to stop before SIGKILL


def register(verbs: Verbs) -> None:
    for service in SERVICES:
        p = server_verb(verbs, service.verb, f"{service.doing} the {service.what} (port {service.default_port})",
                        app_command(service))
        p.add_argument("--port", dest=service.port_field, type=int,
                       help=f"port ({variable(service.port_field)}, default {service.default_port})")
        p.add_argument(UNDER_UP, action="store_true", help=argparse.SUPPRESS)
        if service.verb != "broker":
            p.add_argument("--insecure-no-auth", action="store_const", const=True, help=INSECURE_APP)
    p = verbs.choices["broker"]
    database_flags(p)
    broker_flags(p)
    p = verbs.add_parser("ready", help="wait until this machine's broker answers /readyz (for systemd, docker)",
                         description="Exit 0 once the broker that `wonderq broker` with these settings serves"
                         " (its --host, --port and TLS, as WONDERQ_* give them) answers /readyz: its database is"
                         " open. Exit 3 if it has not within --wait seconds.", epilog=VERB_EPILOG)
    p.add_argument("--host", help="the broker's bound address (WONDERQ_HOST; a wildcard means 127.0.0.1)")
    p.add_argument("--port", type=int, help="its port (WONDERQ_PORT, default 3213)")
    p.add_argument("--wait", type=float, default=0.0, metavar="S", help="seconds to keep trying (default 0: once)")
    p.set_defaults(run=ready)
    p = server_verb(verbs, "up", "run the broker, the dev tool and the user app together", up)
    for service in SERVICES:
        p.add_argument(service.port_flag(under_up=True), dest=service.port_field, type=int, help=f"the"
                       f" {service.what}'s port ({variable(service.port_field)}, default {service.default_port})")
    database_flags(p)
    broker_flags(p)


def broker_flags(p: argparse.ArgumentParser) -> None:
    """The broker's own door, its caps and authentication (``up`` hands them to its broker)."""
    p.add_argument("--max-queues", type=int, metavar="N", help="queues in the database (WONDERQ_MAX_QUEUES, 10000)")
    p.add_argument("--max-in-flight", type=int, metavar="N", help="per queue (WONDERQ_MAX_IN_FLIGHT, 120000)")
    p.add_argument("--insecure-no-auth", action="store_const", const=True,
                   help="serve a non-loopback --host, or requests a proxy forwarded, with no API key"
                   " (WONDERQ_INSECURE_NO_AUTH=1; logs a warning); without it such a broker refuses to"
                   " start, and refuses proxied requests, until `wonderq keys create`")


def database_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database path or URL (WONDERQ_DB, default ./wonderq.db)")
    p.add_argument("--cluster", type=int, nargs="?", const=os.cpu_count() or 1, metavar="N",
                   help="run the broker as N worker processes on the port (WONDERQ_CLUSTER; N defaults to"
                   " the CPU count; 0, as without the flag: the broker in this one process)")
    p.add_argument("--durability", choices=DURABILITY,
                   help="full (fsync each commit; default) or normal (WONDERQ_DURABILITY)")
    p.add_argument("--pool-size", type=int,
                   help="PostgreSQL connections per process (WONDERQ_POOL_SIZE, default 10)")
    p.add_argument("--sqs-credentials", metavar="PATH", help="the SQS API's SigV4 access keys, one a line:"
                   " <key id> <secret> <read|write|admin> [queues] (WONDERQ_SQS_CREDENTIALS; mode 600)")


def server_verb(verbs: Verbs, name: str, help: str, command: Run) -> argparse.ArgumentParser:
    p = verbs.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                         epilog=SERVER_STATUS)
    p.add_argument("--host", help="address to bind (WONDERQ_HOST, default 127.0.0.1)")
    if name != "broker":
        p.add_argument("--broker-url", dest="url", metavar="URL",
                       help="where the dev tool and user app find the broker (WONDERQ_URL)")
    p.add_argument("--log-level", choices=LOG_LEVELS,
                   help="WONDERQ_LOG_LEVEL, default info: start, stop, errors and a summary a minute")
    p.add_argument("--access-log", action="store_const", const=True,
                   help="also one line per request (WONDERQ_ACCESS_LOG=1)")
    tls = p.add_argument_group("TLS: serve HTTPS with both, or neither")
    tls.add_argument("--tls-cert", metavar="PATH", help="PEM certificate (chain) (WONDERQ_TLS_CERT)")
    tls.add_argument("--tls-key", metavar="PATH", help="PEM private key, no passphrase (WONDERQ_TLS_KEY)")
    door = p.add_argument_group("the door: browser safety and connection limits")
    door.add_argument("--allowed-hosts", metavar="H,H", help="Host names to serve besides loopback and the"
                      " bound address, comma-separated; * for any (WONDERQ_ALLOWED_HOSTS)")
    door.add_argument("--allowed-origins", metavar="O,O", help="web origins that may change state,"
                      " e.g. https://app.example (WONDERQ_ALLOWED_ORIGINS; default: none)")
    for flag, what in (("--header-timeout", "seconds for a request's headers to arrive (10)"),
                       ("--body-timeout", "seconds for its body, after the headers; and for a client"
                                          " to take any of an answer (30)")):
        door.add_argument(flag, type=float, metavar="S", help=f"{what}; WONDERQ_{flag[2:].upper().replace('-', '_')}")
    for flag, what in (("--keep-alive-timeout", "seconds an idle connection stays open (75)"),
                       ("--max-header-bytes", "request line and headers, in bytes (65536)"),
                       ("--max-connections", "open at once per process, kept below the descriptor limit (10000)"),
                       ("--max-pending-bytes", "request bodies held in memory at once, per process (268435456)")):
        door.add_argument(flag, type=int, metavar="N", help=f"{what}; WONDERQ_{flag[2:].upper().replace('-', '_')}")
    p.set_defaults(run=command)
    return p


def app_command(service: Service) -> Run:
    """The verb serving ``service``'s ``create_app(settings)`` on its port."""

    def serve_app(args: argparse.Namespace, settings: Settings) -> int:
        create_app: Callable[[Settings], App] = importlib.import_module(service.module).create_app
        from wonderq.edge.logs import configure_logging
        from wonderq.edge.server import CannotStart, serve

        configure_logging(args.verb, settings.log_level)
        if service.verb != "broker":  # only the broker runs as a cluster
            settings = replace(settings, cluster=0)
        try:
            with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the loop's handler is set
                serve(lambda: create_app(settings), settings, getattr(settings, service.port_field))
        except CannotStart as exc:
            if (bad := bad_setting(exc, service)) is not None:
                return complain(bad, USAGE)
            message, hint = why_not(exc, settings, service, args.under_up)
            exc.add_note(f"  hint: {hint}")
            return complain(f"cannot start the {service.what}: {message}", CANNOT_START, exc)
        except ValueError as exc:  # a setting only the app could judge (a database URL's scheme)
            return complain(unsupported(exc, settings.db), USAGE)
        return OK

    return serve_app


def bad_setting(exc: CannotStart, service: Service) -> str | None:
    """A startup that failed on a setting rather than on the world: the broker's database URL,
    which the backend parses as it opens it (a port that is no number, say)."""
    from wonderq.backends import BadDatabaseUrl

    cause = exc.__cause__
    return invalid_url(cause) if isinstance(cause, BadDatabaseUrl) else None


def why_not(exc: CannotStart, settings: Settings, service: Service, under_up: bool) -> tuple[str, str]:
    """What failed, naming the address or database, and what to check."""
    from wonderq.edge.server import BadTls, CannotListen

    if isinstance(exc, BadTls):
        return str(exc), ("--tls-cert and --tls-key (WONDERQ_TLS_CERT, WONDERQ_TLS_KEY) name a PEM certificate"
                          " and its unencrypted private key, readable by this user")
    if isinstance(exc, CannotListen):
        flag = service.port_setting(under_up)
        if exc.in_use:
            return str(exc), f"another process listens there (`wonderq up` already?); choose another port ({flag})"
        return str(exc), f"check the address (--host or WONDERQ_HOST) and the port ({flag})"
    from wonderq.edge.exposure import Unprotected

    if isinstance(exc.__cause__, Unprotected):
        return str(exc.__cause__), exc.__cause__.hint
    if service.verb != "broker":
        return str(exc), "run it with --log-level debug for the whole story"
    from wonderq.broker.sqs.signatures import CredentialsError

    if isinstance(exc.__cause__, CredentialsError):
        return str(exc.__cause__), ("--sqs-credentials (WONDERQ_SQS_CREDENTIALS) names a file readable by this"
                                    " user only (chmod 600), a line per key: <access key id> <secret> <scope>"
                                    " [queues]")
    where = redact(settings.db)
    if settings.db.startswith("sqlite:"):
        hint = sqlite_hint(settings.db, str(exc))
    else:
        hint = f"PostgreSQL must run at that host and port and accept that user, password and database ({DB_FLAG})"
    return f"cannot open the database {where}: {exc}", hint


def sqlite_hint(url: str, why: str) -> str:
    """What to do about a SQLite database that would not open, by what is at its path."""
    from wonderq.backends import sqlite_path

    path = sqlite_path(url)
    if os.path.isdir(path) or not os.path.basename(path):
        return f"that is a directory: name a file in it (its database), with {DB_FLAG}"
    if "not a database" in why:
        return f"that file is not a SQLite database: name another with {DB_FLAG} (a new name makes one)"
    return f"its directory must exist and be writable by this user; choose another with {DB_FLAG}"


def local(host: str) -> str:
    """The host part of a URL reaching a server bound to ``host``."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Flag:
    """Set by the signals that stop ``up``."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self, signum: int, frame: object) -> None:
        self.set = True


def up(args: argparse.Namespace, settings: Settings) -> int:
    from wonderq.edge.server import CannotStart, check_tls, listen

    check_ports(settings)
    from wonderq.apps.userapp import check_exposure
    from wonderq.edge.exposure import Unprotected

    try:  # the user app would refuse, after the broker and dev tool started
        check_exposure(settings)
    except Unprotected as refused:
        return complain(f"cannot start the user app: {refused}\n  hint: {refused.hint}", CANNOT_START)
    try:  # checked once here, not once by each child
        scheme = "https" if check_tls(settings) else "http"
    except CannotStart as exc:
        exc.add_note(f"  hint: {why_not(exc, settings, SERVICES[0], under_up=True)[1]}")
        return complain(f"cannot start the servers: {exc}", CANNOT_START, exc)
    for service in SERVICES:  # a port in use is told before any address is printed (each child binds its own)
        try:
            listen(settings.host, getattr(settings, service.port_field)).close()
        except CannotStart as exc:
            exc.add_note(f"  hint: {why_not(exc, settings, service, under_up=True)[1]}")
            return complain(f"cannot start the {service.what}: {exc}", CANNOT_START, exc)
    if args.url is None and "WONDERQ_URL" not in os.environ:
        settings = replace(settings, url=f"{scheme}://{local(settings.host)}:{settings.port}")
        if scheme == "https" and not settings.ca_file:  # the siblings trust the certificate it serves
            settings = replace(settings, ca_file=os.path.abspath(settings.tls_cert))
    env = os.environ | {variable(f.name): str(getattr(settings, f.name)) for f in fields(settings)}
    stop = Flag()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    children: dict[str, subprocess.Popen[bytes]] = {}
    for service in SERVICES:
        children[service.what] = subprocess.Popen([sys.executable, "-m", "wonderq", service.verb, UNDER_UP],
                                                  env=env, process_group=0)
        print(f"{service.what:<8}  {scheme}://{local(settings.host)}:{getattr(settings, service.port_field)}",
              flush=True)
    return supervise(children, stop)


def ready(args: argparse.Namespace, settings: Settings) -> int:
    """Ask the local broker's /readyz until it answers 200 or ``--wait`` runs out. Its
    certificate is not verified: this checks a process on this machine, and trusts nothing it says."""
    import httpx

    url = f"{'https' if settings.tls_cert else 'http'}://{local(settings.host)}:{settings.port}/readyz"
    deadline = time.monotonic() + args.wait
    while True:
        try:  # straight to it: no HTTP_PROXY
            status = httpx.get(url, verify=False, timeout=2, trust_env=False).status_code
        except httpx.HTTPError as exc:
            status, why = 0, f"{type(exc).__name__}: {exc}"
        else:
            why = f"it answered {status}"
        if status == 200:
            return OK
        if time.monotonic() >= deadline:
            return complain(f"the broker at {url} is not ready ({why})", UNREACHABLE)
        time.sleep(0.2)


def check_ports(settings: Settings) -> None:
    """Two services on one port is usage, refused before any starts."""
    taken: dict[int, Service] = {}
    for service in SERVICES:
        port = getattr(settings, service.port_field)
        if (other := taken.setdefault(port, service)) is not service:
            raise UsageError(f"the {other.what} and the {service.what} cannot both listen on port {port}: give"
                             f" each its own ({other.port_setting(True)}; {service.port_setting(True)})")


def supervise(children: dict[str, subprocess.Popen[bytes]], stop: Flag) -> int:
    """Wait for a stop signal or a child's exit; then stop every child. 0 if asked to stop."""
    died = None
    while not stop.set and died is None:
        died = next((what for what, child in children.items() if child.poll() is not None), None)
        time.sleep(0.1)
    status = None
    if died is not None:
        status = children[died].returncode
        print(f"wonderq: the {died} exited (status {status}); stopping the others", file=sys.stderr)
    for child in reversed(children.values()):  # the broker last: the others still need it to stop
        if child.poll() is None:
            child.terminate()
        try:
            child.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if status is None:
        return OK
    return status if status in (CANNOT_START, USAGE) else FAILED
