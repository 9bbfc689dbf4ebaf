"""A bounded fuzzer over real HTTP: hypothesis builds multipart, JSON and raw bodies from the fields editgate
knows, random names and values, and the fixtures' mutations; every answer must be a 2xx or a shaped 4xx.

Bounded for CI: a fixed number of examples per endpoint, no deadline (the machine is shared), no example
database (every run starts fresh). The number of requests sent is printed at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.intake.bounded_json import deeper_than
from tests import hostile_cases as hc

EXECUTIONS: dict[str, int] = {"requests": 0}
FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))

FIELDS = ["prompt", "mode", "protect", "tier", "quality", "size", "aspect", "anchor", "output_format", "n",
          "output_compression", "background", "mask_convention", "provider", "session_id", "parent_version",
          "metadata", "include_base64", "preservation", "experiment_key", "text_in_output", "model", "user",
          "response_format", "stream"]  # fmt: skip
FILES = ["image", "image[]", "mask", "reference", "references"]
IMAGES = st.sampled_from([data for _, data in hc.image_mutations() + hc.mask_mutations()]) | st.binary(max_size=256)
TEXT = st.text(max_size=40) | st.sampled_from(["remove the background", "0", "-1", "1024x1024", "9:16", "[", "{bad",
                                               "true", "face,pose", '["face"]', "ses_x", "null"])  # fmt: skip
RAW_TEXT = st.binary(max_size=40) | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
CHARSETS = st.sampled_from([None, b"text/plain", b"text/plain; charset=utf-8", b"text/plain; charset=latin-1",
                            b"text/plain; charset=x-nope", b"application/json", b"text/plain; charset="])  # fmt: skip

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=12,
)  # fmt: skip


@st.composite
def form_bodies(draw: st.DrawFn) -> hc.Body:
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from([*FIELDS, *FILES]) | st.text(max_size=6)).encode("utf-8", "surrogatepass")
        if draw(st.booleans()):
            filename = draw(st.sampled_from([b"a.png", b"", b"..\\x", b"\xff.png"]))
            ctype = draw(st.sampled_from([b"image/png", b"image/jpeg", b"text/plain", None]))
            parts.append(hc.Part(name, draw(IMAGES), filename, ctype))
        else:
            parts.append(hc.Part(name, draw(RAW_TEXT), None, draw(CHARSETS)))
    return hc.form("fuzzed form", parts)


@st.composite
def json_bodies(draw: st.DrawFn) -> hc.Body:
    body = draw(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), JSON_VALUES, max_size=6))
    if draw(st.booleans()):
        body["image"] = hc.b64(draw(IMAGES))
    if draw(st.booleans()):
        body["mask"] = draw(st.sampled_from([hc.b64(hc.COFFEE_MASK), "!!", 3]))
    content = json.dumps(body).encode()
    if draw(st.integers(0, 9)) == 0:  # now and then, break the text itself
        cut = draw(st.integers(0, len(content)))
        content = content[:cut] + draw(st.binary(max_size=8)) + content[cut:]
    return hc.Body("fuzzed json", content, "application/json")


RAW_BODIES = st.builds(
    hc.Body, st.just("fuzzed raw"), st.binary(max_size=200),
    st.sampled_from([None, "application/json", hc.MULTIPART, "multipart/form-data", "text/plain",
                     "application/x-www-form-urlencoded", "application/json; charset=x-nope"]),
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if EXECUTIONS["requests"]:
        hc.print_summary(
            request.config, f"\nfuzzer: {EXECUTIONS['requests']} requests, every one a 2xx or a shaped 4xx"
        )


def _check(url: str, path: str, body: hc.Body) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        response = hc.post(client, path, body)
    EXECUTIONS["requests"] += 1
    problem = hc.problem(response, path.startswith("/v1/images/"))
    assert problem is None, f"{path} {body.content[:200]!r} ({body.content_type}): {problem}"


ENDPOINTS = ["/v1/edits", "/v1/sessions", "/v1/images/edits"]


@pytest.mark.parametrize("path", ENDPOINTS)
@FUZZ
@given(body=form_bodies() | RAW_BODIES)
def test_fuzzed_forms_get_a_result_or_a_shaped_4xx(server: str, path: str, body: hc.Body) -> None:
    _check(server, path, body)


@pytest.mark.parametrize("path", ["/v1/edits", "/v1/sessions", "/v1/images/generations"])
@FUZZ
@given(body=json_bodies())
def test_fuzzed_json_gets_a_result_or_a_shaped_4xx(server: str, path: str, body: hc.Body) -> None:
    _check(server, path, body)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None, database=None)
@given(value=JSON_VALUES | st.text(alphabet='[]{}"\\', max_size=30).map(lambda t: [t]), depth=st.integers(0, 6))
def test_the_depth_scan_agrees_with_the_parsed_value(value: object, depth: int) -> None:
    text = json.dumps(value, ensure_ascii=bool(depth % 2))
    assert deeper_than(text.encode(), depth) == (_depth(value) > depth)
