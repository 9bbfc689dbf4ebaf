"""Emulated Gemini ``POST /{v1,v1beta}/models/{model}:generateContent`` as google-genai sends it.

Validates the model id (retired ids answer as the API does), the key header, ``imageConfig`` values
and the image parts; answers with candidates, finish reasons and ``usageMetadata`` counted by the
formulas in ``providers/catalog.yaml``. A thinking model (Gemini 3) answers with ``thought`` parts (a
plan and a draft), ``thoughtsTokenCount`` and ``thoughtSignature`` on its answer parts, and refuses a
multi-turn request whose model turns dropped one (400 INVALID_ARGUMENT). In a conversation the image
to edit is the model's latest, and every turn's text and images count as input. Faults named in
:data:`REFUSALS` answer without an image, each as the real API does.

Gemini takes no mask: a second image that is purely black and white and the source's size is read as
the region to change (what the adapter sends), and the whole frame drifts, as a real mask-less edit does.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import cv2
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


SIGNING_KEY = b"editgate-emulator thought signatures"
"""The emulator's own key: a signature is an HMAC of the part it belongs to, so a dropped, moved or edited
one is caught as the real API catches it (which keeps its signatures opaque)."""


def sign(model: str, part: dict[str, Any]) -> bytes:
    digest = hmac.new(SIGNING_KEY, model.encode() + b"\0" + _part_bytes(part), hashlib.sha256).digest()
    return b"\x12\x20" + digest + b"\x1a\x04emu1"


def _part_bytes(part: dict[str, Any]) -> bytes:
    blob = part.get("inlineData") or part.get("inline_data")
    if blob:
        return _b64(blob.get("data", ""))
    return str(part.get("text", "")).encode()


def _b64(data: str) -> bytes:
    try:
        return pybase64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)  # either alphabet
    except (binascii.Error, ValueError):
        raise GoogleRequestError(
            400, "Invalid value at 'contents.parts.inline_data.data' (TYPE_BYTES).", "INVALID_ARGUMENT"
        ) from None


def _signed_positions(parts: list[dict[str, Any]]) -> list[int]:
    """Where a model turn carries signatures: the first part after the thoughts, and every image after it."""
    answer = [i for i, p in enumerate(parts) if not p.get("thought")]
    return [i for n, i in enumerate(answer) if n == 0 or (parts[i].get("inlineData") or parts[i].get("inline_data"))]


def _check_signatures(model: str, contents: list[dict[str, Any]]) -> None:
    """Gemini 3 models refuse a multi-turn request whose model turns lost a thought signature (400)."""
    for c, content in enumerate(contents):
        if content.get("role") != "model":
            continue
        parts = content.get("parts") or []
        for i in _signed_positions(parts):
            signature = parts[i].get("thoughtSignature") or parts[i].get("thought_signature")
            kind = "Image" if parts[i].get("inlineData") or parts[i].get("inline_data") else "Text"
            if not signature:
                raise GoogleRequestError(
                    400,
                    f"{kind} part is missing a thought_signature in content position {c + 1}, part position "
                    f"{i + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for "
                    "more details.",
                    "INVALID_ARGUMENT",
                )
            if not hmac.compare_digest(_b64(str(signature)), sign(model, parts[i])):
                raise GoogleRequestError(
                    400,
                    f"Thought signature is not valid in content position {c + 1}, part position {i + 1}.",
                    "INVALID_ARGUMENT",
                )


class Turns:
    """What a request asks: the latest user turn's text and images, after the latest image the model made."""

    def __init__(self, body: dict[str, Any]) -> None:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents or not all(isinstance(c, dict) for c in contents):
            raise GoogleRequestError(
                400, "* GenerateContentRequest.contents: contents is not specified", "INVALID_ARGUMENT"
            )
        self.contents = contents
        self.multi_turn = any(c.get("role") == "model" for c in contents)
        self.all_texts: list[str] = []
        self.image_count = 0
        self.prompt, self.images, self.previous = "", [], None
        for content in contents:
            texts, images = [], []
            for part in content.get("parts") or []:
                if part.get("thought"):
                    continue
                if "text" in part:
                    texts.append(str(part["text"]))
                blob = part.get("inlineData") or part.get("inline_data")
                if blob:
                    images.append(_b64(blob.get("data", "")))
            self.all_texts += texts
            self.image_count += len(images)
            if content.get("role") == "model":
                self.previous = images[-1] if images else self.previous
            else:
                self.prompt, self.images = "\n".join(texts), images

    def sources(self) -> list[bytes]:
        """The image to edit first (the model's latest, in a conversation), then this turn's images."""
        return [self.previous, *self.images] if self.previous is not None else self.images


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
    turns = Turns(body)
    thinking = model in facts["thinking_models"]
    if thinking and turns.multi_turn:
        _check_signatures(model, turns.contents)
    fault = request.scope.get("state", {}).get("fault")

    def work() -> dict[str, Any]:
        try:
            images = [decode_any(d) for d in turns.sources()]
        except Exception:
            raise GoogleRequestError(
                400, "Unable to process input image. Please retry or report in the forum.", "INVALID_ARGUMENT"
            ) from None
        text_in = sum(text_tokens(t) for t in turns.all_texts) or 1
        image_in = turns.image_count * gemini_image_input_tokens(0, 0)
        prompt_details = [{"modality": "TEXT", "tokenCount": text_in}]
        if image_in:
            prompt_details.append({"modality": "IMAGE", "tokenCount": image_in})
        thoughts = facts["thoughts_tokens"] if thinking and "IMAGE" in modalities else 0
        usage: dict[str, Any] = {
            "promptTokenCount": text_in + image_in,
            "promptTokensDetails": prompt_details,
            "totalTokenCount": text_in + image_in + thoughts,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        base = {"modelVersion": model, "responseId": uuid.uuid4().hex[:24], "usageMetadata": usage}
        if fault in REFUSALS:
            return {**base, **REFUSALS[fault](usage)}
        if "IMAGE" not in modalities:
            return {**base, "candidates": [_text_candidate(
                "This emulated model answers with images only when IMAGE is requested.", usage)]}  # fmt: skip
        if images:
            src = images[0]
            region, _refs = _region(images)
        else:
            src, region = np.full((1024, 1024, 3), 128, np.uint8), None
        ar = aspect or nearest_gemini_aspect(src.shape[1], src.shape[0])
        w, h = gemini_output_dims(ar, size)
        out = render_edit(src, region, turns.prompt, (w, h), "global")
        out_image = facts["output_tokens"][size]
        parts: list[dict[str, Any]] = []
        if thoughts:  # a thinking model shows its plan and a rough draft first (thought parts: not the answer)
            draft = cv2.resize(out, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
            plan = "**Planning the edit**\nI will keep the composition and change what was asked."
            draft_part = {"mimeType": "image/png", "data": b64_image(draft, "png")}
            parts += [{"text": plan, "thought": True}, {"inlineData": draft_part, "thought": True}]
        details = [{"modality": "IMAGE", "tokenCount": out_image}]
        out_text = 0
        if "TEXT" in modalities:  # with responseModalities ["IMAGE"] the answer has no text part
            reply = "Here is your edited image."
            out_text = text_tokens(reply)
            parts.append({"text": reply})
            details.append({"modality": "TEXT", "tokenCount": out_text})
        parts.append({"inlineData": {"mimeType": "image/png", "data": b64_image(out, "png")}})
        if thinking:
            for i in _signed_positions(parts):
                parts[i]["thoughtSignature"] = pybase64.b64encode(sign(model, parts[i])).decode()
        usage.update(
            candidatesTokenCount=out_image + out_text,
            candidatesTokensDetails=details,
            totalTokenCount=usage["totalTokenCount"] + out_image + out_text,
        )
        return {
            **base,
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        }

    return json_response(await anyio.to_thread.run_sync(work))


def _text_candidate(reply: str, usage: dict[str, Any], reason: str = "STOP") -> dict[str, Any]:
    out_text = text_tokens(reply)
    usage.update(candidatesTokenCount=out_text, totalTokenCount=usage["totalTokenCount"] + out_text)
    return {"content": {"role": "model", "parts": [{"text": reply}]}, "finishReason": reason, "index": 0}


def _stopped(reason: str, message: str | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def answer(usage: dict[str, Any]) -> dict[str, Any]:
        candidate: dict[str, Any] = {"finishReason": reason, "index": 0}
        if message:
            candidate["finishMessage"] = message
        return {"candidates": [candidate]}

    return answer


IMAGE_FILTERED = (
    "Unable to show the generated image. The image was filtered out because it violated Google's Generative "
    "AI Prohibited Use policy."
)
REFUSAL_WORDS = (
    "I can't make that edit. I'm not able to alter photos of real people in that way, but I can help "
    "with other changes to the scene."
)


def _blocked_prompt(usage: dict[str, Any]) -> dict[str, Any]:
    usage["totalTokenCount"] = usage["promptTokenCount"]
    usage.pop("thoughtsTokenCount", None)
    return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}


REFUSALS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "safety": _stopped("IMAGE_SAFETY", IMAGE_FILTERED),
    "blocked_prompt": _blocked_prompt,
    "no_image": _stopped("NO_IMAGE"),
    "image_other": _stopped("IMAGE_OTHER", "The model could not generate the image. Try again."),
    "recitation": _stopped("RECITATION"),
    "missing_thought_signature": _stopped("MISSING_THOUGHT_SIGNATURE"),
    "text_refusal": lambda usage: {"candidates": [_text_candidate(REFUSAL_WORDS, usage)]},
}
"""Answers without an image, by fault name, in the shapes the real API uses for them."""
