"""Wake-ups between broker processes that share one SQLite file.

Each process binds a Unix datagram socket in a directory named after the
database, and after every commit that made messages visible it sends the
other sockets there ``(queue_id, count)`` pairs; the receiver wakes that many
of its own parked consumers. A socket whose process died is removed by the
first sender that finds it refusing. Datagrams are best effort: a lost one
costs at most one safety poll interval, never a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import struct
import tempfile
import time
from collections.abc import Callable

PAIR = struct.Struct("<qi")
REFRESH = 1.0  # seconds between re-reads of the directory


class Wakeups:
    def __init__(self, db_path: str, on_wake: Callable[[int, int], None]) -> None:
        digest = hashlib.sha1(os.path.realpath(db_path).encode()).hexdigest()[:16]
        self.directory = os.path.join(tempfile.gettempdir(), f"wonderq-{digest}")
        self.path = os.path.join(self.directory, f"{os.getpid()}.sock")
        self._on_wake = on_wake
        self._sock: socket.socket | None = None
        self._peers: list[str] = []
        self._listed_at = 0.0

    def start(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self.path)
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._read)

    def close(self) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):  # the last process out removes the directory
            os.rmdir(self.directory)

    def send(self, woken: list[tuple[int, int]]) -> None:
        if self._sock is None or not woken or not (peers := self._list()):
            return  # alone (no --cluster): no payload made, which over 10,000 queues is 32 pairs a commit
        payload = b"".join(PAIR.pack(q, n) for q, n in woken)
        for peer in list(peers):  # a copy: _forget removes from the list
            try:
                self._sock.sendto(payload, peer)
            except (ConnectionRefusedError, FileNotFoundError):
                self._forget(peer)
            except BlockingIOError:
                pass  # the peer is swamped; its safety poll covers it

    def _list(self) -> list[str]:
        now = time.monotonic()
        if now - self._listed_at > REFRESH:
            self._listed_at = now
            try:
                names = os.listdir(self.directory)
            except FileNotFoundError:
                names = []
            self._peers = [
                os.path.join(self.directory, n) for n in names
                if n.endswith(".sock") and os.path.join(self.directory, n) != self.path
            ]
        return self._peers

    def _forget(self, peer: str) -> None:
        with contextlib.suppress(ValueError):
            self._peers.remove(peer)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(peer)

    def _read(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            for offset in range(0, len(data) - PAIR.size + 1, PAIR.size):
                self._on_wake(*PAIR.unpack_from(data, offset))
