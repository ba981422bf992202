"""Celery with kombu's SQS transport: a real worker subprocess and a real producer subprocess,
talking through the SQS server (``broker_url="sqs://key:secret@127.0.0.1:PORT"``), results through
Celery's file backend. Once with a queue kombu creates itself, once with a predefined queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.clients.conftest import HERE, client_env, missing, run, unique

PROJECT = HERE / "celery_project"


def celery_env(endpoint: str, queue: str, results: Path, queue_url: str | None = None) -> dict[str, str]:
    netloc = urlsplit(endpoint).netloc
    env = client_env(
        WONDERQ_CELERY_BROKER=f"sqs://wonderq:wonderq@{netloc}",
        WONDERQ_CELERY_QUEUE=queue,
        WONDERQ_CELERY_RESULTS=str(results),
        PYTHONPATH=str(PROJECT),
    )
    if queue_url:
        env["WONDERQ_CELERY_QUEUE_URL"] = queue_url
    return env


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        cmd = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "solo",
               "-Q", env["WONDERQ_CELERY_QUEUE"], "--without-heartbeat", "--without-mingle", "--without-gossip",
               "--loglevel", "info"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text()


@pytest.fixture
def celery_installed() -> None:
    try:
        import celery  # noqa: F401
        import kombu.transport.SQS  # noqa: F401
        import pycurl  # noqa: F401
    except ImportError as exc:
        missing("celery[sqs] (kombu's SQS transport, pycurl)", str(exc))


def produce(env: dict[str, str], count: int) -> dict[str, object]:
    out = run([sys.executable, PROJECT / "producer.py", str(count)], cwd=PROJECT, env=env, timeout=120)
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    yield workers
    for w in workers:
        w.stop()


def check_run(env: dict[str, str], workers: list[Worker], tmp_path: Path) -> None:
    worker = Worker(env, tmp_path / "worker.log")
    workers.append(worker)
    result = produce(env, 10)
    assert result == {
        "sums": [2 * i for i in range(10)],
        "flaky": {"value": "second time lucky", "retries": 1},
        "late": 42,
        "states": ["SUCCESS"],
    }
    log = worker.stop()
    assert worker.proc.returncode == 0, log
    assert "Retry in 1s" in log, log
    assert log.count("succeeded in") == 12, log
    assert "Traceback" not in log, log


def test_worker_and_producer_on_a_queue_kombu_creates(
    celery_installed: None, sqs_endpoint: str, worker_factory: list[Worker], tmp_path: Path
) -> None:
    (tmp_path / "results").mkdir()
    env = celery_env(sqs_endpoint, unique("celery"), tmp_path / "results")
    check_run(env, worker_factory, tmp_path)


def test_worker_and_producer_on_a_predefined_queue(
    celery_installed: None, sqs_endpoint: str, worker_factory: list[Worker], tmp_path: Path
) -> None:
    import boto3

    name = unique("celery-predefined")
    sqs = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1",
                       aws_access_key_id="wonderq", aws_secret_access_key="wonderq")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.close()
    (tmp_path / "results").mkdir()
    env = celery_env(sqs_endpoint, name, tmp_path / "results", queue_url=url)
    check_run(env, worker_factory, tmp_path)
    assert os.listdir(tmp_path / "results")  # the results went through the file backend
