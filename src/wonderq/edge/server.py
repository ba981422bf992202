"""Serving an app: in this process, or as ``--cluster`` workers on one port.

This process binds the port first, so a port in use is one :class:`CannotListen`
and not a traceback; an app whose startup (its lifespan) fails raises
:class:`StartupFailed` with the app's own exception as its cause. In cluster mode
the app is started and stopped once here before any worker is forked (a database
that cannot be opened fails once, not once per worker), then the workers (each its
own event loop, backend connection and writer) are forked and any that dies is
replaced until this process is told to stop.

Each process serves its connections itself (:mod:`wonderq.edge.connection`, on
uvloop), runs the app's lifespan around them, and stops on SIGTERM or SIGINT:
idle connections close at once, a request in progress gets :data:`GRACE` seconds.
With ``tls_cert`` and ``tls_key`` it serves HTTPS (in every worker too); the pair
is loaded here first, so one file without the other, or a file that cannot be
read or is no PEM certificate and key, is one :class:`BadTls` before the port is
bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Coroutine
from typing import TypeVar

from wonderq.edge.app import App
from wonderq.edge.connections import Connections
from wonderq.edge.limits import Limits
from wonderq.settings import Settings

log = logging.getLogger("wonderq.server")
T = TypeVar("T")
BACKLOG = 8192
RESERVED_DESCRIPTORS = 64
STARTUP_FAILURE = 3  # a worker's exit status when the app's startup failed
GRACE = 3.0  # seconds a request in progress may take to finish once told to stop
ORPHAN_CHECK = 1.0  # seconds between a worker's looks at whether its supervisor lives


class CannotStart(Exception):
    """The server did not start; the message says why (the CLI adds a hint)."""


class CannotListen(CannotStart):
    def __init__(self, host: str, port: int, exc: OSError) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        self.host, self.port, self.in_use = host, port, exc.errno == errno.EADDRINUSE


class StartupFailed(CannotStart):
    """The app's lifespan raised ``__cause__``."""


class BadTls(CannotStart):
    """The certificate and key cannot be served (one missing, unreadable or invalid)."""


def check_tls(settings: Settings) -> bool:
    """Whether to serve HTTPS: both files given and usable (else :class:`BadTls`); neither, HTTP."""
    cert, key = settings.tls_cert, settings.tls_key
    if not cert and not key:
        return False
    if not (cert and key):
        given, missing = ("--tls-cert", "--tls-key") if cert else ("--tls-key", "--tls-cert")
        raise BadTls(f"{given} needs {missing} too (a certificate and its private key)")
    read_pem(cert, "certificate", "--tls-cert", b"-----BEGIN CERTIFICATE-----")
    key_pem = read_pem(key, "key", "--tls-key", b"PRIVATE KEY-----")
    if b"ENCRYPTED" in key_pem:
        raise BadTls(f"the key {key} is encrypted; give the key without its passphrase")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        why = "it is not the certificate's key" if exc.reason == "KEY_VALUES_MISMATCH" else str(exc.reason or exc)
        raise BadTls(f"cannot serve the certificate {cert} with the key {key}: {why}") from exc
    return True


def read_pem(path: str, what: str, flag: str, marker: bytes) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BadTls(f"cannot read the {what} {path} ({flag}): {exc.strerror or exc}") from exc
    if marker not in data:
        raise BadTls(f"the {what} {path} ({flag}) is not a PEM {what}")
    return data


def raise_file_limit() -> int:
    """Many keep-alive clients need many descriptors: use the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def connection_limits(settings: Settings, descriptors: int) -> Limits:
    """The settings' limits, with the connection cap below the descriptor limit
    (room kept for the database, the log and the listening socket)."""
    return Limits(
        header_timeout=settings.header_timeout, body_timeout=settings.body_timeout,
        keep_alive_timeout=settings.keep_alive_timeout, max_header_bytes=settings.max_header_bytes,
        max_connections=max(1, min(settings.max_connections, descriptors - RESERVED_DESCRIPTORS)),
    )


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plain HTTP (:func:`check_tls` vouched for the files)."""
    if not (settings.tls_cert and settings.tls_key):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is one clear error."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotListen(host, port, exc) from exc
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def serve(make_app: Callable[[], App], settings: Settings, port: int) -> None:
    """Serve in this process, or in ``settings.cluster`` forked workers."""
    scheme = "https" if check_tls(settings) else "http"
    limits = connection_limits(settings, raise_file_limit())
    sock = listen(settings.host, port)
    where = f"{scheme}://{settings.host}:{port}"
    if not settings.cluster:
        app = make_app()
        app.on_started = lambda: log.info("listening on %s", where)
        end_by(run_server(app, settings, sock, limits))
    else:
        check_startup(make_app())
        log.info("listening on %s with %d worker processes", where, settings.cluster)
        supervisor = Supervisor(make_app, settings, limits, sock)
        supervisor.run()
        log.info("every worker has stopped")
        end_by(supervisor.stopped_by)


