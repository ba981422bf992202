"""The OpenAPI document of the REST API: valid OpenAPI 3.1, served at
``/openapi.json``, and describing exactly the routes the REST API has.
(``tests/system/test_schemathesis.py`` fuzzes a running broker with it.)"""

from __future__ import annotations

import re
from typing import Any

import httpx
from openapi_spec_validator import validate

from tests.conftest import create_queue, unique
from wonderq.broker.openapi import document
from wonderq.broker.rest import RestApi
from wonderq.errors import BY_CODE
from wonderq.models import ATTRIBUTES
from wonderq.settings import MAX_BATCH, QUEUE_BOUNDS

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def rest_routes() -> set[tuple[str, str]]:
    api = RestApi(None, None, None, None, None, None)  # type: ignore[arg-type]  # routes() only names the handlers
    return {(r.method.lower(), r.path) for r in api.routes()}


def documented() -> set[tuple[str, str]]:
    return {(method, path) for path, item in document()["paths"].items() for method in item if method in METHODS}


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_route_is_documented_and_nothing_else() -> None:
    assert rest_routes() == documented()


def test_the_limits_come_from_the_settings() -> None:
    schemas = document()["components"]["schemas"]
    queue = schemas["Queue"]["properties"]
    for name, low, high in QUEUE_BOUNDS:
        assert (queue[name]["minimum"], queue[name]["maximum"]) == (low, high)
    assert set(ATTRIBUTES) <= set(queue)
    batch = document()["paths"]["/messages"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["properties"]["messages"]["maxItems"] == MAX_BATCH
    codes = set(schemas["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    assert codes == set(BY_CODE) - {"internal_error"}


def test_path_parameters_match_the_routes() -> None:
    for path, item in document()["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, op in item.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (method, path)


def test_every_operation_documents_the_error_envelope() -> None:
    for path, item in document()["paths"].items():
        for method, op in item.items():
            assert {"200", "400", "503"} <= set(op["responses"]), (method, path)


def test_the_broker_serves_it(client: httpx.Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == document()


def test_a_created_queue_matches_its_schema(client: httpx.Client) -> None:
    """A cheap check of the response schemas without schemathesis: a real
    queue and its stats carry exactly the documented fields."""
    queue: dict[str, Any] = create_queue(client, unique("doc"))
    schemas = document()["components"]["schemas"]
    assert set(queue) == set(schemas["Queue"]["properties"])
    stats = next(s for s in client.get("/queues").json() if s["id"] == queue["id"])
    assert set(stats) == set(schemas["Queue"]["properties"]) | set(schemas["QueueStats"]["allOf"][1]["properties"])
