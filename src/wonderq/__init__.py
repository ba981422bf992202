"""WonderQ: a durable, SQS-style message queue broker, and its Python clients."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client", "Consumer", "__version__"]

if TYPE_CHECKING:
    from wonderq.client import AsyncClient, Client
    from wonderq.consumer import Consumer


def __getattr__(name: str) -> Any:
    """Import the clients on first use, so the broker never loads httpx."""
    if name in ("AsyncClient", "Client"):
        from wonderq import client

        return getattr(client, name)
    if name == "Consumer":
        from wonderq.consumer import Consumer

        return Consumer
    raise AttributeError(f"module 'wonderq' has no attribute {name!r}")
