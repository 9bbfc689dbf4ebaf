"""Emulated OpenAI endpoints: ``POST /v1/images/edits`` (multipart) and ``POST /v1/responses`` (JSON).

Requests are validated as the real API validates them (sizes for the model, mask size and format,
parameter ranges, unknown ids) and answered in the exact shapes of ``openai.types``, with ``usage``
counted by the formulas in ``providers/catalog.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import numpy as np
import pybase64
from litestar import Request, Response, post
from litestar.datastructures import UploadFile

from providers.catalog import (
    catalog,
    openai_image_input_tokens,
    openai_image_output_tokens,
    openai_size_error,
    text_tokens,
)
from providers.emulator.billing import ChainHistory, bill_chain, bill_partials
from providers.emulator.common import data_url_bytes, decode_any, image_format, json_response
from providers.emulator.credentials import credential_images, credential_output
from providers.emulator.openai_newer import (
    NEWER_FIELDS,
    NewerModelRefusal,
    check_model_fields,
    effective_safety_identifier,
    encode_output,
    fields_of,
    markup_region,
    svg_usage,
)
from providers.emulator.render import render_edit
from providers.emulator.streaming import event_stream, image_events, response_events

_IMAGE_FIELDS = {
    "image", "image[]", "mask", "prompt", "model", "n", "size", "quality", "background", "output_format",
    "output_compression", "input_fidelity", "user", "safety_identifier", "stream", "partial_images",
    "moderation", "response_format",
}  # fmt: skip


class OpenAIRequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error") -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_

    def response(self) -> Response[bytes]:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return json_response(body, self.status, {"x-request-id": _req_id()})


def _req_id() -> str:
    return f"req_{uuid.uuid4().hex}"


class StreamAsk:
    """``stream`` and ``partial_images`` of a request, and the plan's pacing and mid-stream fault."""

    def __init__(self, request: Request, fields: Any, endpoint: str, param: str = "partial_images") -> None:
        self.on = str(fields.get("stream", "false")).lower() in ("true", "1")
        self.partials = _int(fields.get("partial_images") or 0, param, 0, 3)
        plan = request.app.state.config.endpoints.get(endpoint)
        self.interval_s = plan.partial_interval_ms / 1000 if plan else 0.0
        self.failing = request.scope.get("state", {}).get("fault") == "mid_stream"
        if self.failing and not self.on:  # without a stream the same fault is a plain server error
            raise OpenAIRequestError(500, "The server had an error while processing your request.",
                                     type_="server_error")  # fmt: skip


def check_key(request: Request, invalid_prefix: str) -> None:
    auth = request.headers.get("authorization", "")
    key = auth.removeprefix("Bearer ").strip()
    if not auth.startswith("Bearer ") or not key:
        raise OpenAIRequestError(401, "You didn't provide an API key.", code=None)
    if key.startswith(invalid_prefix):
        raise OpenAIRequestError(401, "Incorrect API key provided.", code="invalid_api_key")


async def _answer(request: Request, handler: Callable[[Request], Awaitable[Response[bytes]]]) -> Response[bytes]:
    """Authenticate, run, and answer any refusal in OpenAI's error shape."""
    try:
        check_key(request, request.app.state.config.invalid_keys_prefix)
        return await handler(request)
    except OpenAIRequestError as err:
        return err.response()
    except NewerModelRefusal as err:
        return OpenAIRequestError(400, err.message, err.param, err.code).response()


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except json.JSONDecodeError:
        raise OpenAIRequestError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise OpenAIRequestError(400, "The body must be a JSON object.")
    return body


