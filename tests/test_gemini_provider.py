"""Gemini as it is today, through google-genai over real HTTP against the emulator: 429 details, answers
without an image, thinking tokens, and multi-round edits that send the thought signatures back."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import cv2
import httpx
import numpy as np
import pytest

from policies.model import BreakerSettings, Candidate, RouteDecision
from providers import gemini_image
from providers.base import EditJob, ProviderResult, in_worker_thread
from providers.errors import InvalidForProvider, QuotaExhausted, RateLimited, Rejected, Unavailable
from providers.gemini_image import GeminiImageProvider, history_contents
from providers.local import LocalProvider
from providers.pricing import actual_usd
from router.breaker import Breakers
from router.executor import ExecutionFailed, Resources, execute
from tests.conftest import decode
from tests.test_provider_adapters import COFFEE, EDIT, MASK, SOURCE

MODEL = "gemini-3.1-flash-image"
NOON_PST = datetime(2026, 11, 30, 20, 0, 0, tzinfo=UTC).timestamp()
"""12:00 in Los Angeles (UTC-8 in November): a per-day quota resets 12 h later."""


def _provider(url: str, clock: Callable[[], float] = lambda: NOON_PST) -> GeminiImageProvider:
    return GeminiImageProvider(gemini_image.make_client("g-test", url), clock=clock)


def _job(**kw: object) -> EditJob:
    args = {"prompt": "make it warmer", "model": MODEL, "source": SOURCE, "out_w": 600, "out_h": 400,
            "timeout_s": 20.0}  # fmt: skip
    return EditJob(**{**args, **kw})  # type: ignore[arg-type]


def run(provider: GeminiImageProvider, job: EditJob) -> ProviderResult:
    return asyncio.run(provider.edit(job))


def _raw(url: str, body: dict, model: str = MODEL) -> httpx.Response:
    return httpx.post(f"{url}/v1beta/models/{model}:generateContent", json=body, headers={"x-goog-api-key": "k"},
                      timeout=30)  # fmt: skip


# --- 429: RetryInfo and QuotaFailure ---------------------------------------------------------------


def test_a_429_carries_its_wait_in_retry_info_and_no_header(emulator: str, faults: Callable[..., None]) -> None:
    faults("gemini", rate_limit=1.0, retry_after_s=38)
    raw = _raw(emulator, {"contents": [{"parts": [{"text": "hi"}]}]})
    assert raw.status_code == 429 and "retry-after" not in raw.headers
    details = {d["@type"].rsplit(".", 1)[1]: d for d in raw.json()["error"]["details"]}
    assert details["RetryInfo"]["retryDelay"] == "38s"
    assert details["QuotaFailure"]["violations"][0]["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
    with pytest.raises(RateLimited) as err:
        run(_provider(emulator), _job())
    assert err.value.retry_after == 38.0 and err.value.status == 429


def test_a_per_day_quota_is_not_retried_and_says_when_it_resets(emulator: str, faults: Callable[..., None]) -> None:
    faults("gemini", quota_per_day=1.0, retry_after_s=20)
    with pytest.raises(QuotaExhausted) as err:
        run(_provider(emulator), _job())
    assert err.value.reset_after == 12 * 3600  # to midnight in Los Angeles, not the 20 s RetryInfo offers
    assert "GenerateRequestsPerDayPerProjectPerModel" in err.value.message and "resets" in err.value.message
    assert not err.value.retryable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _decision(*names: str) -> RouteDecision:
    models = {"gemini": MODEL, "local": "opencv-inpaint"}
    return RouteDecision(rule="test", candidates=[Candidate(provider=n, model=models[n]) for n in names],
                         policy_version="t", policy_digest="t")  # fmt: skip


def _execute(emulator: str, names: tuple[str, ...], breakers: Breakers, job: EditJob | None = None):  # type: ignore[no-untyped-def]
    providers = {"gemini": _provider(emulator), "local": LocalProvider(in_worker_thread)}
    resources = Resources(breakers=breakers, retries={"gemini": 2})
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    async def go():  # type: ignore[no-untyped-def]
        return await execute(_decision(*names), providers, lambda c: job or _job(mask=MASK, model=c.model), 30.0,
                             resources, sleep=sleep)  # fmt: skip

    return anyio.run(go), slept


def test_a_per_day_quota_opens_the_breaker_until_the_reset_and_fails_over(
    emulator: str, faults: Callable[..., None]
) -> None:
    faults("gemini", quota_per_day=1.0)
    clock = Clock()
    breakers = Breakers(BreakerSettings(), clock)
    outcome, slept = _execute(emulator, ("gemini", "local"), breakers)
    assert outcome.candidate.provider == "local" and slept == [], "no wait, no retry: the next candidate at once"
    assert [a.outcome for a in outcome.attempts] == ["provider_quota_exhausted", "ok"]
    gemini = breakers.get("gemini")
    assert gemini.state == "open"
    clock.now += 12 * 3600 - 1
    assert gemini.state == "open" and not breakers.health(["gemini"])["gemini"]
    clock.now += 1
    assert gemini.state == "half_open"


def test_a_per_day_quota_alone_answers_429_naming_the_reset(emulator: str, faults: Callable[..., None]) -> None:
    faults("gemini", quota_per_day=1.0)
    with pytest.raises(ExecutionFailed) as failed:
        _execute(emulator, ("gemini",), Breakers(BreakerSettings(), Clock()))
    error = failed.value.error
    assert error.status == 429 and error.code == "provider_quota_exhausted"
    assert error.extra["retry_after"] == 12 * 3600 and "per-day quota" in error.message


# --- answers without an image ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "family", "says"),
    [
        ("safety", Rejected, "safety filter (IMAGE_SAFETY)"),
        ("blocked_prompt", Rejected, "prompt was blocked (PROHIBITED_CONTENT)"),
        ("recitation", Rejected, "(RECITATION)"),
        ("text_refusal", Rejected, "I can't make that edit. I'm not able to alter photos of real people"),
        ("no_image", Unavailable, "no image (finish reason NO_IMAGE)"),
        ("image_other", Unavailable, "no image (finish reason IMAGE_OTHER)"),
        ("missing_thought_signature", InvalidForProvider, "(MISSING_THOUGHT_SIGNATURE)"),
    ],
)
def test_each_answer_without_an_image_is_classified(
    emulator: str, faults: Callable[..., None], fault: str, family: type, says: str
) -> None:
    faults("gemini", **{fault: 1.0})
    with pytest.raises(family) as err:
        run(_provider(emulator), _job())
    assert type(err.value) is family and says in err.value.message and err.value.provider == "gemini"


@pytest.mark.parametrize("fault", ["safety", "image_other"])
def test_the_emulator_explains_a_stop_in_finish_message(emulator: str, faults: Callable[..., None], fault: str) -> None:
    """As the API does; google-genai 3.4 drops ``finishMessage`` on the Gemini API path (only Vertex keeps
    it), so the adapter quotes it only where the SDK passes it on."""
    faults("gemini", **{fault: 1.0})
    candidate = _raw(emulator, {"contents": [{"parts": [{"text": "hi"}]}]}).json()["candidates"][0]
    assert candidate["finishMessage"] and "content" not in candidate


def test_a_refusal_in_text_stops_with_the_models_words(emulator: str, faults: Callable[..., None]) -> None:
    faults("gemini", text_refusal=1.0)
    with pytest.raises(ExecutionFailed) as failed:
        _execute(emulator, ("gemini", "local"), Breakers(BreakerSettings(), Clock()))
    error = failed.value.error
    assert error.status == 422 and error.code == "provider_rejected" and "real people" in error.message
    assert [a.provider for a in failed.value.attempts] == ["gemini"], "not paid for again elsewhere"


def test_a_transient_no_image_falls_back(emulator: str, faults: Callable[..., None]) -> None:
    faults("gemini", no_image=1.0)
    outcome, _ = _execute(emulator, ("gemini", "local"), Breakers(BreakerSettings(), Clock()))
    assert outcome.candidate.provider == "local"
    assert [a.outcome for a in outcome.attempts] == ["provider_unavailable", "ok"]


# --- thinking: parts, tokens, cost -------------------------------------------------------------------


def test_image_only_answers_have_thoughts_and_signatures_but_no_text(emulator: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "a red square"}]}],
            "generationConfig": {"responseModalities": ["IMAGE"]}}  # fmt: skip
    answer = _raw(emulator, body).json()
    parts = answer["candidates"][0]["content"]["parts"]
    assert [bool(p.get("thought")) for p in parts] == [True, True, False]
    assert "text" not in parts[-1] and "thoughtSignature" in parts[-1] and "inlineData" in parts[-1]
    assert answer["usageMetadata"]["thoughtsTokenCount"] > 0
    body["generationConfig"]["responseModalities"] = ["TEXT", "IMAGE"]
    parts = _raw(emulator, body).json()["candidates"][0]["content"]["parts"]
    answer_parts = [p for p in parts if not p.get("thought")]
    assert "text" in answer_parts[0] and "thoughtSignature" in answer_parts[0]
    assert "thoughtSignature" in answer_parts[1], "every image after the first part is signed too"


def test_a_thinking_edit_counts_and_bills_its_thoughts(emulator: str) -> None:
    result = run(_provider(emulator), _job())
    assert len(result.images) == 1 and decode(result.images[0].data).shape[:2] == (832, 1248), "not the draft"
    assert result.usage == {
        "input_text_tokens": 4,  # "make it warmer": 14 bytes at 4 per token
        "input_image_tokens": 1120,  # one source image, flat
        "output_image_tokens": 1120,  # 1K
        "output_text_tokens": 0,  # IMAGE only: no text part
        "output_thinking_tokens": 260,
    }
    # $0.50 / M input text and image, $60 / M output image, $3 / M thinking (billed as output text)
    hand = (4 * 0.50 + 1120 * 0.50 + 1120 * 60.00 + 260 * 3.00) / 1_000_000
    assert actual_usd("gemini", MODEL, {}, result.usage) == pytest.approx(hand, abs=1e-9)


# --- multi-round edits with thought signatures ---------------------------------------------------------


def test_three_round_chain_sends_the_signatures_back(emulator: str) -> None:
    provider = _provider(emulator)
    httpx.put(f"{emulator}/_emulator/config", json={"record_bodies": True}).raise_for_status()
    try:

        async def chain() -> list[ProviderResult]:
            first = await provider.edit(_job(mask=MASK))
            second = await provider.edit(_job(prompt="now add a shadow", chain_history=first.chain_blob))
            third = await provider.edit(_job(prompt="and a blue sky", chain_history=second.chain_blob))
            return [first, second, third]

        rounds = asyncio.run(chain())
        received = httpx.get(f"{emulator}/_emulator/received").json()
        sent = [json.loads(base64.b64decode(r["body_b64"])) for r in received if r["endpoint"] == "gemini"]
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()
    third = sent[-1]["contents"]
    assert [c["role"] for c in third] == ["user", "model", "user", "model", "user"]
    assert third[-1]["parts"] == [{"text": "and a blue sky"}], "a chained round re-uploads nothing"
    for model_turn in (third[1], third[3]):
        answer = [p for p in model_turn["parts"] if not p.get("thought")]
        assert answer and all(p.get("thoughtSignature") for p in answer)
    assert all(r.chain_blob for r in rounds) and len(history_contents(rounds[2].chain_blob)) == 6
    # the whole conversation is input again: source + mask, then each earlier answer
    assert [r.usage["input_image_tokens"] for r in rounds] == [2 * 1120, 3 * 1120, 4 * 1120]
    r1, r2, r3 = (decode(r.images[0].data) for r in rounds)
    h, w = r1.shape[:2]
    painted = cv2.resize(EDIT.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    source = cv2.resize(COFFEE, (w, h))

    def gap(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a[painted][:, :3].astype(int) - b[painted][:, :3].astype(int)).mean())

    assert gap(r2, r1) < 30 < 60 < gap(r2, source), "round two edits round one's image, not the source"
    assert gap(r3, r2) < 30 < 60 < gap(r3, source)


def _refused_then_replayed(emulator: str, history: dict) -> tuple[ProviderResult, list[dict]]:
    httpx.put(f"{emulator}/_emulator/config", json={"record_bodies": True}).raise_for_status()
    try:
        result = run(_provider(emulator), _job(prompt="again", chain_history=json.dumps(history).encode()))
        received = httpx.get(f"{emulator}/_emulator/received").json()
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()
    return result, [json.loads(base64.b64decode(r["body_b64"])) for r in received if r["endpoint"] == "gemini"]


def test_a_chain_without_its_signatures_is_refused_then_replayed_fresh(emulator: str) -> None:
    first = run(_provider(emulator), _job())
    history = json.loads(first.chain_blob or b"")
    for content in history["contents"]:
        for part in content["parts"]:
            part.pop("thought_signature", None)
    result, sent = _refused_then_replayed(emulator, history)
    assert "missing a thought_signature" in result.raw["chain_restarted"]
    assert [len(body["contents"]) for body in sent] == [3, 1], "refused (400, unbilled), then one fresh turn"
    assert sum("inlineData" in p for p in sent[1]["contents"][0]["parts"]) == 1, "the parent's image again"
    assert result.images and result.chain_blob, "the fresh turn starts a new conversation"
    tampered = json.loads(first.chain_blob or b"")
    answer = next(p for p in tampered["contents"][1]["parts"] if not p.get("thought"))
    answer["thought_signature"] = base64.b64encode(b"forged signature").decode()
    result, _ = _refused_then_replayed(emulator, tampered)
    assert "not valid" in result.raw["chain_restarted"]


@pytest.mark.parametrize("history", [b"not json", b'{"model": "gemini-3.1-flash-image", "contents": [{"parts": 5}]}'])
def test_an_unreadable_stored_conversation_starts_afresh(emulator: str, history: bytes) -> None:
    result = run(_provider(emulator), _job(chain_history=history))
    assert "unreadable" in result.raw["chain_restarted"] and result.images


def test_the_emulator_answers_a_turn_without_signatures_as_gemini_does(emulator: str) -> None:
    image = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    body = {"contents": [{"role": "user", "parts": [{"text": "draw"}]}, {"role": "model", "parts": [image]},
                         {"role": "user", "parts": [{"text": "again"}]}]}  # fmt: skip
    raw = _raw(emulator, body)
    assert raw.status_code == 400 and raw.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "thought_signature" in raw.json()["error"]["message"]
