"""Emulated Gemini ``POST /{v1,v1beta}/models/{model}:generateContent`` as google-genai sends it.

Validates the model id (retired ids answer as the API does), the key header, ``imageConfig`` values
and the image parts; answers with candidates, finish reasons and ``usageMetadata`` counted by the
formulas in ``providers/catalog.yaml``. Gemini takes no mask: a second image that is purely black and
white and the source's size is read as the region to change (what the adapter sends), and the
whole frame drifts, as a real mask-less edit does.
"""

from __future__ import annotations

import binascii
import json
import uuid
from typing import Any

import anyio.to_thread
import numpy as np
import pybase64
from litestar import Request, Response, post
from litestar.params import FromPath

from providers.catalog import (
    catalog,
    gemini_image_input_tokens,
    gemini_output_dims,
    nearest_gemini_aspect,
    text_tokens,
)
from providers.emulator.common import b64_image, decode_any, json_response
from providers.emulator.render import render_edit


class GoogleRequestError(Exception):
    def __init__(self, status: int, message: str, state: str) -> None:
        super().__init__(message)
        self.status, self.message, self.state = status, message, state

    def response(self) -> Response[bytes]:
        return json_response(
            {"error": {"code": self.status, "message": self.message, "status": self.state}}, self.status
        )


def _check_key(request: Request, invalid_prefix: str) -> None:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if not key:
        raise GoogleRequestError(
            403, "Method doesn't allow unregistered callers. Please use an API key.", "PERMISSION_DENIED"
        )
    if key.startswith(invalid_prefix):
        raise GoogleRequestError(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT")


def _parts(body: dict[str, Any]) -> tuple[str, list[bytes]]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise GoogleRequestError(
            400, "* GenerateContentRequest.contents: contents is not specified", "INVALID_ARGUMENT"
        )
    texts, images = [], []
    for content in contents:
        for part in content.get("parts", []):
            if "text" in part:
                texts.append(part["text"])
            blob = part.get("inlineData") or part.get("inline_data")
            if blob:
                try:
                    data = blob.get("data", "").replace("-", "+").replace("_", "/")  # either alphabet
                    images.append(pybase64.b64decode(data, validate=True))
                except (binascii.Error, ValueError):
                    raise GoogleRequestError(
                        400,
                        "Invalid value at 'contents.parts.inline_data.data' (TYPE_BYTES).",
                        "INVALID_ARGUMENT",
                    ) from None
    return "\n".join(texts), images


def _region(images: list[np.ndarray]) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """A later image that is pure black/white at the source's size marks the region (white = edit)."""
    src, rest = images[0], images[1:]
    for i, img in enumerate(rest):
        if img.shape[:2] == src.shape[:2]:
            rgb = img[..., :3]
            if np.isin(rgb, (0, 255)).all() and (rgb == rgb[..., :1]).all():
                return rgb[..., 0] == 255, rest[:i] + rest[i + 1 :]
    return None, rest


@post(["/v1beta/models/{target:str}", "/v1/models/{target:str}"])
async def generate_content(request: Request, target: FromPath[str]) -> Response[bytes]:
    try:
        _check_key(request, request.app.state.config.invalid_keys_prefix)
        return await _generate(request, target)
    except GoogleRequestError as err:
        return err.response()


async def _generate(request: Request, target: str) -> Response[bytes]:
    facts = catalog()["gemini"]
    model, _, method = target.partition(":")
    if method != "generateContent":
        raise GoogleRequestError(404, f"Method {method or '(none)'} not found.", "NOT_FOUND")
    if model in facts["retired_models"]:
        raise GoogleRequestError(
            404,
            f"models/{model} is not found for API version v1beta: {facts['retired_models'][model]}.",
            "NOT_FOUND",
        )
    if model not in facts["models"]:
        raise GoogleRequestError(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for generateContent.",
            "NOT_FOUND",
        )
    try:
        body = json.loads(await request.body())
    except json.JSONDecodeError:
        raise GoogleRequestError(400, "Invalid JSON payload received.", "INVALID_ARGUMENT") from None
    config = body.get("generationConfig") or body.get("generation_config") or {}
    modalities = [m.upper() for m in config.get("responseModalities") or ["TEXT"]]
    image_config = config.get("imageConfig") or {}
    aspect = image_config.get("aspectRatio")
    if aspect is not None and aspect not in facts["aspect_ratios"]:
        raise GoogleRequestError(
            400,
            f"Unsupported aspect ratio: {aspect}. Supported: {', '.join(facts['aspect_ratios'])}.",
            "INVALID_ARGUMENT",
        )
    size = image_config.get("imageSize") or "1K"
    if size not in facts["image_sizes"]:
        raise GoogleRequestError(
            400,
            f"Unsupported image size: {size}. Supported: {', '.join(facts['image_sizes'])}.",
            "INVALID_ARGUMENT",
        )
    if model == "gemini-2.5-flash-image":
        size = "1K"  # this model ignores imageSize and renders about 1K
    prompt, raw_images = _parts(body)
    safety = request.scope.get("state", {}).get("fault") == "safety"

    def work() -> dict[str, Any]:
        try:
            images = [decode_any(d) for d in raw_images]
        except Exception:
            raise GoogleRequestError(
                400, "Unable to process input image. Please retry or report in the forum.", "INVALID_ARGUMENT"
            ) from None
        text_in = text_tokens(prompt)
        image_in = sum(gemini_image_input_tokens(i.shape[1], i.shape[0]) for i in images)
        prompt_details = [{"modality": "TEXT", "tokenCount": text_in}]
        if image_in:
            prompt_details.append({"modality": "IMAGE", "tokenCount": image_in})
        usage: dict[str, Any] = {
            "promptTokenCount": text_in + image_in,
            "promptTokensDetails": prompt_details,
            "totalTokenCount": text_in + image_in,
        }
        base = {"modelVersion": model, "responseId": uuid.uuid4().hex[:24], "usageMetadata": usage}
        if safety:
            return {**base, "candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0}]}
        if "IMAGE" not in modalities:
            reply = "This emulated model answers with images only when IMAGE is requested."
            out_text = text_tokens(reply)
            usage.update(candidatesTokenCount=out_text, totalTokenCount=text_in + image_in + out_text)
            parts = [{"text": reply}]
            return {
                **base,
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            }
        if images:
            src = images[0]
            region, _refs = _region(images)
        else:
            src, region = np.full((1024, 1024, 3), 128, np.uint8), None
        ar = aspect or nearest_gemini_aspect(src.shape[1], src.shape[0])
        w, h = gemini_output_dims(ar, size)
        out = render_edit(src, region, prompt, (w, h), "global")
        reply = "Here is your edited image."
        out_text = text_tokens(reply)
        out_image = facts["output_tokens"][size]
        usage.update(
            candidatesTokenCount=out_image + out_text,
            candidatesTokensDetails=[
                {"modality": "IMAGE", "tokenCount": out_image},
                {"modality": "TEXT", "tokenCount": out_text},
            ],
            totalTokenCount=text_in + image_in + out_image + out_text,
        )
        parts = [{"text": reply}, {"inlineData": {"mimeType": "image/png", "data": b64_image(out, "png")}}]
        return {
            **base,
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        }

    return json_response(await anyio.to_thread.run_sync(work))
