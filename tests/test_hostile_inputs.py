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


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if STATUS_COUNTS:
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(STATUS_COUNTS.items()))
        hc.print_summary(request.config, f"\nhostile inputs: {STATUS_COUNTS.total()} requests; status counts {counts}")


def send_all(client: httpx.Client, path: str, bodies: list[hc.Body]) -> list[str]:
    """Send each body; return what went wrong (empty when every answer was a 2xx or a shaped 4xx)."""
    failures = []
    for body in bodies:
        response = hc.post(client, path, body)
        STATUS_COUNTS[response.status_code] += 1
        if problem := hc.problem(response, path.startswith("/v1/images/")):
            failures.append(f"{path} {body.name}: {problem}")
    return failures


def _source_form(name: str, data: bytes, with_mask: bool, image_field: str = "image") -> hc.Body:
    parts = [hc.file_part(image_field, data), hc.field("prompt", "remove the background")]
    if with_mask:
        parts.append(hc.file_part("mask", hc.COFFEE_MASK))
    return hc.form(name, parts)


def source_forms(image_field: str = "image") -> list[hc.Body]:
    """Each mutated source as a form; coffee's mutations carry coffee's mask, so ``local`` decodes them."""
    return [_source_form(name, data, name.startswith("coffee"), image_field) for name, data in hc.image_mutations()]


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
    ),
    "session edits": lambda c: send_all(
        c, f"/v1/sessions/{_new_session(c)}/edits", [*mask_forms(False), *hc.form_cases(False), *hc.json_cases(False)]
    ),
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


# --- each cause the suite found, pinned on its own ----------------------------------------------------------

CORRUPT_STREAM = hc._idat_flipped(hc.COFFEE, 0.5)
"""coffee.png with one byte of its compressed pixels changed and every CRC recomputed: structurally perfect."""


def _edit(client: httpx.Client, image: bytes, mask: bytes | None = hc.COFFEE_MASK, **fields: str) -> httpx.Response:
    files = [("image", ("coffee.png", image, "image/png"))]
    files += [("mask", ("mask.png", mask, "image/png"))] if mask is not None else []
    return client.post("/v1/edits", files=files, data={"prompt": "remove the background", **fields})


def test_local_provider_failing_to_decode_a_source_is_a_422_naming_it_with_the_inputs_kept(
    cloud: httpx.Client, stack_ledger
) -> None:
    response = _edit(cloud, CORRUPT_STREAM)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"], error["provider"]) == ("invalid_image", "image", "local")
    stored = cloud.get(f"/v1/edits/{error['edit_id']}").json()
    assert stored["status"] == "failed" and stored["error"]["param"] == "image"
    assert cloud.get(stored["inputs"]["source"]["url"]).status_code == 200  # kept for a retry or a look
    assert [a["outcome"] for a in stored["route"]["attempts"]] == ["invalid_image"]  # no fallback to gemini
    assert [(r.provider, r.outcome) for r in stack_ledger(error["session_id"])] == [("local", "invalid_image")]


@pytest.mark.parametrize("provider", ["openai-images", "openai-responses", "gemini"])
def test_a_cloud_provider_that_cannot_decode_the_source_is_a_422_naming_it_without_a_fallback(
    cloud: httpx.Client, stack_ledger, provider: str
) -> None:
    response = _edit(cloud, CORRUPT_STREAM, mask=None, provider=provider)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"], error["provider"]) == ("invalid_image", "image", provider)
    assert [(r.provider, r.outcome) for r in stack_ledger(error["session_id"])] == [(provider, "invalid_image")]


def test_a_mask_whose_pixels_do_not_decode_is_a_422_naming_the_mask(client: httpx.Client) -> None:
    garbage_stream = hc._idat_replaced(hc.COFFEE_MASK, b"\x78\x9c" + bytes(range(256)) * 4)  # CRCs recomputed
    response = _edit(client, hc.COFFEE, garbage_stream)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_image" and response.json()["error"]["param"] == "mask"


@pytest.mark.parametrize(
    "name", ["IDAT zlib header broken, CRC fixed", "IDAT empty, CRC fixed", "IDAT before IHDR", "interlace 9"]
)
def test_intake_refuses_a_source_whose_structure_shows_it_cannot_decode(client: httpx.Client, name: str) -> None:
    data = dict(hc.png_mutations("png", hc.COFFEE))[f"png {name}"]
    response = client.post("/v1/sessions", files={"image": ("c.png", data, "image/png")})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "image"


def test_a_file_part_with_an_empty_filename_is_still_the_file(client: httpx.Client) -> None:
    parts = [hc.Part(b"image", hc.COFFEE, b"", b"image/png"), hc.field("prompt", "remove the background"),
             hc.Part(b"mask", hc.COFFEE_MASK, b"", b"image/png")]  # fmt: skip
    response = client.post("/v1/edits", content=hc.multipart(parts), headers={"content-type": hc.MULTIPART})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "part",
    [hc.field("prompt", b"remove \xff the background"), hc.field("prompt", b"remove it", b"text/plain; charset=x-no")],
)
def test_a_text_field_that_is_not_text_is_a_400_naming_it(client: httpx.Client, part: hc.Part) -> None:
    body = hc.multipart([hc.file_part("image", hc.COFFEE), part])
    response = client.post("/v1/edits", content=body, headers={"content-type": hc.MULTIPART})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_encoding" and response.json()["error"]["param"] == "prompt"


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"prompt": "x", "metadata": ' + hc.deep_object(1_000).encode() + b"}",
     b'{"prompt": "x", "protect": ' + hc.deep(100_000, '"face"').encode() + b"}"],
    ids=["100,000 [", "metadata 1,000 deep", "protect 100,000 deep"],
)  # fmt: skip
def test_json_nested_deeper_than_the_bound_is_a_400(client: httpx.Client, body: bytes) -> None:
    response = client.post("/v1/edits", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "json_too_deep"


def test_dropin_metadata_that_is_not_json_is_an_openai_400(client: httpx.Client) -> None:
    files = [("image", ("c.png", hc.COFFEE, "image/png"))]
    response = client.post("/v1/images/edits", files=files, data={"prompt": "x", "metadata": "{bad"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "metadata")


def test_dropin_fields_of_the_wrong_json_type_are_an_openai_400(client: httpx.Client) -> None:
    response = client.post("/v1/images/generations", json={"prompt": "a lighthouse", "quality": ["high"]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "quality"


def test_comparing_a_version_whose_pixels_do_not_decode_is_a_422(client: httpx.Client) -> None:
    created = client.post("/v1/sessions", files={"image": ("c.png", CORRUPT_STREAM, "image/png")})
    assert created.status_code == 201, created.text  # structurally sound: accepted undecoded
    response = client.get(f"/v1/sessions/{created.json()['id']}/compare", params={"a": 0, "b": 0})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_image"