def end_by(signum: int | None) -> None:
    """End as the signal's own default would have (SIGTERM: status -15), if one stopped us."""
    if signum is not None:
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        signal.raise_signal(signum)


def run_server(app: App, settings: Settings, sock: socket.socket, limits: Limits,
               parent: int | None = None) -> int | None:
    """Serve ``app`` on ``sock`` until SIGTERM or SIGINT (which it returns), or until the
    process ``parent`` is gone (a worker whose supervisor was killed); a failed startup as
    :class:`StartupFailed`."""
    try:
        return run(serve_until_stopped(app, settings, sock, limits, parent))
    finally:
        sock.close()


def run(main: Coroutine[None, None, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency wherever it installs
        return asyncio.run(main)
    return uvloop.run(main)


async def serve_until_stopped(app: App, settings: Settings, sock: socket.socket, limits: Limits,
                              parent: int | None = None) -> int | None:
    """The lifespan around the connections: started, served until a signal, drained, stopped.
    A TLS handshake is bounded like a request's headers (asyncio's own bound is 60 s): a
    socket that never finishes its handshake is not yet a connection the cap counts."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stopped_by: list[int] = []

    def told(signum: int) -> None:
        stopped_by.append(signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, told, signum)
    orphaned = loop.create_task(watch_parent(parent, stop)) if parent is not None else None
    served = app.served()
    try:
        await served.__aenter__()
    except Exception as exc:
        raise StartupFailed(str(exc) or type(exc).__name__) from exc
    try:
        connections = Connections(app, limits, settings.access_log)
        context = tls_context(settings)
        handshake = limits.header_timeout if context else None
        server = await loop.create_server(connections, sock=sock, backlog=BACKLOG, ssl=context,
                                          ssl_handshake_timeout=handshake)
        await stop.wait()
        server.close()
        await connections.close(GRACE)
    finally:
        if orphaned is not None:
            orphaned.cancel()
        await served.__aexit__(None, None, None)
    return stopped_by[0] if stopped_by else None


async def watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Stop once ``parent`` is gone: a worker's supervisor killed with SIGKILL cannot tell it
    to, and an orphan would keep serving the port a new broker needs."""
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK)
    log.warning("the supervisor (process %d) is gone: stopping", parent)
    stop.set()


def check_startup(app: App) -> None:
    """Run the app's startup and shutdown once (before forking workers)."""

    async def start_and_stop() -> None:
        async with app.running():
            pass

    try:
        asyncio.run(start_and_stop())
    except Exception as exc:
        raise StartupFailed(str(exc) or type(exc).__name__) from exc


class Supervisor:
    def __init__(self, make_app: Callable[[], App], settings: Settings, limits: Limits, sock: socket.socket) -> None:
        self.make_app, self.settings, self.limits, self.sock = make_app, settings, limits, sock
        self.workers: set[int] = set()
        self.stopping = self.failed = False
        self.stopped_by: int | None = None  # the signal that stopped it

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for _ in range(self.settings.cluster):
            self.spawn()
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            self.workers.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if code == STARTUP_FAILURE and not self.stopping:  # as the check before forking did not
                self.stop(signal.SIGTERM, None)
                self.failed = True
            if not self.stopping:
                log.warning("worker %d exited (status %d), starting another", pid, code)
                time.sleep(0.1)
                if not self.stopping:  # told to stop meanwhile: its socket is closed
                    self.spawn()
        self.sock.close()
        if self.failed:
            raise StartupFailed("a worker could not start (see its error above)")

    def spawn(self) -> None:
        supervisor = os.getpid()
        pid = os.fork()
        if pid:
            self.workers.add(pid)
            return
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            run_server(self.make_app(), self.settings, self.sock, self.limits, parent=supervisor)
        except StartupFailed as exc:
            log.error("worker %d could not start: %s", os.getpid(), exc)
            code = STARTUP_FAILURE
        except BaseException:
            log.exception("worker failed")
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def stop(self, signum: int, frame: object) -> None:
        self.stopped_by, self.stopping = signum, True
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        # Once the workers close theirs, this copy alone would keep the port listening: new
        # connections would queue where none accepts them, then be reset. Closed, they are refused
        # at once, and a load balancer sends them to another broker.
        self.sock.close()
