"""OpenAI-compatible ``POST /v1/images/edits`` and ``/v1/images/generations``: change ``base_url``, nothing else.

The request is what ``client.images.edit`` / ``client.images.generate`` send; the answer is the SDK's
``ImagesResponse``; errors use OpenAI's error JSON and status codes so the SDK raises the matching
exception. ``model`` picks the route: a provider's model name pins that provider, a policy alias
(``editgate-auto``, ``editgate-standard``, ``editgate-pro``) lets the policy decide. editgate's own
fields (``protect``, ``tier``, ``session_id``, ...) ride along as ``extra_body``. ``stream=true`` answers
``text/event-stream`` with the events the SDK parses into ``ImageEditStreamEvent`` / ``ImageGenStreamEvent``:
the provider's partial images (``partial_images``: 0-3) as they come, then the normalized result.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pybase64
from litestar import Request, Response, post
from litestar.datastructures import UploadFile
from openai.types import ImagesResponse

from router.api.edit_events import stream_drop_in
from router.api.edits import base_url
from router.api.openai_params import (
    NEWER_FIELDS,
    QUALITY_TIER,
    check_for_model,
    check_values,
    collapse_svg,
    mainline_usage,
    pinned_image_model,
    provider_params,
    svg_usage,
)
from router.api.openapi import OPENAI_ERRORS, body_operation, drop_in_edit_schema, drop_in_schema, guarded
from router.auth import TenantId
from router.errors import ApiError
from router.idempotency import Answer, edit_headers, idempotent
from router.intake.form import read_form
from router.intake.request import RawInputs, json_object_field, parse_fields, read_json_object
from router.lifecycle import IdempotencyClaim
from router.models import EditResponse
from router.service import EditTarget, Gateway, run_edit
from router.sessions import session_target

_OPENAI_ACCEPTED = {"model", "prompt", "n", "size", "quality", "background", "output_format", "output_compression",
                    "user", "input_fidelity", "moderation", "safety_identifier", "response_format", "stream",
                    "partial_images", "style", *NEWER_FIELDS}  # fmt: skip
_EDITGATE_EXTRAS = {"protect", "tier", "session_id", "parent_version", "mode", "aspect", "anchor", "mask_convention",
                    "text_in_output", "experiment_key", "metadata", "provider", "include_base64",
                    "max_cost_usd"}  # fmt: skip
_OPENAI_STRINGS = (
    "model",
    "prompt",
    "size",
    "quality",
    "background",
    "output_format",
    "user",
    "response_format",
    "moderation",
    "input_fidelity",
    "style",
    "safety_identifier",
    "complexity",
)
_EDIT_BODY = body_operation({"multipart/form-data": drop_in_edit_schema(_OPENAI_ACCEPTED | _EDITGATE_EXTRAS)})
_GENERATE_BODY = body_operation({"application/json": drop_in_schema(_OPENAI_ACCEPTED | _EDITGATE_EXTRAS)})


def _model_route(gw: Gateway, model: str | None) -> dict[str, Any]:
    """Request fields a ``model`` implies: a pinned provider, or an alias's fields."""
    aliases = gw.policy.model_aliases
    if not model:
        return dict(aliases.get("editgate-auto", {}))
    if model in aliases:
        return dict(aliases[model])
    if pinned := pinned_image_model(gw.policy, model):
        return {"provider": pinned[0], "model": pinned[1]}
    by_model = {p.model: name for name, p in gw.policy.providers.items()}
    if model in by_model:
        return {"provider": by_model[model]}
    known = sorted([*aliases, *by_model])
    raise ApiError(
        400, "invalid_value", f"Invalid value for 'model' = {model}. Use one of: {', '.join(known)}.", "model"
    )


