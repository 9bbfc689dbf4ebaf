"""The gateway with its cloud providers on the emulator: forced providers, mask lock, routing, faults."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest

from tests.conftest import decode, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
KEEP = decode(MASK)[..., 3] == 255  # cup, saucer, spoon


def _edit(client: httpx.Client, prompt: str = "replace the table with a sandy beach", mask: bool = True,
          **fields: str) -> httpx.Response:  # fmt: skip
    files = [("image", ("coffee.png", COFFEE))] + ([("mask", ("m.png", MASK))] if mask else [])
    return client.post("/v1/edits", files=files, data={"prompt": prompt, **fields})


@pytest.mark.parametrize(
    ("provider", "model", "usage_key"),
    [
        ("openai-images", "gpt-image-2", "output_image_tokens"),
        ("openai-responses", "gpt-5.4-mini", "model_input_tokens"),
        ("gemini", "gemini-3.1-flash-image", "output_image_tokens"),
    ],
)
def test_each_cloud_provider_serves_an_emulated_edit(
    cloud: httpx.Client, provider: str, model: str, usage_key: str
) -> None:
    r = _edit(cloud, provider=provider, output_format="jpeg")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["provider"], body["model"], body["emulated"]) == (provider, model, True)
    assert body["cost"]["usage"][usage_key] > 0 and body["cost"]["usage"]["input_image_tokens"] > 0
    image = body["images"][0]
    assert (image["width"], image["height"], image["format"]) == (600, 400, "jpeg")
    out = decode(cloud.get(image["url"]).content)
    assert out.shape == (400, 600, 3)
    edited = ~KEEP
    assert np.abs(out[edited].astype(int) - decode(COFFEE)[edited]).mean() > 20, "the edit region visibly changed"


def test_gemini_mask_lock_keeps_cup_saucer_and_spoon_exact(cloud: httpx.Client) -> None:
    r = _edit(cloud, provider="gemini", protect="only_mask")
    body = r.json()
    pres = body["preservation"]
    assert pres["mask_locked"] and pres["before_lock"]["mean_abs_diff"] > 0 and pres["before_lock"]["changed_share"] > 0
    assert pres["mean_abs_diff"] == 0.0 and pres["changed_share"] == 0.0
    out = decode(cloud.get(body["images"][0]["url"]).content)
    assert np.array_equal(out[KEEP][:, :3], decode(COFFEE)[KEEP])


def test_gemini_is_locked_even_without_the_chip_because_it_has_no_native_mask(cloud: httpx.Client) -> None:
    assert _edit(cloud, provider="gemini").json()["preservation"]["mask_locked"] is True


def test_native_mask_provider_locks_only_with_only_mask(cloud: httpx.Client) -> None:
    loose = _edit(cloud, provider="openai-images").json()["preservation"]
    assert loose["mask_locked"] is False and loose["mean_abs_diff"] > 0
    locked = _edit(cloud, provider="openai-images", protect="only_mask").json()["preservation"]
    assert locked["mask_locked"] is True and locked["mean_abs_diff"] == 0.0


@pytest.mark.parametrize(
    ("fields", "rule", "provider"),
    [
        ({"prompt": "remove the table"}, "free-removal", "local"),
        ({"tier": "pro"}, "pro-masked", "openai-images"),
        ({"prompt": 'write "OPEN" on the cup'}, "on-image-text", "gemini"),
        ({"prompt": "在杯子上写新年快乐"}, "on-image-text", "gemini"),
        ({}, "standard-tier", "gemini"),
        ({"size": "5000x3333"}, "large-output", "gemini"),
    ],
)
def test_default_policy_routes(cloud: httpx.Client, fields: dict, rule: str, provider: str) -> None:
    body = _edit(cloud, **fields).json()
    assert (body["route"]["rule"], body["provider"]) == (rule, provider), body.get("route")


def test_unavailable_provider_falls_back_and_the_trace_shows_both(
    cloud: httpx.Client, faults: Callable[..., None]
) -> None:
    faults("images", unavailable=1.0)
    body = _edit(cloud, tier="pro").json()
    assert body["provider"] == "gemini"
    attempts = body["route"]["attempts"]
    assert [(a["provider"], a["outcome"]) for a in attempts] == [
        ("openai-images", "provider_unavailable"),
        ("gemini", "ok"),
    ]
    assert body["route"]["fallbacks_taken"] == 1


def test_safety_block_is_returned_and_not_retried_elsewhere(cloud: httpx.Client, faults: Callable[..., None]) -> None:
    faults("gemini", safety=1.0)
    r = _edit(cloud)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "provider_rejected" and err["provider"] == "gemini"
    record = cloud.get(f"/v1/edits/{err['edit_id']}").json()
    assert [a["provider"] for a in record["route"]["attempts"]] == ["gemini"]
    assert record["status"] == "failed" and cloud.get(record["inputs"]["source"]["url"]).status_code == 200


def test_rate_limited_everywhere_is_a_429_with_retry_after(cloud: httpx.Client, faults: Callable[..., None]) -> None:
    faults("images", rate_limit=1.0, retry_after_s=7)
    r = _edit(cloud, provider="openai-images")
    assert r.status_code == 429
    assert r.json()["error"]["retry_after"] == 7.0 and r.headers["retry-after"] == "7"
