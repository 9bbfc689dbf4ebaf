"""``gemini``: Nano Banana 2 (``gemini-3.1-flash-image``) through ``google-genai``'s ``generate_content``.

Gemini has no mask parameter: the region goes in as a second, black-and-white image with a sentence
saying what it means, and normalization's mask lock makes the mask binding afterwards.

Multi-round edits are a conversation: each result carries the history so far (every turn as the model
returned it, thought signatures included) as :attr:`ProviderResult.chain_blob`; the next round sends it
back with only the new instruction. Answers without an image are classified from the catalog's
finish-reason lists (:func:`no_image_error`); a 429 is read from its ``google.rpc`` details.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import httpx
import numpy as np
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from policies.capabilities import Capabilities
from providers.base import EditJob, ProviderResult, ResultImage, RunBlocking, in_worker_thread
from providers.catalog import catalog, gemini_image_size, nearest_gemini_aspect
from providers.errors import (
    AuthError,
    InvalidForProvider,
    InvalidInput,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Rejected,
    Unavailable,
)
from providers.google_rpc import per_day, quota_report, seconds_until_day_ends
from providers.imaging import encode
from providers.openai_common import EMULATOR_HEADER
from providers.trace_context import inject_trace_context

REGION_SENTENCE = (
    "The second image is a mask of the first: change only the area that is white in the mask, and keep "
    "everything in the black area exactly as it is."
)


def make_http_client(connect_timeout_s: float = 10.0) -> httpx.AsyncClient:
    """The long read timeout image calls need."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(300.0, connect=connect_timeout_s), event_hooks={"request": [inject_trace_context]}
    )


def make_client(api_key: str, base_url: str | None, http_client: httpx.AsyncClient | None = None,
                connect_timeout_s: float = 10.0) -> genai.Client:  # fmt: skip
    """SDK retries off (the executor owns them)."""
    options = types.HttpOptions(
        base_url=base_url,
        timeout=300_000,
        retry_options=types.HttpRetryOptions(attempts=1),
        httpx_async_client=http_client or make_http_client(connect_timeout_s),
    )
    return genai.Client(api_key=api_key, http_options=options)


async def close_client(client: genai.Client, http_client: httpx.AsyncClient) -> None:
    """google-genai closes only the clients it made (its async and sync ones): the one we gave it, too."""
    await client.aio.aclose()
    client.close()
    await http_client.aclose()


_UNDECODABLE = "Unable to process input image"
"""How Gemini says an input image did not decode (a 400 INVALID_ARGUMENT; no machine-readable reason)."""


def _header_delay(headers: object) -> float | None:
    """A ``Retry-After`` a proxy in front of Gemini may add (Gemini itself sends none)."""
    value = headers.get("retry-after") if isinstance(headers, httpx.Headers | dict) else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _rate_limited(exc: genai_errors.APIError, message: str, now: float, kw: dict[str, object]) -> ProviderError:
    """429: the wait from ``RetryInfo``; a per-day ``QuotaFailure`` cannot be waited out within a request."""
    report = quota_report(exc.details)
    quota = catalog()["gemini"]["quota"]
    day_quota = per_day(report.quota_ids, quota["per_day_markers"])
    if day_quota is not None:
        reset = seconds_until_day_ends(now, quota["day_resets_in"])
        note = (f"per-day quota {day_quota} is used up; it resets at midnight {quota['day_resets_in']} "
                f"(in {reset / 3600:.1f} h), and gemini is skipped until then")  # fmt: skip
        return QuotaExhausted(f"{message} ({note})", reset_after=reset, **kw)  # type: ignore[arg-type]
    delay = report.retry_delay_s
    if delay is None:
        delay = _header_delay(getattr(exc.response, "headers", None))
    return RateLimited(message, retry_after=delay, **kw)  # type: ignore[arg-type]


