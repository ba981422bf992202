"""Running an ASGI app: in this process, or as ``--cluster`` workers on one port.

In cluster mode this process binds the port, forks the workers (each its own
event loop, backend connection and writer) and replaces any worker that dies
until it is told to stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable

import uvicorn

from wonderq.edge.app import App
from wonderq.edge.connections import LimitedProtocol, Limits
from wonderq.settings import Settings

log = logging.getLogger("wonderq.server")
BACKLOG = 8192
RESERVED_DESCRIPTORS = 64


def configure_logging(settings: Settings) -> None:
    """One format for every process; the HTTP client's per-request lines only when debugging."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if settings.log_level != "debug":
        logging.getLogger("httpx").setLevel(logging.WARNING)


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
        max_header_bytes=settings.max_header_bytes,
        max_connections=max(1, min(settings.max_connections, descriptors - RESERVED_DESCRIPTORS)),
    )


def uvicorn_config(app: App, settings: Settings, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=settings.host, port=port, loop="uvloop", http=LimitedProtocol,
        lifespan="on", log_level=settings.log_level,
        access_log=settings.log_level in ("info", "debug"),
        backlog=BACKLOG, timeout_keep_alive=settings.keep_alive_timeout, timeout_graceful_shutdown=3,
        server_header=False, date_header=False, proxy_headers=False,
    )


def serve(make_app: Callable[[], App], settings: Settings, port: int) -> None:
    """Serve in this process, or in ``settings.cluster`` forked workers."""
    LimitedProtocol.limits = connection_limits(settings, raise_file_limit())
    if not settings.cluster:
        uvicorn.Server(uvicorn_config(make_app(), settings, port)).run()
        return
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    Supervisor(make_app, settings, port, sock).run()


class Supervisor:
    def __init__(
        self, make_app: Callable[[], App], settings: Settings, port: int, sock: socket.socket
    ) -> None:
        self.make_app, self.settings, self.port, self.sock = make_app, settings, port, sock
        self.workers: set[int] = set()
        self.stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.warning("cluster of %d workers on %s:%d", self.settings.cluster, self.settings.host, self.port)
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
            if not self.stopping:
                log.warning("worker %d exited (status %d), starting another", pid, status)
                time.sleep(0.1)
                self.spawn()
        self.sock.close()

    def spawn(self) -> None:
        pid = os.fork()
        if pid:
            self.workers.add(pid)
            return
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            config = uvicorn_config(self.make_app(), self.settings, self.port)
            uvicorn.Server(config).run(sockets=[self.sock])
        except BaseException:
            log.exception("worker failed")
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
