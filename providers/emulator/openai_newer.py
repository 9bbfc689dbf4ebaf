"""The emulator's part for the newer GPT Image models: their fields, their refusals and their outputs.

What a model takes is :mod:`providers.openai_models` (read from the catalog); this module turns its verdict
into the API's refusal, reads a ``markup`` overlay as the region to edit, and encodes the formats only the
newer models produce: an animated GIF of ``frame_count`` frames and an SVG document of vector shapes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pybase64
from PIL import Image

from providers.catalog import svg_author_of, svg_author_tokens
from providers.emulator.common import b64_image, decode_any, image_format
from providers.openai_models import Surface, refusal

NEWER_FIELDS = frozenset({"complexity", "markup", "frame_count", "frame_duration_ms", "svg", "svg[model]",
                          "svg[reasoning][effort]"})  # fmt: skip
"""Request fields the newer models added (``svg`` arrives as ``svg[...]`` form fields on multipart)."""
DEFAULT_FRAMES = 9
DEFAULT_FRAME_MS = 200


class NewerModelRefusal(Exception):
    """The API's 400 for a parameter the chosen model does not take (raised as ``OpenAIRequestError``)."""

    def __init__(self, message: str, param: str, code: str) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def fields_of(form: Mapping[str, Any], has_mask: bool = False, has_markup: bool = False) -> dict[str, Any]:
    """The fields :func:`providers.openai_models.refusal` reads, from a form or a JSON body."""
    fields = {k: v for k, v in form.items() if isinstance(v, str | int | float | dict) and k != "markup"}
    if any(k.startswith("svg[") for k in form):
        fields["svg"] = {k: v for k, v in form.items() if k.startswith("svg[")}
    fields["mask"] = has_mask or None
    fields["markup"] = has_markup or None
    return fields


def check_model_fields(model: str, surface: Surface, fields: Mapping[str, Any]) -> None:
    """Refuse as the API does what ``model`` does not take on ``surface``."""
    if found := refusal(model, surface, fields):
        raise NewerModelRefusal(found.message, found.param, found.code)


def markup_region(markup_png: bytes, size: tuple[int, int]) -> np.ndarray:
    """The region a markup overlay guides (its drawn, non-transparent pixels), checked as the API checks it."""
    if image_format(markup_png) != "png":
        raise NewerModelRefusal("Invalid markup: the markup must be a PNG image.", "markup", "invalid_image_format")
    pixels = decode_any(markup_png)
    if (pixels.shape[1], pixels.shape[0]) != size:
        raise NewerModelRefusal(
            f"Invalid markup: markup size {pixels.shape[1]}x{pixels.shape[0]} does not match image size "
            f"{size[0]}x{size[1]}.",
            "markup",
            "invalid_image_dimensions",
        )
    if pixels.shape[2] != 4 or not (pixels[..., 3] == 0).any():
        raise NewerModelRefusal("Invalid markup: the markup must contain transparent pixels.", "markup",
                                "invalid_image_format")  # fmt: skip
    return pixels[..., 3] > 0


def encode_output(pixels: np.ndarray, fmt: str, compression: int | None, fields: Mapping[str, Any]) -> str:
    """Base64 of one output image in ``fmt``; gif and svg are the newer models' formats."""
    if fmt == "gif":
        return _gif(pixels, int(fields.get("frame_count") or DEFAULT_FRAMES),
                    int(fields.get("frame_duration_ms") or DEFAULT_FRAME_MS))  # fmt: skip
    if fmt == "svg":
        return pybase64.b64encode(_svg(pixels)).decode()
    return b64_image(pixels, fmt, compression)


def _gif(pixels: np.ndarray, frames: int, duration_ms: int) -> str:
    """An animated GIF: the render, brightened a little more on each frame (a visible, countable animation)."""
    rgb = pixels[..., :3].astype(np.int16)
    images = [Image.fromarray(np.clip(rgb + 6 * i, 0, 255).astype(np.uint8)) for i in range(frames)]
    buf = io.BytesIO()
    duration = min(655_350, round(duration_ms / 10) * 10)
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return pybase64.b64encode(buf.getvalue()).decode()


def _svg(pixels: np.ndarray, cells: int = 16) -> bytes:
    """A vector document of the render: one filled rectangle per cell of a coarse grid."""
    h, w = pixels.shape[:2]
    rects = []
    for gy in range(cells):
        for gx in range(cells):
            y0, y1, x0, x1 = gy * h // cells, (gy + 1) * h // cells, gx * w // cells, (gx + 1) * w // cells
            r, g, b = (int(c) for c in pixels[y0:y1, x0:x1, :3].reshape(-1, 3).mean(axis=0))
            fill = f"#{r:02x}{g:02x}{b:02x}"
            rects.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="{fill}"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
            + "".join(rects) + "</svg>").encode()  # fmt: skip


def svg_usage(prompt: str, fields: Mapping[str, Any], document: bytes) -> dict[str, Any]:
    """``ImagesResponse.svg_usage``: the SVG author's tokens, billed apart from the image model's."""
    model, effort = svg_author_of(fields.get("svg"))
    tokens = svg_author_tokens(prompt, effort, len(document))
    return {"model": model, **tokens, "total_tokens": tokens["input_tokens"] + tokens["output_tokens"]}


def effective_safety_identifier(fields: Mapping[str, Any]) -> str | None:
    """What the API echoes: the non-empty ``safety_identifier``, else the deprecated ``user``."""
    return fields.get("safety_identifier") or fields.get("user") or None
