"""A Gemini session is a conversation: each version keeps the history (a blob) and the next round continues it
through the real gateway, the real google-genai SDK and the emulator over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import cloud_settings, fixture_bytes

COFFEE = fixture_bytes("coffee.png")


@pytest.fixture(scope="module")
def api(
    make_server: Callable[..., str], emulator: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    url = make_server(data_dir=tmp_path_factory.mktemp("gemini-chains"), **cloud_settings(emulator))
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


def _edit(api: httpx.Client, sid: str, prompt: str, **fields: str) -> dict:
    r = api.post(f"/v1/sessions/{sid}/edits", data={"prompt": prompt, **fields})
    assert r.status_code == 200, r.text
    return r.json()


def _sent_to_gemini(emulator: str) -> list[dict]:
    received = httpx.get(f"{emulator}/_emulator/received").json()
    return [json.loads(base64.b64decode(r["body_b64"])) for r in received if r["endpoint"] == "gemini"]


def test_a_gemini_session_continues_its_conversation_then_replays_when_it_leaves(
    api: httpx.Client, emulator: str, faults: Callable[..., None]
) -> None:
    sid = api.post("/v1/sessions", files={"image": ("coffee.png", COFFEE)}).json()["id"]
    httpx.put(f"{emulator}/_emulator/config", json={"record_bodies": True}).raise_for_status()
    v1 = _edit(api, sid, "replace the table with sand", provider="gemini")
    explained = api.post("/v1/route/explain", data={"prompt": "now make the sand warmer", "session_id": sid})
    assert explained.status_code == 200, explained.text
    v2 = _edit(api, sid, "now make the sand warmer")
    assert explained.json()["decision"]["candidates"][0]["estimate_usd"] == v2["cost"]["estimated_usd"]
    v3 = _edit(api, sid, "add footprints")
    sent = _sent_to_gemini(emulator)
    assert v1["chain"] is None and v1["provider"] == "gemini", "round one uploads the image"
    for v in (v2, v3):
        assert v["route"]["rule"] == "session-chain-gemini" and v["provider"] == "gemini"
        assert v["chain"] == {"continued": True, "previous_response_id": None, "note": None}
    assert [len(body["contents"]) for body in sent] == [1, 3, 5]
    assert sent[2]["contents"][-1] == {"role": "user", "parts": [{"text": "add footprints"}]}, "no re-upload"
    for turn in sent[2]["contents"][1::2]:
        assert turn["role"] == "model"
        assert all(p.get("thoughtSignature") for p in turn["parts"] if not p.get("thought"))
    # the whole conversation is input on every round; thinking is counted and priced
    assert [v["cost"]["usage"]["input_image_tokens"] for v in (v1, v2, v3)] == [1120, 2 * 1120, 3 * 1120]
    assert all(v["cost"]["usage"]["output_thinking_tokens"] == 260 for v in (v1, v2, v3))
    for v in (v2, v3):  # the estimate knows the conversation is input again (no upload of its own)
        assert v["cost"]["estimated_usd"] == pytest.approx(v["cost"]["actual_usd"], abs=1e-6)
    tree = api.get(f"/v1/sessions/{sid}").json()
    chains = [v["chain_response_id"] for v in tree["versions"][1:4]]
    assert all(c and len(c) == 64 for c in chains) and len(set(chains)) == 3, "each version holds its own history"

    branch = _edit(api, sid, "add seashells instead", parent_version="1")
    assert branch["chain"]["continued"] is True and len(_sent_to_gemini(emulator)[-1]["contents"]) == 3

    faults("gemini", unavailable=1.0)
    moved = _edit(api, sid, "add a sunset glow", parent_version="3")
    assert moved["route"]["rule"] == "session-chain-gemini" and moved["provider"] == "openai-images"
    assert moved["chain"]["continued"] is False
    assert moved["chain"]["note"] == "chain moved from gemini to openai-images: replayed from version 3"


def test_a_new_mask_starts_the_conversation_afresh(api: httpx.Client, emulator: str) -> None:
    sid = api.post("/v1/sessions", files={"image": ("coffee.png", COFFEE)}).json()["id"]
    _edit(api, sid, "replace the table with sand", provider="gemini")
    httpx.put(f"{emulator}/_emulator/config", json={"record_bodies": True}).raise_for_status()
    mask = fixture_bytes("coffee_background_mask.png")
    r = api.post(f"/v1/sessions/{sid}/edits", files=[("mask", ("m.png", mask))],
                 data={"prompt": "only the background", "provider": "gemini"})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["chain"] == {"continued": False, "previous_response_id": None, "note": None}
    sent = _sent_to_gemini(emulator)[-1]["contents"]
    assert len(sent) == 1 and sum("inlineData" in p for p in sent[0]["parts"]) == 2, "image and region re-sent"
    version = api.get(f"/v1/sessions/{sid}/versions/2").json()
    assert version["chain_response_id"] is None, "a mask-locked result is not the model's own image"
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def test_a_used_up_daily_quota_takes_gemini_out_of_routing_until_it_resets(
    make_server: Callable[..., str], emulator: str, tmp_path_factory: pytest.TempPathFactory,
    faults: Callable[..., None],
) -> None:  # fmt: skip
    url = make_server(data_dir=tmp_path_factory.mktemp("gemini-quota"), **cloud_settings(emulator))
    faults("gemini", quota_per_day=1.0)
    with httpx.Client(base_url=url, timeout=60) as gateway:
        edit = {"files": {"image": ("coffee.png", COFFEE)}, "data": {"prompt": "replace the table with sand"}}
        first = gateway.post("/v1/edits", **edit).json()  # standard tier: gemini first
        assert first["route"]["rule"] == "standard-tier" and first["provider"] == "openai-images"
        quota = first["route"]["attempts"][0]
        assert quota["provider"] == "gemini" and quota["outcome"] == "provider_quota_exhausted"
        assert "per-day quota GenerateRequestsPerDayPerProjectPerModel is used up" in quota["error"]
        seen = httpx.get(f"{emulator}/_emulator/stats").json()["requests"]["gemini"]
        second = gateway.post("/v1/edits", **edit).json()
        assert second["provider"] == "openai-images"
        assert {"provider": "gemini", "reasons": ["circuit breaker open"]} in second["route"]["dropped"]
        assert httpx.get(f"{emulator}/_emulator/stats").json()["requests"]["gemini"] == seen, "no call is made"


def test_a_conversation_gemini_no_longer_accepts_is_replayed_fresh_with_a_note(
    make_server: Callable[..., str], emulator: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("gemini-restart")
    url = make_server(data_dir=data_dir, **cloud_settings(emulator))
    with httpx.Client(base_url=url, timeout=60) as gateway:
        sid = gateway.post("/v1/sessions", files={"image": ("coffee.png", COFFEE)}).json()["id"]
        _edit(gateway, sid, "replace the table with sand", provider="gemini")
        sha = gateway.get(f"/v1/sessions/{sid}").json()["versions"][1]["chain_response_id"]
        stored = data_dir / "blobs" / sha[:2] / sha[2:4] / sha
        history = json.loads(stored.read_bytes())
        for content in history["contents"]:
            for part in content["parts"]:
                part.pop("thought_signature", None)  # as if the signatures had expired
        stored.write_text(json.dumps(history))
        v2 = _edit(gateway, sid, "now make the sand warmer")
    assert v2["provider"] == "gemini" and v2["chain"]["continued"] is False
    assert v2["chain"]["note"].startswith("gemini refused the conversation (Image part is missing a thought_sig")
    assert v2["chain"]["note"].endswith("replayed from version 1")
    assert [a["outcome"] for a in v2["route"]["attempts"]] == ["ok"], "one attempt: the refusal was not billed"
