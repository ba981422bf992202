"""The broker's REST API tested in-process: one app per module and backend,
driven through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, create_queue, fresh_database, unique
from tests.inprocess import InProcess, serving
from wonderq.broker.app import create_app
from wonderq.settings import Settings


@pytest.fixture(scope="module", params=BACKENDS)
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """One broker app per module and backend, in this process."""
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('broker')) / 'wonderq.db'}"
    else:
        url = fresh_database(request.getfixturevalue("postgres"))
    with serving(create_app(Settings(db=url, retention_interval=3600))) as app:
        yield app


@pytest.fixture
def client(broker: InProcess) -> Iterator[httpx.Client]:
    with broker.client() as c:
        yield c


@pytest.fixture
def queue(client: httpx.Client) -> dict[str, Any]:
    """A fresh, uniquely named queue per test."""
    return create_queue(client, unique("jobs"))
