"""``gemini``: Nano Banana 2 (``gemini-3.1-flash-image``) through ``google-genai``'s ``generate_content``.

Gemini has no mask parameter: the region goes in as a second, black-and-white image with a sentence
saying what it means, and normalization's mask lock makes the mask binding afterwards.
"""

from __future__ import annotations

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
    RateLimited,
    Rejected,
    Unavailable,
)
from providers.imaging import encode
from providers.openai_common import EMULATOR_HEADER, retry_after
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


def _map_error(exc: Exception, provider: str) -> ProviderError:
    if isinstance(exc, genai_errors.APIError):
        status, message = exc.code, exc.message or str(exc)
        headers = getattr(exc.response, "headers", None)
        kw = {"provider": provider, "status": status}
        if status == 429:
            return RateLimited(message, retry_after=retry_after(headers), **kw)
        if status in (401, 403) or "API key not valid" in message:
            return AuthError(message, **kw)
        if status >= 500:
            return Unavailable(message, **kw)
        if status == 400 and _UNDECODABLE in message:
            return InvalidInput(message, param="image", **kw)
        return InvalidForProvider(message, **kw)
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

    def __init__(self, client: genai.Client, run_blocking: RunBlocking = in_worker_thread) -> None:
        self._client = client
        self._run_blocking = run_blocking

    def build_request(self, job: EditJob) -> tuple[list[types.Part], types.GenerateContentConfig]:
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
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(
                aspect_ratio=nearest_gemini_aspect(job.out_w, job.out_h),
                image_size=gemini_image_size(max(job.out_w, job.out_h)),
            ),
            http_options=types.HttpOptions(timeout=int(job.timeout_s * 1000)),
        )
        return parts, config

    async def edit(self, job: EditJob) -> ProviderResult:
        parts, config = await self._run_blocking(lambda: self.build_request(job))  # a mask is decoded and re-encoded
        try:
            response = await self._client.aio.models.generate_content(model=job.model, contents=parts, config=config)
        except Exception as exc:
            raise _map_error(exc, self.name) from exc
        facts = catalog()["gemini"]
        request_id = response.response_id
        candidate = (response.candidates or [None])[0]
        reason = candidate.finish_reason.value if candidate and candidate.finish_reason else None
        block = response.prompt_feedback.block_reason if response.prompt_feedback else None
        if reason in facts["safety_finish_reasons"] or block:
            raise Rejected(f"blocked by the provider's safety filter ({reason or block})", provider=self.name,
                           request_id=request_id)  # fmt: skip
        blobs = [p.inline_data for p in (candidate.content.parts or [])] if candidate and candidate.content else []
        images = [ResultImage(data=b.data, mime=b.mime_type or "image/png") for b in blobs if b and b.data]
        if not images:
            raise Unavailable(f"the provider returned no image (finish reason {reason})", provider=self.name,
                              request_id=request_id)  # fmt: skip
        return ProviderResult(
            images=images,
            usage=_usage(response.usage_metadata),
            request_id=request_id,
            emulated=bool(response.sdk_http_response and EMULATOR_HEADER in (response.sdk_http_response.headers or {})),
        )


def _usage(meta: types.GenerateContentResponseUsageMetadata | None) -> dict[str, int]:
    if meta is None:
        return {}
    usage = {
        "input_text_tokens": 0,
        "input_image_tokens": 0,
        "output_image_tokens": 0,
        "output_text_tokens": 0,
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