def _map_error(exc: Exception, provider: str, now: float) -> ProviderError:
    if isinstance(exc, genai_errors.APIError):
        status, message = exc.code, exc.message or str(exc)
        kw: dict[str, object] = {"provider": provider, "status": status}
        if status == 429:
            return _rate_limited(exc, message, now, kw)
        if status in (401, 403) or "API key not valid" in message:
            return AuthError(message, **kw)  # type: ignore[arg-type]
        if status >= 500:
            return Unavailable(message, **kw)  # type: ignore[arg-type]
        if status == 400 and _UNDECODABLE in message:
            return InvalidInput(message, param="image", **kw)  # type: ignore[arg-type]
        return InvalidForProvider(message, **kw)  # type: ignore[arg-type]
    if isinstance(exc, httpx.TimeoutException):
        sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
        return Unavailable("the provider did not answer within the timeout", provider=provider, ambiguous=sent)
    if isinstance(exc, httpx.TransportError):
        return Unavailable(f"connection to the provider failed: {exc}", provider=provider)
    return Unavailable(f"the provider sent a malformed response: {type(exc).__name__}: {exc}", provider=provider)


def region_png(edit: np.ndarray) -> bytes:
    return encode(np.where(edit, 255, 0).astype(np.uint8), "png")


class GeminiImageProvider:
    name = "gemini"
    capabilities = Capabilities(
        prompt_guided=True,
        removal=True,
        outpaint=True,
        variation=True,
        native_mask=False,
        max_refs=12,
        max_n=1,
        transparent=False,
        text_rendering=True,
        native_4k=True,
        max_edge=4096,
    )

    def __init__(self, client: genai.Client, run_blocking: RunBlocking = in_worker_thread,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        """``clock``: wall time, for when a per-day quota resets."""
        self._client = client
        self._run_blocking = run_blocking
        self._clock = clock

    def build_request(self, job: EditJob) -> tuple[list[types.Content], types.GenerateContentConfig]:
        """A fresh turn carries the images; a chained one (``job.chain_history``) only the new instruction,
        after the previous turns as the model returned them (thought signatures included)."""
        if job.chain_history is not None:
            contents = [*history_contents(job.chain_history), types.Content(role="user", parts=[
                types.Part.from_text(text=job.prompt)])]  # fmt: skip
        else:
            contents = [types.Content(role="user", parts=self._fresh_parts(job))]
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(
                aspect_ratio=nearest_gemini_aspect(job.out_w, job.out_h),
                image_size=gemini_image_size(max(job.out_w, job.out_h)),
            ),
            http_options=types.HttpOptions(timeout=int(job.timeout_s * 1000)),
        )
        return contents, config

    @staticmethod
    def _fresh_parts(job: EditJob) -> list[types.Part]:
        parts = (
            [] if job.mode == "generate" else [types.Part.from_bytes(data=job.source.data, mime_type=job.source.mime)]
        )
        text = job.prompt
        if job.mask is not None:
            parts.append(types.Part.from_bytes(data=region_png(job.mask.edit_region()), mime_type="image/png"))
            text += "\n\n" + REGION_SENTENCE
        if job.references:
            parts += [types.Part.from_bytes(data=r.data, mime_type=r.mime) for r in job.references]
            text += f"\n\nThe last {len(job.references)} image(s) are references to follow for the change."
        parts.append(types.Part.from_text(text=text))
        return parts

    async def edit(self, job: EditJob) -> ProviderResult:
        """A conversation Gemini refuses to continue (a 400: signatures it no longer accepts; nothing is
        billed) is replayed once as a fresh turn from the parent's image; ``raw["chain_restarted"]`` says why."""
        try:
            return await self._edit(job)
        except InvalidForProvider as refused:
            if job.chain_history is None or refused.status != 400:
                raise
            result = await self._edit(replace(job, chain_history=None))
            result.raw["chain_restarted"] = refused.message
            return result

    async def _edit(self, job: EditJob) -> ProviderResult:
        try:
            contents, config = await self._run_blocking(lambda: self.build_request(job))  # a mask is re-encoded
        except ValueError as exc:  # a stored conversation that no longer parses: nothing was sent
            if job.chain_history is None:
                raise
            raise InvalidForProvider(f"the stored conversation is unreadable ({type(exc).__name__})",
                                     provider=self.name, status=400) from exc  # fmt: skip
        try:
            response = await self._client.aio.models.generate_content(model=job.model, contents=contents, config=config)
        except Exception as exc:
            raise _map_error(exc, self.name, self._clock()) from exc
        candidate = (response.candidates or [None])[0]
        parts = (candidate.content.parts or []) if candidate and candidate.content else []
        answer = [p for p in parts if not p.thought]  # thought parts (interim drafts) are never the result
        blobs = [p.inline_data for p in answer if p.inline_data and p.inline_data.data]
        images = [ResultImage(data=b.data, mime=b.mime_type or "image/png") for b in blobs if b.data]
        if not images:
            raise no_image_error(response, self.name)
        history = None
        if candidate is not None and candidate.content is not None:
            history = await self._run_blocking(lambda: history_blob(job.model, [*contents, candidate.content]))
        return ProviderResult(
            images=images,
            usage=_usage(response.usage_metadata),
            request_id=response.response_id,
            chain_blob=history,
            emulated=bool(response.sdk_http_response and EMULATOR_HEADER in (response.sdk_http_response.headers or {})),
        )


