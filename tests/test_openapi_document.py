"""The OpenAPI document says what the service does: who may call, what each operation takes, and every
status it answers with in the shape it really has."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from router.api.openai_compat import _EDITGATE_EXTRAS, _OPENAI_ACCEPTED

PUBLIC = {"/healthz", "/readyz", "/metrics", "/v1/chips"}
"""Operations that take no tenant key."""
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def document(server: str) -> dict[str, Any]:
    return httpx.get(f"{server}/docs/openapi.json").json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, item in document["paths"].items() for m, op in item.items() if m in HTTP_METHODS]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _error_fields(document: dict[str, Any], response: dict[str, Any]) -> set[str]:
    schema = _resolve(document, response["content"]["application/json"]["schema"])
    assert schema["required"] == ["error"]
    detail = _resolve(document, schema["properties"]["error"])
    assert {"code", "message", "param"} <= set(detail["required"])
    return set(detail["properties"])


def test_bearer_security_scheme_guards_every_v1_operation(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, method, op in _operations(document):
        if path.startswith("/v1/") and path not in PUBLIC:
            assert op.get("security") == [{"bearer": []}], f"{method} {path}"
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_every_operation_documents_its_errors_in_the_error_shape(document: dict[str, Any]) -> None:
    for path, method, op in _operations(document):
        failures = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        if path in PUBLIC:
            continue
        assert any(code.startswith("4") for code in failures), f"{method} {path} documents no 4xx"
        assert "401" in failures and "500" in failures, f"{method} {path}"
        for code, response in failures.items():
            fields = _error_fields(document, response)
            if path.startswith("/v1/images/"):
                assert "type" in fields, f"{method} {path} {code}: OpenAI's error shape has 'type'"


def test_drop_in_request_bodies_list_what_the_handlers_accept(document: dict[str, Any]) -> None:
    accepted = _OPENAI_ACCEPTED | _EDITGATE_EXTRAS
    edit = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(edit["properties"]) == accepted | {"image", "image[]", "mask", "markup"}
    assert edit["properties"]["image"]["format"] == "binary"
    assert edit["properties"]["mask"]["format"] == "binary"
    assert edit["properties"]["markup"]["format"] == "binary"
    assert set(edit["required"]) == {"image", "prompt"}

    generate = document["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]["application/json"]
    assert set(generate["schema"]["properties"]) == accepted
    assert generate["schema"]["required"] == ["prompt"]
    assert generate["schema"]["properties"]["n"]["type"] == "integer"


# Requests that fail, each with the status it must get and the operation whose documentation must list it.
FAILURES = [
    ("get", "/v1/edits/ed_nope", None, 404, "/v1/edits/{edit_id}"),
    ("post", "/v1/edits", {"json": {"prompt": "x"}}, 422, "/v1/edits"),
    ("post", "/v1/edits", {"content": b"[", "headers": {"content-type": "application/json"}}, 400, "/v1/edits"),
    ("post", "/v1/edits", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "/v1/edits"),
    ("post", "/v1/images/edits", {"data": {"prompt": "x"}, "files": {"x": b""}}, 400, "/v1/images/edits"),
    ("post", "/v1/images/generations", {"json": {"prompt": "x", "model": "nope"}}, 400, "/v1/images/generations"),
    ("get", "/v1/sessions/s_nope", None, 404, "/v1/sessions/{session_id}"),
    ("get", "/v1/sessions/s_nope/compare?a=x&b=1", None, 400, "/v1/sessions/{session_id}/compare"),
    ("post", "/v1/edits/ed_nope/feedback", {"json": {"rating": 9}}, 400, "/v1/edits/{edit_id}/feedback"),
    ("get", "/v1/files/nope", None, 404, "/v1/files/{file_id}"),
    ("get", "/v1/experiments/nope/report", None, 404, "/v1/experiments/{name}/report"),
]


@pytest.mark.parametrize(("method", "url", "send", "status", "path"), FAILURES)
def test_real_failures_are_documented(
    document: dict[str, Any], client: httpx.Client, method: str, url: str, send: Any, status: int, path: str
) -> None:
    r = client.request(method, url, **(send or {}))
    assert r.status_code == status, r.text
    documented = document["paths"][path][method]["responses"]
    assert str(status) in documented, f"{method} {path} answers {status} but does not document it"
    assert set(r.json()["error"]) <= _error_fields(document, documented[str(status)])
