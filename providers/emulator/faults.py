"""Latency and fault injection for the emulators, deterministic by seed.

Each endpoint has its own seeded random stream; every request draws once from it, so the same
seed and the same sequence of requests give the same faults. ``PUT /_emulator/config`` swaps the
plan at run time (tests use it to provoke one fault at a time).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import uuid
from typing import Literal

from litestar.types import ASGIApp, Receive, Scope, Send
from pydantic import BaseModel, ConfigDict, Field

Endpoint = Literal["images", "responses", "gemini"]
Fault = Literal[
    "rate_limit", "server_error", "unavailable", "hang", "drop", "malformed", "safety", "mid_stream",
    "insufficient_quota", "text_only", "refusal", "incomplete", "failed",
    # Gemini only: a used-up per-day quota (429), and answers without an image (see gemini_api.REFUSALS)
    "quota_per_day", "blocked_prompt", "no_image", "image_other", "recitation", "missing_thought_signature",
    "text_refusal",
]  # fmt: skip
"""``insufficient_quota``: OpenAI only (billing exhausted). ``text_only``, ``refusal``, ``incomplete`` and
``failed``: Responses only, rendered by the endpoint (a text answer, a refusal, ``status: incomplete`` for
a content filter, ``status: failed`` with a ``server_error``)."""
EMULATOR_HEADER = (b"x-emulator", b"editgate-emulator; test double, not a real provider")


class EndpointPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float = 0.0
    jitter_ms: float = Field(0.0, description="Uniform extra latency in [0, jitter_ms).")
    faults: dict[Fault, float] = Field(default_factory=dict, description="Fault -> probability per request.")
    retry_after_s: float = 1.0
    hang_s: float = 3600.0
    max_faults: int | None = Field(None, ge=0, description="Stop injecting after this many faults.")
    partial_interval_ms: float = Field(0.0, ge=0, description="Streaming: the pause before each partial image "
                                       "after the first, and before the completed event.")  # fmt: skip


class EmulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    endpoints: dict[Endpoint, EndpointPlan] = Field(default_factory=dict)
    invalid_keys_prefix: str = Field("invalid", description="API keys starting with this are refused (401).")
    cache_renders: bool = Field(
        False, description="Reuse the rendered image for identical inputs: makes the emulator cheap for benchmarks."
    )
    record_bodies: bool = Field(
        False,
        description="Test double only: keep every provider request body, readable at GET /_emulator/received, "
        "so tests can check what left the gateway. Cleared whenever the plan is set.",
    )


def endpoint_of(path: str) -> Endpoint | None:
    if path.endswith("/images/edits") or path.endswith("/images/generations"):
        return "images"
    if path.endswith("/responses"):
        return "responses"
    if ":generateContent" in path:
        return "gemini"
    return None


def _openai_error(status: int, message: str, type_: str, code: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


def _google_error(status: int, message: str, state: str, details: list[dict] | None = None) -> bytes:
    error: dict = {"code": status, "message": message, "status": state}
    if details:
        error["details"] = details
    return json.dumps({"error": error}).encode()


def _google_quota(retry_after_s: float, quota_id: str, metric: str) -> bytes:
    """Gemini's 429 as sent: no Retry-After header; the wait and the quota are in ``details``."""
    seconds = f"{retry_after_s:g}s"
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
            "quotaMetric": f"generativelanguage.googleapis.com/{metric}", "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": "gemini-3.1-flash-image"}, "quotaValue": "10"}]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
            "description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": seconds},
    ]  # fmt: skip
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        f"this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: "
        f"generativelanguage.googleapis.com/{metric}, limit: 10\nPlease retry in {seconds}."
    )
    return _google_error(429, message, "RESOURCE_EXHAUSTED", details)


GOOGLE_QUOTAS = {
    "rate_limit": ("GenerateRequestsPerMinutePerProjectPerModel", "generate_content_paid_tier_requests"),
    "quota_per_day": ("GenerateRequestsPerDayPerProjectPerModel", "generate_content_paid_tier_requests"),
}


_ERRORS: dict[tuple[str, str], tuple[int, bytes]] = {
    ("openai", "rate_limit"): (
        429,
        _openai_error(429, "Rate limit reached for images per minute.", "requests", "rate_limit_exceeded"),
    ),
    ("openai", "server_error"): (
        500,
        _openai_error(500, "The server had an error while processing your request.", "server_error", None),
    ),
    ("openai", "unavailable"): (
        503,
        _openai_error(503, "The engine is currently overloaded, please try again later.", "server_error", None),
    ),
    ("openai", "insufficient_quota"): (
        429,
        _openai_error(
            429,
            "You exceeded your current quota, please check your plan and billing details. For more information "
            "on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            "insufficient_quota",
        ),
    ),
    ("google", "server_error"): (500, _google_error(500, "An internal error has occurred.", "INTERNAL")),
    ("google", "unavailable"): (
        503,
        _google_error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE"),
    ),
}