_WORDS_MAX = 400
"""How much of a model's text refusal the error quotes."""


def no_image_error(response: types.GenerateContentResponse, provider: str) -> ProviderError:
    """Why an answer carries no usable image, classified by the catalog's finish-reason lists."""
    facts = catalog()["gemini"]
    rid = response.response_id
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        said = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        return Rejected(f"the prompt was blocked ({feedback.block_reason.value}){said}", provider=provider,
                        request_id=rid)  # fmt: skip
    candidate = (response.candidates or [None])[0]
    reason = candidate.finish_reason.value if candidate and candidate.finish_reason else None
    said = f": {candidate.finish_message}" if candidate and candidate.finish_message else ""
    parts = (candidate.content.parts or []) if candidate and candidate.content else []
    words = " ".join(p.text.strip() for p in parts if p.text and not p.thought).strip()
    if reason in facts["safety_finish_reasons"]:
        return Rejected(f"blocked by the provider's safety filter ({reason}){said}", provider=provider,
                        request_id=rid)  # fmt: skip
    if reason in facts["request_finish_reasons"]:
        return InvalidForProvider(f"the provider refused the request ({reason}){said}", provider=provider,
                                  request_id=rid)  # fmt: skip
    if words:
        quoted = words if len(words) <= _WORDS_MAX else words[:_WORDS_MAX] + "..."
        return Rejected(f"the model answered with text instead of an image ({reason}): {quoted!r}",
                        provider=provider, request_id=rid)  # fmt: skip
    return Unavailable(f"the provider returned no image (finish reason {reason}){said}", provider=provider,
                       request_id=rid)  # fmt: skip


def history_blob(model: str, contents: list[types.Content]) -> bytes | None:
    """A chain's state: the model and every turn so far as JSON (bytes base64, signatures kept); None
    when it has grown past what a request may carry, so the next round starts afresh."""
    data = json.dumps({"model": model, "contents": [c.model_dump(mode="json", exclude_none=True) for c in contents]})
    return data.encode() if len(data) <= catalog()["gemini"]["chain"]["max_history_bytes"] else None


def history_contents(blob: bytes) -> list[types.Content]:
    return [types.Content.model_validate(c) for c in json.loads(blob)["contents"]]


def history_model(blob: bytes) -> str | None:
    """The model a history was made with: its signatures are valid only there."""
    model = json.loads(blob).get("model")
    return model if isinstance(model, str) else None


def _usage(meta: types.GenerateContentResponseUsageMetadata | None) -> dict[str, int]:
    if meta is None:
        return {}
    usage = {
        "input_text_tokens": 0,
        "input_image_tokens": 0,
        "output_image_tokens": 0,
        "output_text_tokens": 0,
        "output_thinking_tokens": meta.thoughts_token_count or 0,
    }
    for direction, details in (
        ("input", meta.prompt_tokens_details),
        ("output", meta.candidates_tokens_details),
    ):
        for d in details or []:
            kind = (d.modality.value if d.modality else "TEXT").lower()
            key = f"{direction}_{'image' if kind == 'image' else 'text'}_tokens"
            usage[key] += d.token_count or 0
    return usage
