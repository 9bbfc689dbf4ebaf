"""Cost that matches the bill: a Responses chain re-billed round after round, streamed previews, the
caller's ``max_cost_usd`` (before any call and after a fallback), and the breakdown behind each number.

Everything runs through the real SDKs against the emulator, which bills as the real API does."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import fixture_bytes

COFFEE = fixture_bytes("coffee.png")  # 600x400

# Prices (providers/pricing.yaml 2026-11-23): gpt-image-2 text in $5/M, image in $8/M, image out $30/M;
# gpt-5.4-mini (the Responses mainline) $0.75/M in, $4.50/M out.
# The image tool, every round: 600x400 (or the 992x672 it rendered, when chained) reads as 65 + 2 * 129 = 323
# image tokens; the output snaps to 992x672, high quality: ceil(7040 * 992 * 672 / 1024**2) = 4476 tokens.
IMAGE_IN, IMAGE_OUT = 323, 4476
ROUND_1_PROMPT = "replace the table with sand"  # 27 bytes -> 7 tokens
NEXT_PROMPT = "make the sand warmer"  # 20 bytes -> 5 tokens
# Mainline, round 1: 7 text + 85 for the uploaded image = 92 in, 24 out.
# Round 2 (previous_response_id, no image sent): 5 text + round 1 re-billed (92 in + 24 out + 85 for the image it
# generated, read again) = 206 in, 24 out.  Round 3: 5 + (206 + 24 + 85) = 320 in, 24 out.
MAINLINE_IN = {1: 92, 2: 5 + 92 + 24 + 85, 3: 5 + (5 + 92 + 24 + 85) + 24 + 85}
TEXT = {1: 7, 2: 5, 3: 5}


def _round_usd(n: int) -> float:
    tool = TEXT[n] * 5.00 + IMAGE_IN * 8.00 + IMAGE_OUT * 30.00
    return (tool + MAINLINE_IN[n] * 0.75 + 24 * 4.50) / 1e6


def _session(api: httpx.Client) -> str:
    r = api.post("/v1/sessions", files={"image": ("coffee.png", COFFEE)})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def _session_edit(api: httpx.Client, sid: str, prompt: str, **fields: str) -> httpx.Response:
    return api.post(f"/v1/sessions/{sid}/edits", data={"prompt": prompt, **fields})


def _requests(emulator: str) -> dict[str, int]:
    return httpx.get(f"{emulator}/_emulator/stats").json()["requests"]


def test_chained_responses_rounds_bill_the_history_and_the_estimate_predicts_it(cloud: httpx.Client) -> None:
    sid = _session(cloud)
    bodies = [_session_edit(cloud, sid, ROUND_1_PROMPT, provider="openai-responses").json()]
    bodies += [_session_edit(cloud, sid, NEXT_PROMPT).json() for _ in range(2)]
    for n, body in enumerate(bodies, start=1):
        assert body["provider"] == "openai-responses", body
        assert (body["chain"] or {}).get("continued", False) is (n > 1)
        cost = body["cost"]
        assert cost["usage"]["model_input_tokens"] == MAINLINE_IN[n], f"round {n}: the emulator re-bills the history"
        assert cost["actual_usd"] == pytest.approx(_round_usd(n), abs=1e-6)
        assert cost["estimated_usd"] == pytest.approx(_round_usd(n), abs=1e-6), f"round {n}: the estimate predicts it"
    assert bodies[2]["cost"]["actual_usd"] > bodies[1]["cost"]["actual_usd"] > 0


def test_the_cost_section_shows_prices_and_token_counts(cloud: httpx.Client) -> None:
    sid = _session(cloud)
    _session_edit(cloud, sid, ROUND_1_PROMPT, provider="openai-responses")
    cost = _session_edit(cloud, sid, NEXT_PROMPT).json()["cost"]
    assert cost["pricing_version"] == "2026-11-23"
    lines = {line["kind"]: line for line in cost["breakdown"]}
    assert lines["model_input_tokens"] == {"kind": "model_input_tokens", "tokens": MAINLINE_IN[2],
                                           "model": "gpt-5.4-mini", "usd_per_million": 0.75,
                                           "usd": round(MAINLINE_IN[2] * 0.75 / 1e6, 6)}  # fmt: skip
    image_out = lines["output_image_tokens"]
    assert image_out["model"] == "gpt-image-2" and image_out["tokens"] == IMAGE_OUT
    for line in cost["breakdown"] + cost["estimate_breakdown"]:
        assert line["usd"] == pytest.approx(line["tokens"] * line["usd_per_million"] / 1e6, abs=1e-6)
    assert sum(li["usd"] for li in cost["breakdown"]) == pytest.approx(cost["actual_usd"], abs=1e-5)
    assert sum(li["usd"] for li in cost["estimate_breakdown"]) == pytest.approx(cost["estimated_usd"], abs=1e-5)
    assert {li["kind"]: li["tokens"] for li in cost["breakdown"]} == {k: v for k, v in cost["usage"].items() if v}


def test_streamed_partial_images_add_output_tokens(cloud: httpx.Client) -> None:
    files = [("image", ("c.png", COFFEE))]
    plain = cloud.post("/v1/edits", files=files, data={"prompt": ROUND_1_PROMPT, "provider": "openai-images"}).json()
    data = {"prompt": ROUND_1_PROMPT, "provider": "openai-images", "partial_images": "2"}
    streamed = cloud.post("/v1/edits", files=files, data=data).json()
    extra = streamed["cost"]["usage"]["output_image_tokens"] - plain["cost"]["usage"]["output_image_tokens"]
    assert extra == 200, "each partial image is billed 100 image output tokens"
    assert streamed["cost"]["actual_usd"] == pytest.approx(plain["cost"]["actual_usd"] + 200 * 30.00 / 1e6, abs=1e-6)
    assert streamed["cost"]["estimated_usd"] == pytest.approx(streamed["cost"]["actual_usd"], abs=1e-9)


def test_max_cost_usd_refuses_before_any_call(cloud: httpx.Client, emulator: str) -> None:
    before = _requests(emulator)
    data = {"prompt": ROUND_1_PROMPT, "provider": "openai-images", "max_cost_usd": "0.05"}
    r = cloud.post("/v1/edits", files=[("image", ("c.png", COFFEE))], data=data)
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert error["code"] == "cost_cap_exceeded" and error["param"] == "max_cost_usd"
    assert error["max_cost_usd"] == 0.05 and error["estimated_usd"] > 0.05
    assert f"${error['estimated_usd']:.6f}" in error["message"] and "$0.050000" in error["message"]
    assert _requests(emulator) == before, "nothing was sent to any provider"


def test_max_cost_usd_in_a_session_counts_the_chain_history(cloud: httpx.Client, emulator: str) -> None:
    sid = _session(cloud)
    _session_edit(cloud, sid, ROUND_1_PROMPT, provider="openai-responses")
    before = _requests(emulator)
    cap = _round_usd(2) - 1e-7  # the round alone fits; the re-billed history does not
    r = _session_edit(cloud, sid, NEXT_PROMPT, max_cost_usd=f"{cap:.7f}")
    assert r.status_code == 402 and r.json()["error"]["estimated_usd"] == pytest.approx(_round_usd(2), abs=1e-6)
    assert _requests(emulator) == before
    ok = _session_edit(cloud, sid, NEXT_PROMPT, max_cost_usd=f"{_round_usd(2) + 1e-6:.7f}")
    assert ok.status_code == 200 and ok.json()["cost"]["max_cost_usd"] == pytest.approx(_round_usd(2) + 1e-6)


def test_a_fallback_above_the_cap_is_not_taken(cloud: httpx.Client, emulator: str,
                                               faults: Callable[..., None]) -> None:  # fmt: skip
    faults("gemini", unavailable=1.0)
    before = _requests(emulator)
    # standard tier routes to gemini (~$0.07) and falls back to openai-images (~$0.14): the cap sits between
    data = {"prompt": "make it brighter", "tier": "standard", "max_cost_usd": "0.1"}
    r = cloud.post("/v1/edits", files=[("image", ("c.png", COFFEE))], data=data)
    assert r.status_code == 502, r.text
    assert "Not tried, as their estimates are above max_cost_usd: openai-images" in r.json()["error"]["message"]
    edit = cloud.get(f"/v1/edits/{r.json()['error']['edit_id']}").json()
    outcomes = [(a["provider"], a["outcome"]) for a in edit["route"]["attempts"]]
    assert ("openai-images", "skipped_over_cost_cap") in outcomes and outcomes[0][0] == "gemini"
    skipped = next(a for a in edit["route"]["attempts"] if a["outcome"] == "skipped_over_cost_cap")
    assert "max_cost_usd $0.100000" in skipped["error"]
    after = _requests(emulator)
    assert after["images"] == before["images"], "the pricier fallback was never called"
    assert after["gemini"] > before["gemini"]


def test_max_cost_usd_on_the_drop_in_as_an_extra_field(cloud: httpx.Client, emulator: str) -> None:
    import openai

    sdk = openai.OpenAI(base_url=str(cloud.base_url).rstrip("/") + "/v1", api_key="sk-anything", max_retries=0)
    before = _requests(emulator)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(image=("c.png", COFFEE, "image/png"), prompt=ROUND_1_PROMPT, model="gpt-image-2",
                        extra_body={"max_cost_usd": "0.01"})  # fmt: skip
    assert caught.value.code == "cost_cap_exceeded" and "max_cost_usd $0.010000" in caught.value.message
    assert _requests(emulator) == before


def test_route_explain_shows_the_chained_estimate_and_the_cap(cloud: httpx.Client, emulator: str) -> None:
    sid = _session(cloud)
    _session_edit(cloud, sid, ROUND_1_PROMPT, provider="openai-responses")
    before = _requests(emulator)
    data = {"prompt": NEXT_PROMPT, "session_id": sid, "max_cost_usd": "0.1"}
    body = cloud.post("/v1/route/explain", data=data).json()
    first = body["decision"]["candidates"][0]
    assert first["provider"] == "openai-responses" and first["estimate_usd"] == pytest.approx(_round_usd(2), abs=1e-6)
    assert body["cost_cap"] == {"max_cost_usd": 0.1, "refused": True, "fallbacks_not_taken": ["openai-images"]}
    assert _requests(emulator) == before
