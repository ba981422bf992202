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
stops the others and exits 1 (5 if the child could not start). With
``--tls-cert``/``--tls-key`` all three serve HTTPS (the pair is checked once, here),
and the dev tool and user app reach the broker over https, trusting the
certificate it serves (as ``WONDERQ_CA_FILE``, unless that is set). The children are
in their own process group, so a Ctrl-C reaches them once, through ``up``; an
``up`` killed with SIGKILL leaves them running.

A server that cannot start (its port in use, its database not to be opened) says
so in one line on stderr, naming the address or the database, with a hint, and
exits 5 (:data:`~wonderq.cli.output.CANNOT_START`); a bad setting is usage (2).
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
from typing import TYPE_CHECKING

from wonderq.cli.output import CANNOT_START, FAILED, OK, USAGE, VERB_EPILOG, Run, complain
from wonderq.edge.app import App
from wonderq.settings import BROKER_PORT, DEV_PORT, DURABILITY, LOG_LEVELS, USER_PORT, Settings

if TYPE_CHECKING:
    from wonderq.edge.server import CannotStart

if TYPE_CHECKING:
    from wonderq.cli.output import Verbs

SERVER_STATUS = (
    f"{VERB_EPILOG}\n\nOn SIGTERM a server shuts down cleanly and then ends by that signal (up: exits 0)."
)
SERVICES = (  # verb, what it is, the module with its create_app(settings), the Settings field of its port
    ("broker", "broker", "wonderq.broker.app", "port"),
    ("dev", "dev tool", "wonderq.apps.devtool", "dev_port"),
    ("user", "user app", "wonderq.apps.userapp", "user_port"),
)
STOP_TIMEOUT = 15.0  # seconds a child gets to stop before SIGKILL


def register(verbs: Verbs) -> None:
    p = server_verb(verbs, "broker", f"run the broker (port {BROKER_PORT})", app_command(*SERVICES[0][2:]))
    p.add_argument("--port", type=int, help=f"port (WONDERQ_PORT, default {BROKER_PORT})")
    database_flags(p)
    auth_flags(p)
    p.add_argument("--max-queues", type=int, metavar="N", help="queues in the database (WONDERQ_MAX_QUEUES, 10000)")
    p.add_argument("--max-in-flight", type=int, metavar="N", help="per queue (WONDERQ_MAX_IN_FLIGHT, 120000)")
    for (verb, what, module, field), default in zip(SERVICES[1:], (DEV_PORT, USER_PORT), strict=True):
        p = server_verb(verbs, verb, f"serve the {what} (port {default})", app_command(module, field))
        p.add_argument("--port", dest=field, type=int, help=f"WONDERQ_{field.upper()}, default {default}")
    p = server_verb(verbs, "up", "run the broker, the dev tool and the user app together", up)
    p.add_argument("--port", type=int, help=f"the broker's port (WONDERQ_PORT, default {BROKER_PORT})")
    p.add_argument("--dev-port", type=int, help=f"the dev tool's port (WONDERQ_DEV_PORT, default {DEV_PORT})")
    p.add_argument("--user-port", type=int, help=f"the user app's port (WONDERQ_USER_PORT, default {USER_PORT})")
    database_flags(p)
    auth_flags(p)


def auth_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure-no-auth", action="store_const", const=True,
                   help="serve a non-loopback --host with no API key (WONDERQ_INSECURE_NO_AUTH=1; logs a"
                   " warning); without it such a broker refuses to start until `wonderq keys create`")


def database_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database path or URL (WONDERQ_DB, default ./wonderq.db)")
    p.add_argument("--cluster", type=int, nargs="?", const=os.cpu_count() or 1,
                   help="run the broker as N worker processes on the port"
                   " (WONDERQ_CLUSTER; N defaults to the CPU count)")
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
                       ("--body-timeout", "seconds for its body, after the headers (30)")):
        door.add_argument(flag, type=float, metavar="S", help=f"{what}; WONDERQ_{flag[2:].upper().replace('-', '_')}")
    for flag, what in (("--keep-alive-timeout", "seconds an idle connection stays open (75)"),
                       ("--max-header-bytes", "request line and headers, in bytes (65536)"),
                       ("--max-connections", "open at once per process, kept below the descriptor limit (10000)"),
                       ("--max-pending-bytes", "request bodies held in memory at once, per process (268435456)")):
        door.add_argument(flag, type=int, metavar="N", help=f"{what}; WONDERQ_{flag[2:].upper().replace('-', '_')}")
    p.set_defaults(run=command)
    return p


