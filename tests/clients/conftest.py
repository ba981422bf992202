"""Real SQS clients against a real SQS server in a subprocess.

The server is chosen by ``WONDERQ_SQS_TARGET``:

- ``moto``: moto's server (``python -m moto.server``), the known-good emulator the clients were
  first validated against;
- ``wonderq``: ``wonderq broker`` on SQLite;
- ``wonderq_pg``: ``wonderq broker`` on a throwaway PostgreSQL (tests/pgcluster.py).

Without the variable the target is :data:`DEFAULT_TARGET`. boto3's tests run on every backend of
the target (``wonderq`` means SQLite *and* PostgreSQL); the other clients run on the target alone.

Each client is installed by ``make clients`` (a prerequisite of ``make test``): boto3, moto and
Celery in ``.venv``, the pinned Query-protocol botocore in ``.venv-query``, the AWS CLI in
``.venv-awscli``, the Node SDK and sqs-consumer in ``tests/clients/node/node_modules``. A missing
client fails its tests when ``CI`` is set and skips them otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.conftest import BrokerProcess, free_port, fresh_database

# The target when WONDERQ_SQS_TARGET is unset: WonderQ itself (its SQS API is on main), on both
# backends for boto3. WONDERQ_SQS_TARGET=moto runs the same tests against moto's server.
DEFAULT_TARGET = "wonderq"
TARGETS = ("moto", "wonderq", "wonderq_pg")

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
QUERY_PYTHON = ROOT / ".venv-query" / "bin" / "python"
AWS_CLI = ROOT / ".venv-awscli" / "bin" / "aws"
REGION = "us-east-1"
ACCOUNT = "000000000000"  # WonderQ's default account id; moto's default is 123456789012

# What every client subprocess gets: dummy credentials and a region, nothing read from ~/.aws.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "wonderq",
    "AWS_SECRET_ACCESS_KEY": "wonderq",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def target() -> str:
    name = os.environ.get("WONDERQ_SQS_TARGET", DEFAULT_TARGET)
    if name not in TARGETS:
        raise pytest.UsageError(f"WONDERQ_SQS_TARGET={name!r}: expected one of {', '.join(TARGETS)}")
    return name


def boto3_targets() -> list[str]:
    """The servers boto3's tests run on: a WonderQ target means both backends."""
    name = target()
    return ["wonderq", "wonderq_pg"] if name.startswith("wonderq") else [name]


def missing(what: str, problem: str) -> NoReturn:
    """A client that is not installed: a failure in CI, a skip elsewhere."""
    message = f"{what} is not installed ({problem}); run `make clients`"
    if os.environ.get("CI"):
        pytest.fail(message + " - the client tests are required in CI", pytrace=False)
    pytest.skip(message)


def unique(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def client_env(**extra: str) -> dict[str, str]:
    """The environment of a client subprocess: ours, without AWS settings, plus dummy ones."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return base | AWS_ENV | extra


class MotoServer:
    """moto's server (``python -m moto.server``) on a free loopback port, in memory."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"moto.{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=client_env())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/moto-api/", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto_server did not start: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stop_broker(broker: BrokerProcess) -> None:
    broker.stop()
    log = broker.log.read_text()
    assert "Traceback" not in log, "a request crashed a WonderQ handler:\n" + log


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        missing("moto[server]", str(exc))
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def wonderq_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``wonderq broker --db <tmp>/q.db``."""
    folder = tmp_path_factory.mktemp("wonderq")
    broker = BrokerProcess(folder / "q.db", log_dir=folder).start()
    yield broker.url
    stop_broker(broker)


@pytest.fixture(scope="session")
def wonderq_pg_endpoint(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``wonderq broker --db postgresql://...``, a fresh database on the session's PostgreSQL."""
    broker = BrokerProcess(fresh_database(postgres), log_dir=tmp_path_factory.mktemp("wonderq_pg")).start()
    yield broker.url
    stop_broker(broker)


@pytest.fixture(scope="session")
def sqs_endpoint(request: pytest.FixtureRequest) -> str:
    """The URL of the session's SQS server (``WONDERQ_SQS_TARGET``), e.g. ``http://127.0.0.1:PORT``.
    Each server is started once a session, on first use, and shared."""
    return str(request.getfixturevalue(f"{target()}_endpoint"))


@pytest.fixture(scope="session", params=boto3_targets())
def sqs_backend_endpoint(request: pytest.FixtureRequest) -> str:
    """Like :func:`sqs_endpoint`, once for each backend of the target (boto3's tests)."""
    return str(request.getfixturevalue(f"{request.param}_endpoint"))


def run(cmd: list[str | Path], *, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a client subprocess to the end; its output is in the assertion message if it fails."""
    result = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert result.returncode == 0, f"{cmd} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def node() -> str:
    found = shutil.which("node")
    if found is None:
        missing("node (20 or later)", "no node on PATH")
    if not (NODE_DIR / "node_modules" / "@aws-sdk" / "client-sqs").is_dir():
        missing("@aws-sdk/client-sqs", f"no {NODE_DIR / 'node_modules'}")
    return found
