"""Settings: one frozen object, read once at start from flags and ``WONDERQ_*``.

A flag beats its environment variable, which beats the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

DURABILITY = ("full", "normal")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 3213
    db: str = "sqlite:///wonderq.db"  # database URL (a bare path means SQLite)
    cluster: int = 0  # worker processes; 0 runs the broker in this process
    durability: str = "full"  # full: fsync every commit; normal: on checkpoint
    log_level: str = "info"
    retention_interval: float = 60.0  # seconds between retention sweeps
    pool_size: int = 10  # PostgreSQL connections per broker process
    url: str = "http://127.0.0.1:3213"  # where the dev tool, user app and CLI find the broker
    dev_port: int = 3210
    user_port: int = 3000

    def __post_init__(self) -> None:
        if self.durability not in DURABILITY:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY)}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
        if not 0 < self.port < 65536:
            raise ValueError("port must be 1-65535")
        if self.cluster < 0:
            raise ValueError("cluster must be a positive number of workers")
        object.__setattr__(self, "db", database_url(self.db))

    @classmethod
    def load(cls, flags: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> Settings:
        """Flags (None = not given) over ``WONDERQ_<NAME>`` over defaults."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = flags.get(f.name)
            if raw is None:
                raw = env.get(f"WONDERQ_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls(), f.name))
            values[f.name] = kind(raw.lower() if f.name in ("durability", "log_level") else raw)
        return cls(**values)


def database_url(value: str) -> str:
    """Accept a URL or a plain SQLite path; return a URL with an absolute path."""
    if "://" not in value:
        return "sqlite:///" + os.path.abspath(value)
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(value.removeprefix("sqlite:///"))
    return value
