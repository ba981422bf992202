"""``wonderq send``'s progress bar, on stderr."""

from __future__ import annotations

import os
import stat
import time
from types import TracebackType
from typing import IO, Self


class Progress:
    """A progress bar on ``stream``, redrawn at most 10 times a second: by bytes when the
    source is a regular file (its size is known), else a count of messages sent."""

    WIDTH = 30

    def __init__(self, stream: IO[str], source: IO[bytes], enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self.total = remaining_bytes(source) if enabled else None
        self.started = self.drawn = time.monotonic()
        self.last = (0, 0)  # (messages sent, bytes read)
        self.length = 0  # of the line drawn, to blank out a longer one

    def update(self, sent: int, done: int) -> None:
        self.last = (sent, done)
        if self.enabled and time.monotonic() - self.drawn >= 0.1:
            self.draw()

    def draw(self) -> None:
        sent, done = self.last
        self.drawn = time.monotonic()
        text = f"{sent} sent, {sent / max(self.drawn - self.started, 1e-3):.0f}/s"
        if self.total:
            fraction = min(done / self.total, 1.0)
            full = int(fraction * self.WIDTH)
            text = f"[{'#' * full}{'-' * (self.WIDTH - full)}] {fraction:4.0%}  {text}"
        self.stream.write("\r" + text.ljust(self.length))
        self.stream.flush()
        self.length = len(text)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """The last count, then a line break, so what follows starts on a line of its own."""
        if self.enabled:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()


def remaining_bytes(source: IO[bytes]) -> int | None:
    """Bytes left to read, if ``source`` is a regular file."""
    try:
        fd = source.fileno()
        info = os.fstat(fd)
        return info.st_size - os.lseek(fd, 0, os.SEEK_CUR) if stat.S_ISREG(info.st_mode) else None
    except (OSError, ValueError):
        return None