class FaultInjector:
    """ASGI layer in front of the emulator routes: latency first, then at most one fault."""

    def __init__(self, app: ASGIApp, config: EmulatorConfig) -> None:
        self.app = app
        self.configure(config)

    def configure(self, config: EmulatorConfig) -> None:
        self.config = config
        self._streams = {ep: random.Random(f"{config.seed}:{ep}") for ep in ("images", "responses", "gemini")}
        self.requests = dict.fromkeys(self._streams, 0)
        self.injected = dict.fromkeys(self._streams, 0)
        self.traceparents: list[str] = []
        """W3C ``traceparent`` headers received (the last 100), so tests see the trace reach the provider."""
        self.received: list[tuple[Endpoint, list[bytes]]] = []
        self.in_flight: dict[str, int] = getattr(self, "in_flight", None) or dict.fromkeys(self._streams, 0)
        self.peak_in_flight = dict(self.in_flight)
        """Most requests of an endpoint in progress at once since the plan was set: what a client's
        concurrency limit let through."""

    def _recording(self, endpoint: Endpoint, receive: Receive) -> Receive:
        """Wrap ``receive`` so the request body is kept as it arrives (``record_bodies`` only)."""
        parts: list[bytes] = []
        self.received.append((endpoint, parts))

        async def recording() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                parts.append(message.get("body", b""))
            return message  # type: ignore[return-value]

        return recording  # type: ignore[return-value]

    def _draw(self, endpoint: Endpoint, plan: EndpointPlan) -> tuple[float, Fault | None]:
        rng = self._streams[endpoint]
        delay = (plan.latency_ms + rng.random() * plan.jitter_ms) / 1000
        roll, acc = rng.random(), 0.0
        for fault, rate in plan.faults.items():
            acc += rate
            if roll < acc:
                return delay, fault
        return delay, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def marked(message: dict) -> None:  # every response says it came from a test double
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), EMULATOR_HEADER]
            await send(message)  # type: ignore[arg-type]

        endpoint = endpoint_of(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is not None and (parent := dict(scope.get("headers", [])).get(b"traceparent")):
            self.traceparents = [*self.traceparents[-99:], parent.decode("latin-1")]
        if endpoint is None:
            await self._serve(endpoint, scope, receive, marked)
            return
        self.in_flight[endpoint] += 1
        self.peak_in_flight[endpoint] = max(self.peak_in_flight[endpoint], self.in_flight[endpoint])
        working = True

        async def answered(message: dict) -> None:  # in flight until the answer starts: the caller has none yet
            nonlocal working
            if working and message["type"] == "http.response.start":
                working = False
                self.in_flight[endpoint] -= 1
            await marked(message)

        try:
            await self._serve(endpoint, scope, receive, answered)
        finally:
            if working:
                self.in_flight[endpoint] -= 1

    async def _serve(self, endpoint: Endpoint | None, scope: Scope, receive: Receive, marked: Send) -> None:
        if endpoint is not None and self.config.record_bodies:
            receive = self._recording(endpoint, receive)
        plan = self.config.endpoints.get(endpoint) if endpoint else None
        if endpoint is not None and plan is None:
            self.requests[endpoint] += 1
        if endpoint is None or plan is None:
            await self.app(scope, receive, marked)  # type: ignore[arg-type]
            return
        self.requests[endpoint] += 1
        delay, fault = self._draw(endpoint, plan)
        if fault and plan.max_faults is not None and self.injected[endpoint] >= plan.max_faults:
            fault = None
        self.injected[endpoint] += fault is not None
        if delay:
            await asyncio.sleep(delay)
        scope.setdefault("state", {})["fault"] = fault
        family = "google" if endpoint == "gemini" else "openai"
        marks = openai_fault_headers(fault, plan) if family == "openai" and fault else []
        google_quota = family == "google" and fault in GOOGLE_QUOTAS
        if google_quota or (family, fault) in _ERRORS:
            if google_quota:  # Google sends no Retry-After: the wait is in the body's RetryInfo
                status, body = 429, _google_quota(plan.retry_after_s, *GOOGLE_QUOTAS[fault])  # type: ignore[index]
            else:
                status, body = _ERRORS[(family, fault)]  # type: ignore[index]
            headers = [(b"content-type", b"application/json"), *marks]
            await _drain(receive)
            await marked({"type": "http.response.start", "status": status, "headers": headers})
            await marked({"type": "http.response.body", "body": body})
        elif fault == "hang":
            await asyncio.sleep(plan.hang_s)
            await self.app(scope, receive, marked)  # type: ignore[arg-type]
        elif fault == "drop":
            await _drain(receive)
            headers = [(b"content-type", b"application/json"), (b"content-length", b"4096"), *marks]
            await marked({"type": "http.response.start", "status": 200, "headers": headers})
            await marked({"type": "http.response.body", "body": b'{"created": 17', "more_body": True})
            raise ConnectionAbortedError("emulated dropped connection")
        elif fault == "malformed":
            await _drain(receive)
            await marked(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), *marks],
                }
            )
            await marked({"type": "http.response.body", "body": b'{"created": 1700000000, "data": [{"b64_json": '})
        else:  # no fault, or one the endpoint renders in its own shape ("safety", "mid_stream", Gemini's refusals)
            await self.app(scope, receive, marked)  # type: ignore[arg-type]


def openai_fault_headers(fault: Fault, plan: EndpointPlan) -> list[tuple[bytes, bytes]]:
    """What OpenAI sends beside an error: always an ``x-request-id``; on a rate limit an integer
    ``retry-after`` in seconds (rounded up, so a client never comes back early) and ``retry-after-ms``.
    A quota that ran out carries no ``retry-after``: waiting does not help."""
    headers = [(b"x-request-id", f"req_{uuid.uuid4().hex}".encode())]
    if fault == "rate_limit":
        headers.append((b"retry-after", str(max(1, math.ceil(plan.retry_after_s))).encode()))
        headers.append((b"retry-after-ms", str(round(plan.retry_after_s * 1000)).encode()))
    return headers


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return
