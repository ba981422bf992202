"""schemathesis against a running broker, on each backend: every REST operation
of the OpenAPI document, with generated valid input and generated invalid
input, and no answer may be a server error or break the document (its status,
content type, headers or schema).

Generated ids and names would almost always miss (404), so about half of them
are pointed at seeded queues and messages, and strings are mixed with NASTY
ones. Bounded: ``EXAMPLES`` cases per operation and mode, derandomized (the same
cases every run), at most ``BUDGET`` s each and ``BACKEND_BUDGET`` s a backend
(about 15-40 s on two cores). The broker's log must hold no traceback
afterwards (``module_broker``).

schemathesis's own pytest integration (``from_fixture``) fails on pytest 9
(it sets ``Function._nodeid``), so this drives its Python API: the document
(the one ``/openapi.json`` serves, which tests/broker/test_openapi.py checks),
one hypothesis test per operation and mode, each sent to the broker.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import BrokerProcess
from wonderq.broker.openapi import document

if os.environ.get("CI"):
    import schemathesis  # CI must run it: a missing schemathesis fails, never skips
else:
    schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 30  # per operation and generation mode
BUDGET = 20  # seconds one operation and mode may take
BACKEND_BUDGET = 100  # seconds all of them may take on one broker (this process's share of it)
SPENT: dict[str, float] = {}  # seconds so far, by broker URL
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
SCHEMA = schemathesis.openapi.from_dict(document())
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
# (operation, mode): invalid input only where there is input to get wrong
CASES = [(label, mode) for label, op in sorted(OPERATIONS.items()) for mode in GenerationMode
         if mode is GenerationMode.POSITIVE or op.path_parameters or op.query or op.body]


@dataclass
class Seed:
    queue_ids: list[int] = field(default_factory=list)
    queue_names: list[str] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)

    def aim(self, case: Any, data: st.DataObject) -> None:
        """Point about half the generated references at what exists (a random id
        or name would only ever be 404), and mix NASTY strings into the rest."""
        bodies = case.body if isinstance(case.body, dict) else {}
        for place in (case.path_parameters or {}, case.query or {}, bodies):
            for key, value in list(place.items()):
                pool = self.pool(key)
                if pool and data.draw(st.booleans(), label=f"aim {key}"):
                    place[key] = data.draw(st.sampled_from(pool), label=key)
                elif not pool and isinstance(value, str) and data.draw(st.integers(0, 3), label=key) == 0:
                    place[key] = data.draw(st.sampled_from(NASTY), label=key)

    def pool(self, key: str) -> list[Any]:
        return {
            "message": [str(i) for i in self.messages], "queue": [str(i) for i in self.queue_ids] + self.queue_names,
            "queue_id": self.queue_ids, "id": self.queue_ids,
            "queue_name": self.queue_names, "name": self.queue_names, "destination": self.queue_names,
        }.get(key, [])


# strings that broke something somewhere once, mixed into generated ones
NASTY = ["\x00", "a\x00b", "\u2028\u2029", "\ufeff", "%00", "' OR 1=1 --", "\\", "\U0001f44d" * 300,
         "é" * 70_000, " ", "\r\n", "null", "{}", "[]", "-1", "1e3", "0x10", "NaN", "9" * 30]


@pytest.fixture
def seeded(module_broker: BrokerProcess) -> Seed:
    """Something for generated requests to hit: the document's example queue
    ``jobs`` (first made, with the smallest ids), its dead-letter queue (a move's
    source), and messages in every state (small ids, as generated ids often are).
    Topped up before each operation, since others purge and delete queues."""
    seed = Seed()
    with httpx.Client(base_url=module_broker.url, timeout=10) as client:
        for name, more in (("jobs-dlq", {}), ("jobs", {"redrive_target": "jobs-dlq", "max_receive_count": 2})):
            r = client.post("/queues", json={"name": name, **more})
            assert r.status_code in (200, 409), r.text
            r = client.get("/queues/find", params={"name": name})
            seed.queue_ids.append(r.json()["id"])
            seed.queue_names.append(name)
        for name in ("jobs", "jobs-dlq"):
            r = client.post("/messages", json={"queue_name": name, "messages": [
                {"body": f"seed {i}", "delay_seconds": 0 if i % 3 else 60} for i in range(10)]})
            assert r.status_code == 200, r.text
            seed.messages += r.json()["ids"]
        r = client.get("/messages/consume", params={"queue_name": "jobs", "size": 3, "wait_time": 0})
        assert r.status_code == 200, r.text
    return seed


def shorten_long_polls(case: Any) -> None:
    """A consume on a queue that exists waits up to 20 s: keep generated waits
    at 0 or 1 s (an invalid one is left as it is, to be refused)."""
    if case.operation.path != "/messages/consume":
        return
    query = case.query if isinstance(case.query, dict) else {}
    wait = query.get("wait_time")
    if wait is None or (isinstance(wait, int) and not isinstance(wait, bool) and wait > 1):
        query["wait_time"] = 0 if wait is None else 1
    case.query = query


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{label}-{mode}" for label, mode in CASES])
def test_operation(module_broker: BrokerProcess, seeded: Seed, label: str, mode: GenerationMode) -> None:
    operation = OPERATIONS[label]
    started = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        assert time.monotonic() - started < BUDGET, f"{label} ({mode}) took over {BUDGET} s"
        if mode is GenerationMode.POSITIVE:
            seeded.aim(case, data)
        shorten_long_polls(case)
        case.call_and_validate(base_url=module_broker.url, checks=CHECKS, timeout=30)

    try:
        run()
    finally:
        SPENT[module_broker.url] = SPENT.get(module_broker.url, 0.0) + time.monotonic() - started
    assert SPENT[module_broker.url] < BACKEND_BUDGET, f"schemathesis took over {BACKEND_BUDGET} s on one backend"
