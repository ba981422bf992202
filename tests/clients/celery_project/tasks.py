"""The Celery app of tests/clients/test_celery.py, for the worker and the producer alike.

Configured from the environment so both ends agree: ``WONDERQ_CELERY_BROKER`` (``sqs://key:secret@
127.0.0.1:PORT``), ``WONDERQ_CELERY_QUEUE`` (the queue's name), ``WONDERQ_CELERY_QUEUE_URL`` (set:
a predefined queue at that URL; unset: kombu creates the queue itself) and
``WONDERQ_CELERY_RESULTS`` (a folder for Celery's file result backend, so results need no server).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery, Task

QUEUE = os.environ["WONDERQ_CELERY_QUEUE"]
RESULTS = Path(os.environ["WONDERQ_CELERY_RESULTS"])

transport_options: dict[str, Any] = {
    "region": "us-east-1",
    "is_secure": False,
    "wait_time_seconds": 1,  # long polls short enough for the worker to stop quickly
    "polling_interval": 0.1,
    "visibility_timeout": 60,
}
if os.environ.get("WONDERQ_CELERY_QUEUE_URL"):
    transport_options["predefined_queues"] = {QUEUE: {
        "url": os.environ["WONDERQ_CELERY_QUEUE_URL"],
        "access_key_id": "wonderq", "secret_access_key": "wonderq",
    }}

app = Celery("wonderq_tests")
app.conf.update(
    broker_url=os.environ["WONDERQ_CELERY_BROKER"],
    broker_transport_options=transport_options,
    broker_connection_retry_on_startup=True,
    result_backend=f"file://{RESULTS}",
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_enable_remote_control=False,  # SQS has no fanout: no pidbox queues
    worker_send_task_events=False,
    worker_prefetch_multiplier=1,
    task_acks_late=True,
)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True, max_retries=3)
def flaky(self: Task, value: str) -> dict[str, Any]:
    """Fails its first run and asks to be retried a second later; then succeeds."""
    if self.request.retries == 0:
        raise self.retry(countdown=1)
    return {"value": value, "retries": self.request.retries}
