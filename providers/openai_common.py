"""What the two OpenAI adapters share: building an authenticated client and mapping its errors.

``_map_error`` is the one place an ``openai`` exception becomes an editgate error family; the
provider's message, status and request id are kept, and ``retry-after`` survives a 429.

The SDK sends through ``httpx2`` (a legacy ``httpx`` client may still be passed in), so its timeouts are
``httpx2`` exceptions: both families are read. A connect or pool timeout means the request never left
(nothing billed: fail over); a read or write timeout may have reached the provider (ambiguous).
"""

from __future__ import annotations

import httpx
import httpx2
import openai
import pybase64
from openai._constants import DEFAULT_CONNECTION_LIMITS

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
from providers.trace_context import inject_trace_context

EMULATOR_HEADER = "x-emulator"


def make_client(
    api_key: str, base_url: str | None, http_client: httpx.AsyncClient | None = None, max_connections: int | None = None
) -> openai.AsyncOpenAI:
    """SDK retries are off: the executor owns retries, fallbacks and the overall deadline. ``max_connections``
    sizes the SDK's pool to the policy's concurrency (its default of 1,000 would fail the 1,001st call)."""
    if http_client is None:
        limits = (
            DEFAULT_CONNECTION_LIMITS
            if max_connections is None
            else type(DEFAULT_CONNECTION_LIMITS)(max_connections=max_connections, max_keepalive_connections=100)
        )
        # the SDK's own client type, resized; every request carries the current trace (router/tracing.py)
        http_client = openai.DefaultAsyncHttpxClient(limits=limits, event_hooks={"request": [inject_trace_context]})
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        timeout=httpx2.Timeout(300.0, connect=10.0, pool=10.0),
        http_client=http_client,
    )


def call_timeout(read_s: float, connect_s: float) -> httpx2.Timeout:
    """One call's timeouts: waiting for a pooled connection is bounded like connecting (nothing sent yet)."""
    return httpx2.Timeout(read_s, connect=connect_s, pool=connect_s)


_NOT_SENT = (httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Timeouts before any byte of the request left: the provider never saw it, so it cannot have billed."""
_QUOTA = "insufficient_quota"
"""OpenAI's 429 for an account whose credit or billing limit ran out (as ``code``, or as ``type`` on older
answers): waiting does not help."""


def retry_after(headers: httpx2.Headers | httpx.Headers | None) -> float | None:
    """Seconds to wait: OpenAI's ``retry-after-ms`` where sent (the SDK reads it first too), else the
    standard ``retry-after`` (whole seconds)."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            value = float(headers[name]) / scale if name in headers else None
        except ValueError:
            value = None
        if value is not None and value >= 0:
            return value
    return None


_UNDECODABLE = frozenset({"invalid_image", "invalid_image_file"})
"""OpenAI's codes for an input image it could not decode: the caller's file, so no other provider is tried."""
_INPUT_PARAM = {"mask": "mask", "image": "image", "image[]": "image", "input": "image"}


def map_error(exc: Exception, provider: str) -> ProviderError:
    if isinstance(exc, ProviderError):  # already decided (a stream that ended early, an error event)
        return exc
    if isinstance(exc, openai.APITimeoutError):
        if isinstance(exc.__cause__, _NOT_SENT):
            connecting = isinstance(exc.__cause__, httpx2.ConnectTimeout | httpx.ConnectTimeout)
            stage = "a connection" if connecting else "a free connection in the pool"
            return Unavailable(f"no request was sent: timed out waiting for {stage}", provider=provider)
        return Unavailable("the provider did not answer within the timeout", provider=provider, ambiguous=True)
    if isinstance(exc, openai.APIConnectionError):
        return Unavailable(f"connection to the provider failed: {exc.__cause__ or exc}", provider=provider)
    if isinstance(exc, openai.APIStatusError):
        status, rid = exc.status_code, exc.request_id
        body = exc.body if isinstance(exc.body, dict) else {}
        code = body.get("code") if isinstance(body.get("code"), str) else None
        message = str(body.get("message") or exc.message)
        kw = {"provider": provider, "request_id": rid, "status": status}
        if status == 429 and _QUOTA in (code, body.get("type")):
            return QuotaExhausted(message, **kw)
        if status == 429:
            return RateLimited(message, retry_after=retry_after(exc.response.headers), **kw)
        if status in (401, 403):
            return AuthError(message, **kw)
        if status >= 500:
            return Unavailable(message, **kw)
        if code in _UNDECODABLE:
            return InvalidInput(message, param=_INPUT_PARAM.get(str(body.get("param")), "image"), **kw)
        if (
            code in ("moderation_blocked", "content_policy_violation")
            or body.get("type") == "image_generation_user_error"
        ):
            return Rejected(message, **kw)
        return InvalidForProvider(message, **kw)
    if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIResponseValidationError):
        return stream_error(exc.body if isinstance(exc.body, dict) else {}, exc.message, provider)
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        return Unavailable(f"the provider sent a malformed response: {exc}", provider=provider)
    return Unavailable(f"{type(exc).__name__}: {exc}", provider=provider)


def stream_error(error: dict, message: str, provider: str) -> ProviderError:
    """An ``error`` event after a stream's 200 headers: the provider failed the render it had started."""
    message = str(error.get("message") or message)
    if error.get("code") in ("moderation_blocked", "content_policy_violation"):
        return Rejected(message, provider=provider)
    return Unavailable(f"the provider failed mid-stream: {message}", provider=provider)


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{pybase64.b64encode(data).decode()}"


def image_bytes(b64: str) -> bytes:
    """Decode an image the provider sent as base64 (SIMD: ~40x faster than the stdlib for a 1.7 MB string).

    Strict: a malformed payload raises ``ValueError``, which :func:`map_error` reports as a malformed response.
    """
    return pybase64.b64decode(b64, validate=True)


def token_usage(usage: object | None) -> dict[str, int]:
    """Image-API usage (ImagesResponse.usage or Responses tool_usage.image_gen) as tokens by kind."""
    if usage is None:
        return {}
    inp = getattr(usage, "input_tokens_details", None)
    out = getattr(usage, "output_tokens_details", None)
    return {
        "input_text_tokens": getattr(inp, "text_tokens", 0) or 0,
        "input_image_tokens": getattr(inp, "image_tokens", 0) or 0,
        "output_image_tokens": getattr(out, "image_tokens", 0) if out else getattr(usage, "output_tokens", 0),
        "output_text_tokens": getattr(out, "text_tokens", 0) if out else 0,
    }