def _int(value: Any, param: str, lo: int, hi: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise OpenAIRequestError(400, f"Invalid type for '{param}': expected an integer.", param) from None
    if n < lo:
        raise OpenAIRequestError(400, f"Invalid '{param}': integer below minimum value. Expected a value >= {lo}, "
                                 f"but got {n} instead.", param, "integer_below_min_value")  # fmt: skip
    if n > hi:
        raise OpenAIRequestError(400, f"Invalid '{param}': integer above maximum value. Expected a value <= {hi}, "
                                 f"but got {n} instead.", param, "integer_above_max_value")  # fmt: skip
    return n


def _check_choice(value: str | None, allowed: list[str], param: str) -> None:
    if value is not None and value not in allowed:
        raise OpenAIRequestError(
            400, f"Invalid value: '{value}'. Supported values are: {allowed}.", param, "invalid_value"
        )


def image_usage(
    prompt: str, inputs: list[np.ndarray], out_w: int, out_h: int, quality: str, n: int = 1
) -> dict[str, Any]:
    """GPT Image usage (Images API ``usage`` and Responses ``tool_usage.image_gen`` share the shape)."""
    text_in = text_tokens(prompt)
    image_in = sum(openai_image_input_tokens(a.shape[1], a.shape[0]) for a in inputs)
    image_out = openai_image_output_tokens(out_w, out_h, quality) * n if out_w else 0
    return {
        "input_tokens": text_in + image_in,
        "input_tokens_details": {"text_tokens": text_in, "image_tokens": image_in},
        "output_tokens": image_out,
        "output_tokens_details": {"image_tokens": image_out, "text_tokens": 0},
        "total_tokens": text_in + image_in + image_out,
    }


def _edit_region(mask_png: bytes, size: tuple[int, int]) -> np.ndarray:
    if image_format(mask_png) != "png":
        raise OpenAIRequestError(400, "Invalid mask: the mask must be a PNG image.", "mask", "invalid_image_format")
    pixels = decode_any(mask_png)
    if (pixels.shape[1], pixels.shape[0]) != size:
        raise OpenAIRequestError(
            400,
            f"Invalid mask: mask size {pixels.shape[1]}x{pixels.shape[0]} does not match "
            f"image size {size[0]}x{size[1]}.",
            "mask",
            "invalid_image_dimensions",
        )
    if pixels.shape[2] != 4:
        raise OpenAIRequestError(
            400, "Invalid mask: the mask must have an alpha channel.", "mask", "invalid_image_format"
        )
    return pixels[..., 3] < 128


async def _files(form: Any, key: str) -> list[bytes]:
    return [await v.read() for v in form.getall(key) if isinstance(v, UploadFile)] if key in form else []


@post("/v1/images/edits")
async def images_edits(request: Request) -> Response[bytes]:
    return await _answer(request, _images_edits)


async def _images_edits(request: Request) -> Response[bytes]:
    facts = catalog()["openai_images"]
    form = await request.form()
    refuse_unknown(form, _IMAGE_FIELDS | NEWER_FIELDS, "edits")
    images = await _files(form, "image") + await _files(form, "image[]")
    if not images:
        raise OpenAIRequestError(400, "Missing required parameter: 'image'.", "image", "missing_required_parameter")
    if len(images) > facts["max_images"]:
        raise OpenAIRequestError(400, f"Too many images: at most {facts['max_images']}.", "image")
    prompt = form.get("prompt")
    if not prompt:
        raise OpenAIRequestError(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    if len(prompt) > facts["max_prompt_chars"]:
        raise OpenAIRequestError(
            400,
            f"Invalid 'prompt': string too long (max {facts['max_prompt_chars']}).",
            "prompt",
            "string_above_max_length",
        )
    model = image_model(form.get("model"), "edits")
    check_input_fidelity(form.get("input_fidelity"), model)
    n = _int(form.get("n", 1), "n", *facts["n"])
    size = form.get("size") or "auto"
    if err := openai_size_error(model, size):
        raise OpenAIRequestError(400, err, "size", "invalid_value")
    markups = await _files(form, "markup")
    newer = fields_of(form, has_mask="mask" in form, has_markup=bool(markups))
    check_model_fields(model, "edits", newer)
    quality = form.get("quality") or "auto"
    fmt = form.get("output_format") or "png"
    background = form.get("background") or "auto"
    _check_choice(background, ["transparent", "opaque", "auto"], "background")
    check_transparency(background, fmt)
    compression = form.get("output_compression")
    if compression is not None:
        if fmt == "png":
            raise OpenAIRequestError(
                400, "output_compression is only supported for jpeg and webp.", "output_compression"
            )
        compression = _int(compression, "output_compression", 0, 100)
    for i, data in enumerate(images):
        if image_format(data) is None:
            raise OpenAIRequestError(
                400,
                f"Invalid image file or mode for image {i + 1}; use png, webp or jpg.",
                "image",
                "invalid_image_format",
            )
        if len(data) >= facts["max_image_bytes"]:
            raise OpenAIRequestError(
                400, "Image too large: each image must be under 50 MB.", "image", "image_too_large"
            )
    streaming = StreamAsk(request, form, "images")
    masks = await _files(form, "mask")
    if masks and len(masks[0]) >= facts["max_mask_bytes"]:
        raise OpenAIRequestError(400, "Mask too large: must be under 4 MB.", "mask", "image_too_large")
    if request.scope.get("state", {}).get("fault") == "safety":
        raise OpenAIRequestError(
            400,
            "Your request was rejected as a result of our safety system. (emulated)",
            code="moderation_blocked",
            type_="image_generation_user_error",
        )

    def work() -> dict[str, Any]:
        try:
            decoded = [decode_any(d) for d in images]
        except Exception:
            raise OpenAIRequestError(
                400, "Invalid image file: could not be decoded.", "image", "invalid_image"
            ) from None
        src = decoded[0]
        edit = _edit_region(masks[0], (src.shape[1], src.shape[0])) if masks else None
        if markups:  # the overlay's drawn pixels say where to edit
            edit = markup_region(markups[0], (src.shape[1], src.shape[0]))
        w, h = (src.shape[1], src.shape[0]) if size == "auto" else (int(x) for x in size.split("x"))
        if size == "auto":
            w, h = (1024, 1024) if w == h else (1536, 1024) if w > h else (1024, 1536)
        data = [
            {
                "b64_json": encode_output(
                    render_edit(src, edit, f"{prompt}#{i}", (w, h), "small"), fmt, compression, newer
                )
            }
            for i in range(n)
        ]
        answer = {
            "created": int(time.time()),
            "data": data,
            "background": "transparent" if background == "transparent" else "opaque",
            "output_format": fmt,
            "quality": "high" if quality == "auto" else quality,
            "size": f"{w}x{h}",
            "usage": image_usage(prompt, decoded, w, h, "high" if quality == "auto" else quality, n),
        }
        if safety_identifier := effective_safety_identifier(form):
            answer["safety_identifier"] = safety_identifier
        if fmt == "svg":
            answer["svg_usage"] = svg_usage(prompt, newer, pybase64.b64decode(data[0]["b64_json"]))
        return answer

    started = time.perf_counter()
    cache = request.app.state.render_cache if request.app.state.config.cache_renders else None
    body = key = None
    if cache is not None:
        fields = sorted((k, v) for k, v in form.items() if isinstance(v, str))
        key = hashlib.sha256(b"".join(images) + (masks[0] if masks else b"") + (markups[0] if markups else b"")
                             + repr(fields).encode()).digest()  # fmt: skip
        body = cache.get(key)
    if body is None:
        body = await anyio.to_thread.run_sync(work)
        if cache is not None:
            cache[key] = body
    body = {**body, "created": int(time.time())}
    body = await anyio.to_thread.run_sync(credential_images, body, fmt)
    ms = int((time.perf_counter() - started) * 1000)
    headers = {"x-request-id": _req_id(), "openai-processing-ms": str(ms)}
    if streaming.on:
        body = {**body, "usage": bill_partials(body["usage"], streaming.partials)}
        events = image_events("image_edit", body, streaming.partials, streaming.interval_s, streaming.failing)
        return event_stream(events, headers)  # type: ignore[return-value]
    return json_response(body, headers=headers)


@post("/v1/images/generations")
async def images_generations(request: Request) -> Response[bytes]:
    return await _answer(request, _images_generations)


async def _images_generations(request: Request) -> Response[bytes]:
    facts = catalog()["openai_images"]
    body = await _json_body(request)
    refuse_unknown(body, _IMAGE_FIELDS | NEWER_FIELDS | {"style"}, "generations")
    prompt = body.get("prompt")
    if not prompt:
        raise OpenAIRequestError(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    model = image_model(body.get("model"), "generations")
    n = _int(body.get("n", 1), "n", *facts["n"])
    size = body.get("size") or "auto"
    if err := openai_size_error(model, size):
        raise OpenAIRequestError(400, err, "size", "invalid_value")
    newer = fields_of(body)
    check_model_fields(model, "generations", newer)
    quality = body.get("quality") or "auto"
    fmt = body.get("output_format") or "png"
    background = body.get("background") or "auto"  # the model's formats were checked with its fields
    _check_choice(background, ["transparent", "opaque", "auto"], "background")
    check_transparency(background, fmt)
    streaming = StreamAsk(request, body, "images")
    if request.scope.get("state", {}).get("fault") == "safety":
        raise OpenAIRequestError(400, "Your request was rejected as a result of our safety system. (emulated)",
                                 code="moderation_blocked", type_="image_generation_user_error")  # fmt: skip
    w, h = (1024, 1024) if size == "auto" else (int(x) for x in size.split("x"))
    q = "high" if quality == "auto" else quality

    def work() -> dict[str, Any]:
        canvas = np.full((h, w, 3), 128, np.uint8)
        data = [
            {"b64_json": encode_output(render_edit(canvas, None, f"{prompt}#{i}", (w, h), "small"), fmt,
                                       body.get("output_compression"), newer)}
            for i in range(n)
        ]  # fmt: skip
        answer = {"created": int(time.time()), "data": data, "background": "opaque", "output_format": fmt,
                  "quality": q, "size": f"{w}x{h}", "usage": image_usage(prompt, [], w, h, q, n)}  # fmt: skip
        if safety_identifier := effective_safety_identifier(body):
            answer["safety_identifier"] = safety_identifier
        if fmt == "svg":
            answer["svg_usage"] = svg_usage(prompt, newer, pybase64.b64decode(data[0]["b64_json"]))
        return answer

    result = await anyio.to_thread.run_sync(work)
    result = await anyio.to_thread.run_sync(credential_images, result, fmt)
    if streaming.on:
        result = {**result, "usage": bill_partials(result["usage"], streaming.partials)}
        events = image_events("image_generation", result, streaming.partials, streaming.interval_s, streaming.failing)
        return event_stream(events, {"x-request-id": _req_id()})  # type: ignore[return-value]
    return json_response(result, headers={"x-request-id": _req_id()})


# --- Refusals worded as the real API words them (issue 16: emulator fidelity) -------------------------


def refuse_unknown(fields: Any, accepted: set[str], endpoint: str) -> None:
    """A parameter the endpoint does not take, or one GPT image models refuse there (``response_format``,
    ``moderation`` on edits: ``catalog.yaml`` ``refused_parameters``), is an unknown parameter."""
    refused = set(catalog()["openai_images"]["refused_parameters"][endpoint])
    unknown = sorted((set(fields) - accepted) | (set(fields) & refused))
    if unknown:
        raise OpenAIRequestError(400, f"Unknown parameter: '{unknown[0]}'.", unknown[0], "unknown_parameter")


def image_model(value: Any, endpoint: str) -> str:
    """The model asked for, or the endpoint's documented default when none is sent (edits); an endpoint
    without one (generations: "Specify a model explicitly") refuses the request."""
    facts = catalog()["openai_images"]
    if not value:
        default = facts["default_model"][endpoint]
        if default is None:
            raise OpenAIRequestError(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
        return str(default)
    if value not in facts["models"]:
        raise OpenAIRequestError(400, f"Invalid value for 'model' = {value}.", "model", "invalid_value")
    return str(value)


def check_input_fidelity(value: Any, model: str, param: str = "input_fidelity") -> None:
    """``input_fidelity`` only where the model takes it, with a value it takes (``catalog.yaml``)."""
    if value is None:
        return
    allowed = catalog()["openai_images"]["input_fidelity"].get(model)
    if allowed is None:
        raise OpenAIRequestError(400, f"Unsupported parameter: '{param}' is not supported with this model.",
                                 param, "unsupported_parameter")  # fmt: skip
    if value not in allowed:
        supported = ", ".join(f"'{v}'" for v in allowed)
        raise OpenAIRequestError(400, f"Unsupported value: '{param}' does not support '{value}' with this model. "
                                 f"Supported values are: {supported}.", param, "unsupported_value")  # fmt: skip


def check_transparency(background: str, fmt: str, param: str = "background") -> None:
    """A transparent background needs a format with alpha: JPEG has none."""
    if background == "transparent" and fmt == "jpeg":
        raise OpenAIRequestError(400, "Invalid value: 'transparent'. A transparent background requires "
                                 "output_format 'png' or 'webp'.", param, "invalid_value")  # fmt: skip


class ResponseStore:
    """Output images by response id, so ``previous_response_id`` can continue a chain (bounded LRU)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def put(self, response_id: str, pixels: np.ndarray) -> None:
        self._items[response_id] = pixels
        self._items.move_to_end(response_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> np.ndarray | None:
        return self._items.get(response_id)


def _input_parts(body: dict[str, Any]) -> tuple[str, list[bytes]]:
    items = body.get("input")
    if isinstance(items, str):
        return items, []
    if not isinstance(items, list):
        raise OpenAIRequestError(400, "Missing required parameter: 'input'.", "input", "missing_required_parameter")
    texts, images = [], []
    for item in items:
        content = item.get("content", []) if isinstance(item, dict) else []
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content:
            if part.get("type") == "input_text":
                texts.append(part.get("text", ""))
            elif part.get("type") == "input_image":
                if part.get("file_id"):
                    raise OpenAIRequestError(400, f"File '{part['file_id']}' not found.", "input", "file_not_found")
                try:
                    images.append(data_url_bytes(part.get("image_url") or ""))
                except ValueError:
                    raise OpenAIRequestError(400, "Invalid 'image_url': expected a base64 data URL.", "input") from None
    return "\n".join(texts), images


def _image_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "image_generation":
            return tool
    return None


@post("/v1/responses")
async def responses_create(request: Request) -> Response[bytes]:
    return await _answer(request, _responses_create)


async def _responses_create(request: Request) -> Response[bytes]:
    body = await _json_body(request)
    model = body.get("model")
    if not model:
        raise OpenAIRequestError(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
    store: ResponseStore = request.app.state.responses
    previous = body.get("previous_response_id")
    chained = store.get(previous) if previous else None
    if previous and chained is None:
        raise OpenAIRequestError(
            400,
            f"Previous response with id '{previous}' not found.",
            "previous_response_id",
            "previous_response_not_found",
        )
    prompt, images = _input_parts(body)
    tool = _image_tool(body)
    response_id = f"resp_{uuid.uuid4().hex}"
    if tool is None:
        output = [_message("This emulated model only renders with the image_generation tool.")]
        usage = _mainline_usage(prompt, 0)
        return json_response(
            _response(body, response_id, model, output, usage, None), headers={"x-request-id": _req_id()}
        )
    image_model = tool.get("model") or catalog()["openai_responses"]["default_image_model"]
    if image_model not in catalog()["openai_responses"]["image_models"]:
        raise OpenAIRequestError(400, f"Invalid value for 'tools[0].model' = {image_model}.", "tools", "invalid_value")
    check_input_fidelity(tool.get("input_fidelity"), image_model, "tools[0].input_fidelity")
    size = tool.get("size") or "auto"
    if err := openai_size_error(image_model, size):
        raise OpenAIRequestError(400, err, "tools[0].size", "invalid_value")
    newer = fields_of(tool, has_mask=bool(tool.get("input_image_mask")))
    newer["stream"] = body.get("stream")
    try:
        check_model_fields(image_model, "responses_tool", newer)
    except NewerModelRefusal as err:
        raise OpenAIRequestError(400, err.message, f"tools[0].{err.param}", err.code) from None
    quality = tool.get("quality") or "auto"
    fmt = tool.get("output_format") or "png"
    check_transparency(tool.get("background") or "auto", fmt, "tools[0].background")
    mask_url = (tool.get("input_image_mask") or {}).get("image_url")
    safety = request.scope.get("state", {}).get("fault") == "safety"
    streaming = StreamAsk(request, {"stream": body.get("stream"), "partial_images": tool.get("partial_images")},
                          "responses", "tools[0].partial_images")  # fmt: skip
    fault = request.scope.get("state", {}).get("fault")
    if (unrendered := unrendered_answer(fault, body)) is not None:
        payload = _response(body, response_id, model, unrendered["output"], _mainline_usage(prompt, len(images)), None)
        payload.update(unrendered.get("status_fields", {}))
        if streaming.on:
            events = response_events(payload, 0, streaming.interval_s, False)
            return event_stream(events, {"x-request-id": _req_id()})  # type: ignore[return-value]
        return json_response(payload, headers={"x-request-id": _req_id()})

    def work() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        try:
            decoded = [decode_any(d) for d in images]
        except Exception:
            raise OpenAIRequestError(400, "Invalid image: could not be decoded.", "input", "invalid_image") from None
        src = decoded[0] if decoded else chained
        if src is None:  # generate from nothing: a neutral canvas
            w0, h0 = (1024, 1024) if size == "auto" else (int(x) for x in size.split("x"))
            src = np.full((h0, w0, 3), 128, np.uint8)
        edit = None
        if mask_url:
            try:
                mask_px = decode_any(data_url_bytes(mask_url))
            except Exception:
                raise OpenAIRequestError(400, "Invalid input_image_mask.", "tools[0].input_image_mask") from None
            if mask_px.shape[:2] != src.shape[:2] or mask_px.shape[2] != 4:
                raise OpenAIRequestError(
                    400,
                    "Invalid input_image_mask: must be RGBA and match the image size.",
                    "tools[0].input_image_mask",
                )
            edit = mask_px[..., 3] < 128
        h, w = src.shape[:2]
        if size != "auto":
            w, h = (int(x) for x in size.split("x"))
        q = "high" if quality == "auto" else quality
        call: dict[str, Any] = {
            "type": "image_generation_call",
            "id": f"ig_{uuid.uuid4().hex}",
            "action": "edit" if (decoded or chained is not None) else "generate",
            "background": tool.get("background") or "auto",
            "output_format": fmt,
            "quality": q,
            "size": f"{w}x{h}",
            "revised_prompt": prompt,
        }
        if safety:
            blocked = "Image generation was blocked by the safety system. (emulated)"
            error = {
                "code": "moderation_blocked",
                "message": blocked,
                "param": None,
                "type": "image_generation_user_error",
                "moderation_details": MODERATION_DETAILS,
            }
            call.update(status="failed", result=None, error=error)
            tool_usage = image_usage(prompt, decoded, 0, 0, q)
        else:
            out = render_edit(src, edit, prompt, (w, h), "small")
            store.put(response_id, out)
            call.update(status="completed", result=encode_output(out, fmt, tool.get("output_compression"), newer))
            tool_usage = image_usage(prompt, decoded if decoded else [src], w, h, q)
        return (
            [call, _message("Here is the edited image.")],
            _mainline_usage(prompt, len(decoded)),
            tool_usage,
        )

    output, usage, tool_usage = await anyio.to_thread.run_sync(work)
    output = await anyio.to_thread.run_sync(credential_output, output)
    usage, tool_usage = _bill_round(request, response_id, previous, output, usage, tool_usage, streaming)
    payload = _response(
        body, response_id, model, output, usage, {"image_gen": tool_usage, "web_search": {"num_requests": 0}}
    )
    if streaming.on:
        events = response_events(payload, streaming.partials, streaming.interval_s, streaming.failing)
        return event_stream(events, {"x-request-id": _req_id()})  # type: ignore[return-value]
    return json_response(payload, headers={"x-request-id": _req_id()})


# --- Answers without an image (issue 16: a Responses turn that renders nothing) ---------------------

MODERATION_DETAILS = {"categories": ["violence"], "moderation_stage": "output"}
"""What a ``moderation_blocked`` image call carries (``ImageGenerationCallErrorModerationDetails``)."""


def tool_forced(body: dict[str, Any]) -> bool:
    """``tool_choice`` that makes the model call the image tool: ``{"type": "image_generation"}`` or ``required``."""
    choice = body.get("tool_choice")
    return choice == "required" or (isinstance(choice, dict) and choice.get("type") == "image_generation")


def unrendered_answer(fault: str | None, body: dict[str, Any]) -> dict[str, Any] | None:
    """The output (and status fields) of a turn that renders no image, or None when it renders.

    ``text_only``: the model answers in words instead of calling the tool, which only an unforced
    ``tool_choice`` allows. ``refusal``: the model refuses (a ``refusal`` part), forced or not.
    ``incomplete``: a content filter stops the response. ``failed``: the response fails with a server error.
    """
    if fault == "text_only" and not tool_forced(body):
        return {"output": [_message("I can describe how the edited image would look, but here it is in words.")]}
    if fault == "refusal":
        return {"output": [_refusal("I'm sorry, but I can't help with that request. (emulated)")]}
    if fault == "incomplete":
        return {"output": [], "status_fields": {"status": "incomplete",
                                                "incomplete_details": {"reason": "content_filter"}}}  # fmt: skip
    if fault == "failed":
        error = {"code": "server_error", "message": "The server had an error processing your request. (emulated)"}
        return {"output": [], "status_fields": {"status": "failed", "error": error}}
    return None


def _refusal(words: str) -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{uuid.uuid4().hex}", "role": "assistant", "status": "completed",
            "content": [{"type": "refusal", "refusal": words}]}  # fmt: skip


def _bill_round(request: Request, response_id: str, previous: str | None, output: list[dict[str, Any]],
                usage: dict[str, Any], tool_usage: dict[str, Any], streaming: StreamAsk
                ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """A round's mainline usage with its chain's earlier items re-billed, its tool usage with the streamed
    previews; a round that produced an image is remembered for the rounds that continue from it."""
    history: ChainHistory = request.app.state.chain_history
    usage = bill_chain(usage, history, previous)
    images = sum(1 for item in output if item.get("type") == "image_generation_call" and item.get("result"))
    if images:
        history.remember(response_id, usage, images)
        if streaming.on:
            tool_usage = bill_partials(tool_usage, streaming.partials)
    return usage, tool_usage


def _message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{uuid.uuid4().hex}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _mainline_usage(prompt: str, n_images: int) -> dict[str, Any]:
    """The mainline model reads the prompt and images and writes a short reply around the tool call."""
    inp = text_tokens(prompt) + 85 * n_images
    out = catalog()["openai_responses"]["mainline_output_tokens"]
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": inp + out,
    }


def _response(body: dict[str, Any], rid: str, model: str, output: list[dict[str, Any]],
              usage: dict[str, Any], tool_usage: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    payload: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "previous_response_id": body.get("previous_response_id"),
        "usage": usage,
        "safety_identifier": body.get("safety_identifier"),
        "user": body.get("user"),
    }
    if tool_usage:
        payload["tool_usage"] = tool_usage
    return payload