def app_command(module: str, port_field: str) -> Run:
    """The verb serving ``module.create_app(settings)`` on the port in ``port_field``."""

    def serve_app(args: argparse.Namespace, settings: Settings) -> int:
        create_app: Callable[[Settings], App] = importlib.import_module(module).create_app
        from wonderq.edge.logs import configure_logging
        from wonderq.edge.server import CannotStart, serve

        configure_logging(args.verb, settings.log_level)
        if port_field != "port":  # only the broker runs as a cluster
            settings = replace(settings, cluster=0)
        try:
            with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the loop's handler is set
                serve(lambda: create_app(settings), settings, getattr(settings, port_field))
        except CannotStart as exc:
            message, hint = why_not(exc, settings, args.verb, port_field)
            exc.add_note(f"  hint: {hint}")
            return complain(f"cannot start the {args.verb}: {message}", CANNOT_START, exc)
        except ValueError as exc:  # a setting only the app could judge (a database URL's scheme)
            return complain(exc, USAGE)
        return OK

    return serve_app


def why_not(exc: CannotStart, settings: Settings, verb: str, port_field: str) -> tuple[str, str]:
    """What failed, naming the address or database, and what to check."""
    from wonderq.edge.server import BadTls, CannotListen

    if isinstance(exc, BadTls):
        return str(exc), ("--tls-cert and --tls-key (WONDERQ_TLS_CERT, WONDERQ_TLS_KEY) name a PEM certificate"
                          " and its unencrypted private key, readable by this user")
    if isinstance(exc, CannotListen):
        flag = f"--port or WONDERQ_{port_field.upper()}"
        if exc.in_use:
            return str(exc), f"another process listens there (`wonderq up` already?); choose another port ({flag})"
        return str(exc), f"check the address (--host or WONDERQ_HOST) and the port ({flag})"
    if verb != "broker":
        return str(exc), "run it with --log-level debug for the whole story"
    from wonderq.broker.keys import Unprotected
    from wonderq.broker.sqs.signatures import CredentialsError

    if isinstance(exc.__cause__, Unprotected):
        return str(exc.__cause__), exc.__cause__.hint
    if isinstance(exc.__cause__, CredentialsError):
        return str(exc.__cause__), ("--sqs-credentials (WONDERQ_SQS_CREDENTIALS) names a file readable by this"
                                    " user only (chmod 600), a line per key: <access key id> <secret> <scope>"
                                    " [queues]")
    where = redact(settings.db)
    if settings.db.startswith("sqlite:"):
        hint = "its directory must exist and be writable by this user; choose another with --db or WONDERQ_DB"
    else:
        hint = ("PostgreSQL must run at that host and port and accept that user, password and database"
                " (--db or WONDERQ_DB)")
    return f"cannot open the database {where}: {exc}", hint


def redact(url: str) -> str:
    """The URL without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def local(host: str) -> str:
    """The host part of a URL reaching a server bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class Flag:
    """Set by the signals that stop ``up``."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self, signum: int, frame: object) -> None:
        self.set = True


def up(args: argparse.Namespace, settings: Settings) -> int:
    from wonderq.edge.server import CannotStart, check_tls

    try:  # checked once here, not once by each child
        scheme = "https" if check_tls(settings) else "http"
    except CannotStart as exc:
        exc.add_note(f"  hint: {why_not(exc, settings, 'up', 'port')[1]}")
        return complain(f"cannot start the servers: {exc}", CANNOT_START, exc)
    if args.url is None and "WONDERQ_URL" not in os.environ:
        settings = replace(settings, url=f"{scheme}://{local(settings.host)}:{settings.port}")
        if scheme == "https" and not settings.ca_file:  # the siblings trust the certificate it serves
            settings = replace(settings, ca_file=os.path.abspath(settings.tls_cert))
    env = os.environ | {f"WONDERQ_{f.name.upper()}": str(getattr(settings, f.name)) for f in fields(settings)}
    stop = Flag()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    children: dict[str, subprocess.Popen[bytes]] = {}
    for verb, what, _, field in SERVICES:
        children[what] = subprocess.Popen([sys.executable, "-m", "wonderq", verb], env=env, process_group=0)
        print(f"{what:<8}  {scheme}://{local(settings.host)}:{getattr(settings, field)}", flush=True)
    return supervise(children, stop)


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
    return CANNOT_START if status == CANNOT_START else FAILED