def _edit_request(gw: Gateway, fields: dict[str, Any], mode: str | None, has_mask: bool = False,
                  has_markup: bool = False) -> tuple[Any, str]:  # fmt: skip
    fields = collapse_svg(fields)
    unknown = sorted(set(fields) - _OPENAI_ACCEPTED - _EDITGATE_EXTRAS)
    if unknown:
        raise ApiError(400, "unknown_parameter", f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    for name in _OPENAI_STRINGS:
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise ApiError(400, "invalid_type", f"Invalid type for '{name}': expected a string.", name)
    response_format = "b64_json" if _streaming(fields) else fields.get("response_format") or "b64_json"
    if response_format not in ("b64_json", "url"):
        raise ApiError(400, "invalid_value", "response_format must be 'b64_json' or 'url'.", "response_format")
    req: dict[str, Any] = {k: v for k, v in fields.items() if k in _EDITGATE_EXTRAS}
    req.update(_model_route(gw, fields.get("model")))
    if fields.get("quality") and fields["quality"] not in QUALITY_TIER:
        raise ApiError(400, "invalid_value", f"Invalid value for 'quality' = {fields['quality']}.", "quality")
    surface = "generations" if mode == "generate" else "edits"
    if req.get("model"):  # a pinned GPT Image model: what it does not take is refused as the API refuses it
        check_for_model(req["model"], surface, fields, has_mask, has_markup)
    else:  # the policy chooses the model: refuse what none takes; candidates that lack the rest are dropped
        check_values(surface, fields, has_mask, has_markup)
    req["provider_params"] = provider_params(fields, has_markup)
    if req.get("metadata") is not None:
        req["metadata"] = json_object_field(req["metadata"] or "{}", "metadata")
    if fields.get("user"):
        req["metadata"] = {**(req.get("metadata") or {}), "user": fields["user"]}
    if isinstance(req.get("protect"), str):
        req["protect"] = [c for c in req["protect"].replace("[", "").replace("]", "").replace('"', "").split(",") if c]
    req["prompt"] = fields.get("prompt") or ""
    size = fields.get("size")
    req["size"] = "auto" if size in (None, "auto") else size
    for name in ("n", "background", "output_format", "output_compression", "partial_images"):
        if fields.get(name) not in (None, ""):
            req[name] = fields[name]
    if fields.get("quality"):
        req["quality"] = QUALITY_TIER[fields["quality"]]
    if mode:
        req["mode"] = mode
    return parse_fields(req), response_format


def _streaming(fields: dict[str, Any]) -> bool:
    return str(fields.get("stream", "")).lower() in ("true", "1")


def _openai_quality(quality: str | None) -> str:
    """The quality a stream's previews announce before the provider says what it rendered."""
    return quality if quality in ("low", "medium", "high", "xhigh", "max") else "high"


def _usage(usage: dict[str, int]) -> dict[str, Any]:
    """The image model's tokens; a Responses route's mainline model tokens are reported apart."""
    text_in = usage.get("input_text_tokens", 0)
    image_in = usage.get("input_image_tokens", 0)
    image_out = usage.get("output_image_tokens", 0)
    text_out = usage.get("output_text_tokens", 0)
    return {
        "input_tokens": text_in + image_in,
        "input_tokens_details": {"text_tokens": text_in, "image_tokens": image_in},
        "output_tokens": image_out + text_out,
        "output_tokens_details": {"image_tokens": image_out, "text_tokens": text_out},
        "total_tokens": text_in + image_in + image_out + text_out,
    }


async def _answer(gw: Gateway, response: EditResponse, response_format: str, transparent: bool) -> Answer:
    """The SDK's ``ImagesResponse`` for an edit, with editgate's metadata in headers."""
    data = []
    for image in response.images:
        if response_format == "url":
            data.append({"url": image.url})
        else:
            raw = await gw.workers.run(partial(gw.blobs.get, image.sha256)) or b""
            data.append({"b64_json": pybase64.b64encode(raw).decode()})
    first = response.images[0] if response.images else None
    body = {
        "created": int(time.time()),
        "data": data,
        "background": "transparent" if transparent else "opaque",
        "output_format": first.format if first else None,
        "quality": response.rendered.get("quality"),  # what the provider rendered; none from a provider without
        "size": f"{first.width}x{first.height}" if first else None,
        "usage": _usage(response.cost.usage),
    }
    if safety_identifier := response.rendered.get("safety_identifier"):
        body["safety_identifier"] = safety_identifier
    if mainline := mainline_usage(response.model, response.cost.usage):
        body["mainline_usage"] = mainline
    if svg := svg_usage(response.rendered.get("svg_model"), response.cost.usage):
        body["svg_usage"] = svg
    if response.revised_prompt:
        for item in data:
            item["revised_prompt"] = response.revised_prompt
    return Answer(body, edit_headers(response.model_dump(mode="json")), response.id)


async def _run_and_answer(request: Request, gw: Gateway, tenant: str, fields: dict[str, Any], req: Any,
                          raw: RawInputs, response_format: str) -> Response:  # fmt: skip
    """Run the edit once per ``Idempotency-Key`` and answer in OpenAI's shape (a replay: the same bytes)."""
    url = base_url(request, gw)

    streaming = _streaming(fields)

    async def shape(response: EditResponse) -> Answer:
        fmt = "b64_json" if streaming else response_format  # a stream's completed event carries the image itself
        return await _answer(gw, response, fmt, req.background == "transparent")

    async def run(claim: IdempotencyClaim | None) -> Answer:
        if req.session_id:
            target = await session_target(gw, tenant, req, raw, req.session_id, url)
        else:
            target = EditTarget(tenant, base_url=url)
        target.claim, target.shape = claim, shape
        target.score_after_response = True  # OpenAI's answer has no place for it: the record gets it later
        await run_edit(gw, req, raw, target)
        return target.answer  # type: ignore[no-any-return]

    if streaming:  # the run is not tied to this connection: a disconnect never cancels a paid render
        kind = "image_generation" if req.mode == "generate" else "image_edit"
        return await stream_drop_in(gw, kind, lambda: idempotent(request, gw, tenant, fields, raw, run),
                                    "transparent" if req.background == "transparent" else "opaque",
                                    _openai_quality(fields.get("quality")))  # fmt: skip
    return await idempotent(request, gw, tenant, fields, raw, run)


@post("/v1/images/edits", status_code=200, summary="OpenAI-compatible image edit", tags=["openai-compatible"],
      operation_class=_EDIT_BODY, **guarded(*OPENAI_ERRORS, openai=True))  # fmt: skip
async def openai_images_edit(request: Request, tenant: TenantId) -> Response[ImagesResponse]:
    """What `OpenAI(base_url=EDITGATE/v1).images.edit(...)` sends: multipart `image` or `image[]`, `mask`,
    `prompt`, `model`, `n`, `size`, `quality`, `background`, `output_format`, `output_compression`, `user`."""
    gw: Gateway = request.app.state.gateway
    form = await read_form(request)
    fields: dict[str, Any] = {}
    images: list[UploadFile] = []
    mask: UploadFile | None = None
    markup: UploadFile | None = None
    for key in form:
        for value in form.getall(key):
            if key in ("image", "image[]") and isinstance(value, UploadFile):
                images.append(value)
            elif key == "mask" and isinstance(value, UploadFile):
                mask = value
            elif key == "markup" and isinstance(value, UploadFile):
                markup = value
            elif not isinstance(value, UploadFile):
                fields[key] = value
    if not images and not fields.get("session_id"):
        raise ApiError(400, "missing_required_parameter", "Missing required parameter: 'image'.", "image")
    if mask is not None:
        fields.setdefault("mask_convention", "alpha")  # OpenAI's convention: alpha 0 = edit
    req, response_format = _edit_request(gw, fields, None, mask is not None, markup is not None)
    # The SDK insists on `image`; in a session the source is the session's version, so the first image is ignored.
    source = None if req.session_id or not images else images[0]
    raw = RawInputs.from_uploads(source, mask, images[1:], markup)
    return await _run_and_answer(request, gw, tenant, fields, req, raw, response_format)


@post("/v1/images/generations", status_code=200, summary="OpenAI-compatible generation", tags=["openai-compatible"],
      operation_class=_GENERATE_BODY, **guarded(409, 429, 502, 503, 504, openai=True))  # fmt: skip
async def openai_images_generate(request: Request, tenant: TenantId) -> Response[ImagesResponse]:
    """What `client.images.generate(...)` sends (JSON). Routed like an edit; `local` cannot generate."""
    gw: Gateway = request.app.state.gateway
    fields = await read_json_object(request)
    fields = {k: v for k, v in fields.items() if v is not None}
    req, response_format = _edit_request(gw, fields, "generate")
    return await _run_and_answer(request, gw, tenant, fields, req, RawInputs(image=b""), response_format)
