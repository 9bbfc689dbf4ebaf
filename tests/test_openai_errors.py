"""OpenAI failures as they really come, through the real ``openai`` SDK (``httpx2``) over real HTTP:
each mapped to its error family and routed by the executor as the family says (fail over or stop).

- a connect or pool timeout never sent the request: not billed, the next candidate is tried;
  a read timeout may have billed: the route stops (ambiguous);
- ``429 insufficient_quota`` is billing exhausted: the breaker opens, an alert is counted and logged,
  the next candidate is tried, and the provider is not called again;
- a Responses turn that renders nothing: the tool is forced; a refusal, a content filter and a
  moderation block are ``Rejected`` with the provider's words; a failed response is ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import structlog

from policies.model import BreakerSettings, Candidate, RouteDecision
from providers import openai_common
from providers.errors import (
    AuthError,
    QuotaExhausted,
    RateLimited,
    Rejected,
    Unavailable,
)
from providers.openai_images import OpenAIImagesProvider
from providers.openai_wire import decode_responses
from providers.responses_outcome import failure
from router.breaker import Breakers
from router.executor import ExecutionFailed, Outcome, Resources, execute
from router.metrics import Metrics
from tests.test_provider_adapters import _images, _job, _responses, run

MODELS = {"openai-images": "gpt-image-2", "openai-responses": "gpt-5.4-mini"}


@pytest.fixture()
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full: the kernel completes no new handshake, so a connect hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.1)
    yield port
    for s in [*fillers, server]:
        s.close()


def _route(*providers: str) -> RouteDecision:
    return RouteDecision(rule="r", candidates=[Candidate(provider=p, model=MODELS[p]) for p in providers])


def _execute(
    decision: RouteDecision, providers: dict[str, Any], breakers: Breakers | None = None, **job: Any
) -> Outcome:
    resources = Resources(breakers or Breakers(BreakerSettings()), retries=dict.fromkeys(providers, 2))

    async def go() -> Outcome:
        return await execute(decision, providers, lambda c: _job(c.model, **job), 60.0, resources)

    return asyncio.run(go())


def _failed(decision: RouteDecision, providers: dict[str, Any], **job: Any) -> ExecutionFailed:
    with pytest.raises(ExecutionFailed) as failed:
        _execute(decision, providers, **job)
    return failed.value


def _stats(emulator: str) -> dict[str, int]:
    return httpx.get(f"{emulator}/_emulator/stats").json()["requests"]


# --- timeouts (httpx2) ---------------------------------------------------------------------------------


def test_a_connect_timeout_sent_nothing_so_the_route_fails_over(emulator: str, unanswered_port: int) -> None:
    unreachable = OpenAIImagesProvider(openai_common.make_client("sk-test", f"http://127.0.0.1:{unanswered_port}/v1"))
    with pytest.raises(Unavailable) as err:
        run(unreachable, _job("gpt-image-2", connect_timeout_s=0.3))
    assert not err.value.ambiguous and "no request was sent" in err.value.message
    assert isinstance(err.value.__cause__.__cause__, openai_common.httpx2.ConnectTimeout)  # type: ignore[union-attr]

    outcome = _execute(
        _route("openai-images", "openai-responses"),
        {"openai-images": unreachable, "openai-responses": _responses(emulator)},
        connect_timeout_s=0.3,
    )
    assert [(a.provider, a.outcome) for a in outcome.attempts] == [
        ("openai-images", "provider_unavailable"),
        ("openai-responses", "ok"),
    ]
    assert outcome.result.images


def test_a_pool_timeout_sent_nothing_while_a_read_timeout_may_have_billed(
    emulator: str, faults: Callable[..., None]
) -> None:
    """One pooled connection, held by a call the provider never answers: the second call never leaves."""
    faults("images", hang=1.0, hang_s=5.0)
    provider = OpenAIImagesProvider(openai_common.make_client("sk-test", f"{emulator}/v1", max_connections=1))

    async def both() -> list[BaseException | Any]:
        first = asyncio.create_task(provider.edit(_job("gpt-image-2", timeout_s=2.0)))
        await asyncio.sleep(0.3)  # the first call holds the only connection
        second = provider.edit(_job("gpt-image-2", timeout_s=2.0, connect_timeout_s=0.3))
        return await asyncio.gather(first, second, return_exceptions=True)

    read, pooled = asyncio.run(both())
    assert isinstance(read, Unavailable) and read.ambiguous, "the first call reached the provider"
    assert isinstance(pooled, Unavailable) and not pooled.ambiguous
    assert "free connection in the pool" in pooled.message
    assert isinstance(pooled.__cause__.__cause__, openai_common.httpx2.PoolTimeout)  # type: ignore[union-attr]


def test_a_read_timeout_stops_the_route_as_it_may_have_billed(emulator: str, faults: Callable[..., None]) -> None:
    faults("images", hang=1.0, hang_s=5.0)
    failed = _failed(
        _route("openai-images", "openai-responses"),
        {"openai-images": _images(emulator), "openai-responses": _responses(emulator)},
        timeout_s=1.0,
    )
    assert failed.error.code == "provider_timeout" and "may have rendered and billed" in failed.error.message
    assert [(a.provider, a.outcome) for a in failed.attempts] == [("openai-images", "ambiguous")]


# --- 429 insufficient_quota ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "endpoint"), [("openai-images", "images"), ("openai-responses", "responses")])
def test_insufficient_quota_is_billing_exhausted_not_a_rate_limit(
    emulator: str, faults: Callable[..., None], name: str, endpoint: str
) -> None:
    faults(endpoint, insufficient_quota=1.0)
    make = _images if name == "openai-images" else _responses
    with pytest.raises(QuotaExhausted) as err:
        run(make(emulator), _job(MODELS[name]))
    assert isinstance(err.value, AuthError) and not isinstance(err.value, RateLimited)
    assert err.value.status == 429 and "quota" in err.value.message
    assert err.value.request_id and err.value.request_id.startswith("req_")


def test_insufficient_quota_opens_the_breaker_alerts_and_fails_over(emulator: str, faults: Callable[..., None]) -> None:
    faults("images", insufficient_quota=1.0)
    breakers = Breakers(BreakerSettings())
    providers = {"openai-images": _images(emulator), "openai-responses": _responses(emulator)}
    with structlog.testing.capture_logs() as logs:
        outcome = _execute(_route("openai-images", "openai-responses"), providers, breakers)
    assert [(a.provider, a.outcome) for a in outcome.attempts] == [
        ("openai-images", "provider_quota_exhausted"),
        ("openai-responses", "ok"),
    ]
    assert _stats(emulator)["images"] == 1, "never retried as a rate limit"
    assert breakers.get("openai-images").state == "open"
    alert = [e for e in logs if e["event"] == "provider_unusable_breaker_open"]
    assert alert and alert[0]["provider"] == "openai-images" and alert[0]["reason"] == "provider_quota_exhausted"
    assert alert[0]["log_level"] == "error"

    metrics = Metrics()
    metrics.attempted(outcome.attempts)
    exposition = metrics.exposition(breakers.states()).decode()
    assert 'editgate_provider_alerts_total{provider="openai-images",reason="provider_quota_exhausted"} 1.0' in (
        exposition
    )
    assert 'editgate_breaker_state{provider="openai-images"} 2.0' in exposition

    fresh = {"openai-images": _images(emulator), "openai-responses": _responses(emulator)}  # a client per loop
    again = _execute(_route("openai-images", "openai-responses"), fresh, breakers)
    assert [(a.provider, a.outcome) for a in again.attempts] == [
        ("openai-images", "skipped_circuit_open"),
        ("openai-responses", "ok"),
    ]
    assert _stats(emulator)["images"] == 1


def test_a_rate_limit_carries_the_request_id_and_the_wait_the_provider_asked_for(
    emulator: str, faults: Callable[..., None]
) -> None:
    faults("images", rate_limit=1.0, retry_after_s=2.5)
    raw = httpx.post(f"{emulator}/v1/images/generations", json={"model": "gpt-image-2", "prompt": "x"},
                     headers={"Authorization": "Bearer sk-test"})  # fmt: skip
    assert raw.status_code == 429 and raw.headers["retry-after"] == "3", "whole seconds, rounded up"
    assert raw.headers["retry-after-ms"] == "2500" and raw.headers["x-request-id"].startswith("req_")
    with pytest.raises(RateLimited) as err:
        run(_images(emulator), _job("gpt-image-2"))
    assert err.value.retry_after == 2.5 and err.value.request_id and err.value.request_id.startswith("req_")


# --- Responses turns that render nothing ---------------------------------------------------------------


def test_the_image_tool_is_forced(emulator: str, faults: Callable[..., None]) -> None:
    """The emulated model answers in words when it may (``text_only``); a forced tool still renders."""
    faults("responses", text_only=1.0)
    request = _responses(emulator).build_request(_job("gpt-5.4-mini"))
    assert request["tool_choice"] == {"type": "image_generation"}
    unforced = {k: v for k, v in request.items() if k != "tool_choice"}
    raw = httpx.post(f"{emulator}/v1/responses", json=unforced, headers={"Authorization": "Bearer sk-test"})
    assert [item["type"] for item in raw.json()["output"]] == ["message"], "unforced, the model may skip the tool"
    words = failure(decode_responses(raw.content), "openai-responses", raw.headers["x-request-id"])
    assert isinstance(words, Rejected), "a text answer where an image was due is the model declining"
    assert words.message.startswith("the model answered without an image: I can describe")
    result = run(_responses(emulator), _job("gpt-5.4-mini"))
    assert result.images and result.images[0].data


def _streamed(job_kw: dict[str, Any], streamed: bool) -> dict[str, Any]:
    if not streamed:
        return job_kw

    async def on_partial(index: int, data: bytes, mime: str) -> None:
        return None

    return {**job_kw, "partial_images": 1, "on_partial": on_partial}


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("fault", "family", "words"),
    [
        ("refusal", Rejected, "the model refused: I'm sorry, but I can't help with that request."),
        ("incomplete", Rejected, "content filter"),
        ("safety", Rejected, "(moderation: violence; stage: output)"),
        ("failed", Unavailable, "The server had an error"),
    ],
)
def test_a_turn_without_an_image_maps_to_its_family(
    emulator: str, faults: Callable[..., None], fault: str, family: type, words: str, streamed: bool
) -> None:
    faults("responses", **{fault: 1.0})
    with pytest.raises(family) as err:
        run(_responses(emulator), _job("gpt-5.4-mini", **_streamed({}, streamed)))
    assert words in err.value.message and err.value.provider == "openai-responses"
    assert err.value.request_id and err.value.request_id.startswith("req_")
    if isinstance(err.value, Unavailable):
        assert not err.value.ambiguous


@pytest.mark.parametrize(
    ("fault", "route"),
    [
        ("refusal", [("openai-responses", "provider_rejected")]),
        ("safety", [("openai-responses", "provider_rejected")]),
        ("incomplete", [("openai-responses", "provider_rejected")]),
        ("failed", [("openai-responses", "provider_unavailable"), ("openai-images", "ok")]),
    ],
)
def test_a_turn_without_an_image_is_routed_as_its_family_says(
    emulator: str, faults: Callable[..., None], fault: str, route: list[tuple[str, str]]
) -> None:
    faults("responses", **{fault: 1.0})
    decision = _route("openai-responses", "openai-images")
    providers = {"openai-responses": _responses(emulator), "openai-images": _images(emulator)}
    try:
        attempts = _execute(decision, providers).attempts
    except ExecutionFailed as failed:
        assert failed.error.code == "provider_rejected" and failed.error.status == 422
        attempts = failed.attempts
    assert [(a.provider, a.outcome) for a in attempts] == route


def test_the_moderation_details_are_on_the_wire_as_the_sdk_types_them(
    emulator: str, faults: Callable[..., None]
) -> None:
    from openai.types.responses import Response

    faults("responses", safety=1.0)
    request = _responses(emulator).build_request(_job("gpt-5.4-mini"))
    body = httpx.post(f"{emulator}/v1/responses", json=request, headers={"Authorization": "Bearer sk-test"}).json()
    call = Response.model_validate(body).output[0]
    assert call.type == "image_generation_call" and call.error is not None
    assert call.error.code == "moderation_blocked" and call.error.moderation_details is not None
    assert call.error.moderation_details.moderation_stage == "output"


def test_through_the_gateway_quota_exhausted_fails_over_and_is_on_metrics(
    make_server: Callable[..., str], emulator: str, faults: Callable[..., None]
) -> None:
    """A gateway of its own (its breaker opens): the edit is served by the next candidate, the alert is
    on ``/metrics`` and the next edit calls the exhausted provider no more."""
    from tests.conftest import cloud_settings, fixture_bytes

    url = make_server(**cloud_settings(emulator))
    faults("images", insufficient_quota=1.0)
    files = [
        ("image", ("c.png", fixture_bytes("coffee.png"))),
        ("mask", ("m.png", fixture_bytes("coffee_background_mask.png"))),
    ]
    body = httpx.post(f"{url}/v1/edits", files=files, data={"prompt": "sand", "tier": "pro"}, timeout=60).json()
    assert body["provider"] == "gemini"
    assert [(a["provider"], a["outcome"]) for a in body["route"]["attempts"]] == [
        ("openai-images", "provider_quota_exhausted"),
        ("gemini", "ok"),
    ]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'editgate_provider_alerts_total{provider="openai-images",reason="provider_quota_exhausted"} 1.0' in metrics
    assert httpx.get(f"{url}/v1/policy").json()["breakers"]["openai-images"] == "open"
    body = httpx.post(f"{url}/v1/edits", files=files, data={"prompt": "sand", "tier": "pro"}, timeout=60).json()
    assert body["provider"] == "gemini" and _stats(emulator)["images"] == 1
