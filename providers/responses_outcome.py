"""Why a Responses answer carries no image, as an editgate error family.

A ``200`` from ``POST /v1/responses`` is not a rendered image: the response may have ``status: failed``
(an ``error`` with a code), ``status: incomplete`` (``incomplete_details.reason``), an
``image_generation_call`` whose ``error`` says moderation blocked it (with ``moderation_details``), or
only a message: the model answered in words, or refused (a ``refusal`` part), instead of calling the
tool. Each is classified here, from the SDK's own codes, so the executor can decide: a refusal or a
moderation block is ``Rejected`` (the caller sees the provider's words), a server-side failure is
``Unavailable``, a rate limit is ``RateLimited``, an input the provider could not read is ``InvalidInput``.

Reads both the SDK's ``Response`` (a streamed answer) and :class:`providers.openai_wire.ResponsesAnswer`.
"""

from __future__ import annotations

from typing import Any

from providers.errors import InvalidForProvider, InvalidInput, ProviderError, RateLimited, Rejected, Unavailable

_REJECTED = frozenset(
    {"image_content_policy_violation", "invalid_prompt", "bio_policy", "misalignment_policy_violation"}
)
"""``ResponseError`` codes that are the provider's policy refusing the request: another try says the same."""
_INPUT = frozenset({
    "invalid_image", "invalid_image_format", "invalid_base64_image", "invalid_image_url", "image_too_large",
    "image_too_small", "image_parse_error", "invalid_image_mode", "image_file_too_large",
    "unsupported_image_media_type", "empty_image_file",
})  # fmt: skip
"""``ResponseError`` codes for an input image the provider could not use: the caller's file."""
_TRANSIENT = frozenset({"server_error", "vector_store_timeout"})
_MODERATED = frozenset({"moderation_blocked", "content_policy_violation"})


def failure(response: Any, provider: str, request_id: str | None) -> ProviderError | None:
    """The error this answer stands for, or None when it carries a usable image.

    A completed image call is used even when the response is ``incomplete`` (it ran out of output
    tokens after rendering): the image was paid for."""
    kw: dict[str, Any] = {"provider": provider, "request_id": request_id}
    calls = [item for item in response.output if item.type == "image_generation_call"]
    if any(c.result and c.error is None for c in calls):
        return None
    blocked = next((c.error for c in calls if c.error is not None), None)
    if blocked is not None:
        return _call_error(blocked, kw)
    if response.status == "failed":
        return _response_error(response.error, kw)
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        if reason == "content_filter":
            return Rejected("the provider's content filter stopped the response before an image", **kw)
        return Unavailable(f"the response ended incomplete ({reason or 'no reason given'}) before an image", **kw)
    if calls:  # a call that ended without a result or an error
        return Unavailable("the image tool returned no image", **kw)
    words = _said(response)
    if words is not None:
        kind, text = words
        lead = "the model refused" if kind == "refusal" else "the model answered without an image"
        return Rejected(f"{lead}: {text}", **kw)
    return Unavailable("the response carried no output", **kw)


def _call_error(error: Any, kw: dict[str, Any]) -> ProviderError:
    message = error.message or "the image tool failed"
    details = getattr(error, "moderation_details", None)
    if details is not None:
        categories = ", ".join(details.categories or []) or "unspecified"
        message += f" (moderation: {categories}; stage: {details.moderation_stage or 'unknown'})"
    if error.code in _MODERATED or details is not None:
        return Rejected(message, **kw)
    return Unavailable(message, **kw)


def _response_error(error: Any, kw: dict[str, Any]) -> ProviderError:
    code = error.code if error else None
    message = error.message if error else "the response failed without an error"
    if code == "rate_limit_exceeded":
        return RateLimited(message, **kw)
    if code in _TRANSIENT or code is None:
        return Unavailable(message, **kw)
    if code in _REJECTED:
        return Rejected(message, **kw)
    if code in _INPUT:
        return InvalidInput(message, param="image", **kw)
    return InvalidForProvider(f"{message} ({code})", **kw)


def _said(response: Any) -> tuple[str, str] | None:
    """What the model wrote in its message items: ``("refusal", words)`` if it refused, else its text."""
    texts: list[str] = []
    for item in response.output:
        if item.type != "message":
            continue
        for part in item.content or []:
            if part.type == "refusal" and part.refusal:
                return "refusal", part.refusal
            if part.type == "output_text" and part.text:
                texts.append(part.text)
    return ("text", " ".join(texts)) if texts else None
