"""A drop-in edit (OpenAI's answer cannot show the preservation score) answers without measuring it;
the score is measured after the answer, bounded, and lands in the edit's record (or says it was skipped)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from tests.conftest import cloud_settings, decode, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
AUTH = {"Authorization": "Bearer dev"}


def _drop_in(url: str) -> httpx.Response:
    files = [("image", ("c.png", COFFEE, "image/png")), ("mask", ("m.png", MASK, "image/png"))]
    data = {"model": "gpt-image-2", "prompt": "a sandy beach", "response_format": "b64_json"}
    r = httpx.post(f"{url}/v1/images/edits", files=files, data=data, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r


def _native(url: str) -> dict[str, Any]:
    files = [("image", ("c.png", COFFEE, "image/png")), ("mask", ("m.png", MASK, "image/png"))]
    data = {"prompt": "a sandy beach", "provider": "openai-images", "mask_convention": "alpha", "size": "auto",
            "include_base64": "true"}  # fmt: skip
    r = httpx.post(f"{url}/v1/edits", files=files, data=data, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _record_when(url: str, edit_id: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the edit's record until ``ready`` holds (no timing asserted: a generous cap only ends a hang)."""
    for _ in range(600):
        record = httpx.get(f"{url}/v1/edits/{edit_id}", headers=AUTH, timeout=30).json()
        if ready(record):
            return record
        time.sleep(0.05)
    raise AssertionError(f"the record never got its score: {record.get('preservation')!r}")


def test_drop_in_answers_the_same_image_and_scores_after(cloud_server: str) -> None:
    native = _native(cloud_server)
    assert isinstance(native["preservation"]["mean_abs_diff"], float)  # the native answer shows it at once
    r = _drop_in(cloud_server)
    image = base64.b64decode(r.json()["data"][0]["b64_json"])
    # the same image as the scored path (pixels: each render carries its own content credentials)
    assert np.array_equal(decode(image), decode(base64.b64decode(native["images"][0]["b64_json"])))
    record = _record_when(cloud_server, r.headers["x-editgate-edit-id"], lambda rec: rec.get("preservation"))
    assert record["status"] == "succeeded"
    assert record["preservation"]["region"] == "outside_mask"
    assert isinstance(record["preservation"]["mean_abs_diff"], float)
    assert record["preservation"] == native["preservation"]  # the same measure, only later


def test_no_room_for_a_score_is_recorded_as_skipped(make_server: Callable[..., str], emulator: str) -> None:
    url = make_server(deferred_scores=0, **cloud_settings(emulator))
    r = _drop_in(url)
    assert r.json()["data"][0]["b64_json"]
    record = _record_when(url, r.headers["x-editgate-edit-id"], lambda rec: rec.get("preservation"))
    assert record["preservation"] == {"skipped": "load"}
