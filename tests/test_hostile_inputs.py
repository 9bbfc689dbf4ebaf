"""No input gets a 500: every generated hostile request gets a 4xx in the JSON error shape, or a result.

The cases (``tests/hostile_cases.py``) go over real HTTP to every endpoint that takes an upload, on the
``local``-only server and on the cloud server (emulated providers). The status counts are printed at the
end of the run, with the number of requests sent.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests import hostile_cases as hc

STATUS_COUNTS: Counter[int] = Counter()
OK = {200, 201}


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and STATUS_COUNTS:
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(STATUS_COUNTS.items()))
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nhostile inputs: {STATUS_COUNTS.total()} requests; status counts {counts}")


def _problem(response: httpx.Response, openai_shape: bool) -> str | None:
    """Why this answer breaks the promise (None when it keeps it)."""
    if response.status_code in OK:
        return None
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} without the JSON error shape: {response.text[:120]!r}"
    keys = {"message", "type", "param", "code"} if openai_shape else {"code", "message", "param"}
    if not isinstance(error, dict) or not keys <= error.keys() or not error["message"]:
        return f"{response.status_code} error not in the {'OpenAI' if openai_shape else 'editgate'} shape: {error}"
    return None


def send_all(client: httpx.Client, path: str, bodies: list[hc.Body]) -> list[str]:
    """Send each body; return what went wrong (empty when every answer was a 2xx or a shaped 4xx)."""
    failures = []
    for body in bodies:
        headers = {"content-type": body.content_type.encode("latin-1")} if body.content_type is not None else {}
        response = client.post(path, content=body.content, headers=headers)
        STATUS_COUNTS[response.status_code] += 1
        if problem := _problem(response, path.startswith("/v1/images/")):
            failures.append(f"{path} {body.name}: {problem}")
    return failures


def _source_form(name: str, data: bytes, with_mask: bool, image_field: str = "image") -> hc.Body:
    parts = [hc.file_part(image_field, data), hc.field("prompt", "remove the background")]
    if with_mask:
        parts.append(hc.file_part("mask", hc.COFFEE_MASK))
    return hc.form(name, parts)


def source_forms(image_field: str = "image", extra: list[hc.Part] | None = None) -> list[hc.Body]:
    """Each mutated source as a form; coffee's mutations carry coffee's mask, so ``local`` decodes them."""
    out = []
    for name, data in hc.image_mutations():
        body = _source_form(name, data, name.startswith("coffee"), image_field)
        if extra:
            body = hc.form(name, [*hc_parts(data, name, image_field), *extra])
        out.append(body)
    return out


def hc_parts(data: bytes, name: str, image_field: str) -> list[hc.Part]:
    parts = [hc.file_part(image_field, data), hc.field("prompt", "remove the background")]
    return [*parts, hc.file_part("mask", hc.COFFEE_MASK)] if name.startswith("coffee") else parts


def mask_forms(with_image: bool) -> list[hc.Body]:
    image = [hc.file_part("image", hc.COFFEE)] if with_image else []
    return [hc.form(name, [*image, hc.field("prompt", "remove the background"), hc.file_part("mask", data)])
            for name, data in hc.mask_mutations()]  # fmt: skip


def source_json(every: int = 2) -> list[hc.Body]:
    import json

    return [
        hc.Body(name, json.dumps({"prompt": "remove the background", "image": hc.b64(data),
                                  **({"mask": hc.b64(hc.COFFEE_MASK)} if name.startswith("coffee") else {})}).encode(),
                "application/json")
        for name, data in hc.image_mutations()[::every]
    ]  # fmt: skip


def session_json() -> list[hc.Body]:
    import json

    return [hc.Body(name, json.dumps({"image": base64.b64encode(data).decode()}).encode(), "application/json")
            for name, data in hc.image_mutations()[1::2]]  # fmt: skip


def _new_session(client: httpx.Client) -> str:
    response = client.post("/v1/sessions", files={"image": ("c.png", hc.COFFEE, "image/png")})
    assert response.status_code == 201, response.text
    return response.json()["id"]


SUITES = {
    "edits multipart": lambda c: send_all(c, "/v1/edits", [*source_forms(), *mask_forms(True), *hc.form_cases(True)]),
    "edits json": lambda c: send_all(c, "/v1/edits", [*hc.json_cases(True), *source_json()]),
    "sessions": lambda c: send_all(
        c,
        "/v1/sessions",
        [
            *[_source_form(n, d, False) for n, d in hc.image_mutations()],
            *session_json(),
            *hc.form_cases(True),
            *hc.json_cases(True),
        ],
    ),  # fmt: skip
    "session edits": lambda c: send_all(
        c, f"/v1/sessions/{_new_session(c)}/edits", [*mask_forms(False), *hc.form_cases(False), *hc.json_cases(False)]
    ),  # fmt: skip
    "openai edits": lambda c: send_all(c, "/v1/images/edits", [*hc.openai_edit_cases(), *source_forms()]),
    "openai generations": lambda c: send_all(c, "/v1/images/generations", hc.openai_generation_cases()),
}


@pytest.mark.parametrize("suite", SUITES)
def test_local_server_answers_every_hostile_input_with_a_4xx_or_a_result(client: httpx.Client, suite: str) -> None:
    failures = SUITES[suite](client)
    assert not failures, f"{len(failures)} answers broke the promise:\n" + "\n".join(failures)


@pytest.mark.parametrize("suite", SUITES)
def test_cloud_server_answers_every_hostile_input_with_a_4xx_or_a_result(cloud: httpx.Client, suite: str) -> None:
    failures = SUITES[suite](cloud)
    assert not failures, f"{len(failures)} answers broke the promise:\n" + "\n".join(failures)
