"""Typed access to ``catalog.yaml`` and the size/token arithmetic that follows from it.

Size snapping and token counting live here, beside the facts, so the adapters (what to ask for),
the emulators (what to accept) and cost estimates (what it will cost) share one source.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def catalog() -> dict[str, Any]:
    return yaml.safe_load(resources.files("providers").joinpath("catalog.yaml").read_text())


def text_tokens(text: str, chars_per_token: int = 4) -> int:
    """Approximate BPE count (no tokenizer ships offline): one token per ``chars_per_token`` UTF-8 bytes."""
    return max(1, math.ceil(len(text.encode()) / chars_per_token))


# --- OpenAI Images ------------------------------------------------------------------------------


def openai_size_error(model: str, size: str) -> str | None:
    """Why ``size`` is invalid for ``model`` (None when valid), as the Images API would refuse it."""
    facts = catalog()["openai_images"]
    if size == "auto" or size in facts["fixed_sizes"]:
        return None
    flex = facts["flexible_sizes"]
    if model not in flex["models"]:
        return f"Invalid size '{size}'. Supported sizes are {', '.join(facts['fixed_sizes'])}, and 'auto'."
    try:
        w, h = (int(x) for x in size.split("x"))
    except ValueError:
        return f"Invalid size '{size}'. Use WIDTHxHEIGHT."
    m = flex["multiple_of"]
    if w % m or h % m:
        return f"Invalid size '{size}': width and height must be multiples of {m}."
    if max(w, h) > flex["max_edge"]:
        return f"Invalid size '{size}': the longest edge must be at most {flex['max_edge']}."
    if not flex["min_pixels"] <= w * h <= flex["max_pixels"]:
        lo, hi = flex["min_pixels"], flex["max_pixels"]
        return f"Invalid size '{size}': total pixels must be between {lo} and {hi}."
    if max(w / h, h / w) > flex["max_aspect"]:
        return f"Invalid size '{size}': the aspect ratio must be between 1:3 and 3:1."
    return None


def snap_openai_size(model: str, w: int, h: int) -> tuple[int, int]:
    """The valid size closest in aspect and area to ``w``x``h`` (normalization resizes the rest)."""
    facts = catalog()["openai_images"]
    flex = facts["flexible_sizes"]
    if model not in flex["models"]:
        options = [tuple(int(x) for x in s.split("x")) for s in facts["fixed_sizes"]]
        return min(options, key=lambda s: abs(math.log((s[0] / s[1]) / (w / h))))  # type: ignore[return-value]
    m, max_aspect = flex["multiple_of"], flex["max_aspect"]
    aspect = min(max(w / h, 1 / max_aspect), max_aspect)
    pixels = min(max(w * h, flex["min_pixels"]), flex["max_pixels"])
    sh = math.sqrt(pixels / aspect)
    sw = sh * aspect
    scale = min(1.0, flex["max_edge"] / max(sw, sh))
    sw, sh = sw * scale, sh * scale
    cw, ch = max(m, round(sw / m) * m), max(m, round(sh / m) * m)
    for _ in range(64):  # rounding can step just outside a bound: walk back inside
        if openai_size_error(model, f"{cw}x{ch}") is None:
            return cw, ch
        if cw * ch > flex["max_pixels"] or max(cw, ch) > flex["max_edge"]:
            cw, ch = (cw - m, ch) if cw >= ch else (cw, ch - m)
        elif cw * ch < flex["min_pixels"]:
            cw, ch = (cw + m, ch) if cw <= ch else (cw, ch + m)
        elif cw / ch > max_aspect:
            cw -= m
        else:
            ch -= m
    raise ValueError(f"no valid size near {w}x{h}")


def openai_image_input_tokens(w: int, h: int) -> int:
    f = catalog()["openai_images"]["image_input"]
    scale = min(1.0, f["fit"] / max(w, h))
    w, h = w * scale, h * scale
    scale = f["shortest"] / min(w, h)
    w, h = w * scale, h * scale
    tiles = math.ceil(w / f["tile"]) * math.ceil(h / f["tile"])
    return f["base_tokens"] + f["tile_tokens"] * tiles


def openai_image_output_tokens(w: int, h: int, quality: str) -> int:
    per_1024 = catalog()["openai_images"]["output_tokens_1024"][quality]
    return math.ceil(per_1024 * (w * h) / (1024 * 1024))


def openai_partial_image_tokens(partials: int) -> int:
    """Image output tokens the streamed previews add (a flat count per partial image, as published)."""
    return catalog()["openai_images"]["partial_image_output_tokens"] * max(0, partials)


def responses_rebilled_tokens(input_tokens: int, output_tokens: int, images: int) -> int:
    """What one Responses round adds to every later round of its chain as mainline input: its whole input
    (earlier rounds' items included), its output text, and each image it generated, read again as an input."""
    return input_tokens + output_tokens + catalog()["openai_responses"]["mainline_image_tokens"] * images


def svg_author_of(svg: Any) -> tuple[str, str]:
    """(model, reasoning effort) of the SVG author an ``svg`` object asks for, defaults filled in. The object
    comes as JSON (``{"model", "reasoning": {"effort"}}``) or from multipart (``svg[model]`` keys)."""
    facts = catalog()["svg_author"]
    svg = svg if isinstance(svg, dict) else {}
    reasoning = svg.get("reasoning")
    effort = (reasoning.get("effort") if isinstance(reasoning, dict) else None) or svg.get("svg[reasoning][effort]")
    model = svg.get("model") or svg.get("svg[model]") or facts["default_model"]
    return str(model), str(effort or facts["default_effort"])


def svg_author_tokens(prompt: str, effort: str, document_bytes: int | None = None) -> dict[str, int]:
    """The SVG author's usage (``svg_usage``'s counts): it reads the prompt and the render, reasons, and writes
    the document (``document_bytes``; before it exists, the catalog's estimate). Output counts reasoning."""
    facts = catalog()["svg_author"]
    reasoning = facts["reasoning_tokens"].get(effort, facts["reasoning_tokens"][facts["default_effort"]])
    written = math.ceil(document_bytes / facts["bytes_per_output_token"]) if document_bytes else None
    output = (written or facts["estimate_output_tokens"]) + reasoning
    return {"input_tokens": text_tokens(prompt) + facts["input_tokens_per_render"], "output_tokens": output,
            "reasoning_tokens": reasoning}  # fmt: skip


# --- Gemini ------------------------------------------------------------------------------------


def _ratio(label: str) -> float:
    a, b = label.split(":")
    return int(a) / int(b)


def nearest_gemini_aspect(w: int, h: int) -> str:
    ratios = catalog()["gemini"]["aspect_ratios"]
    return min(ratios, key=lambda r: abs(math.log(_ratio(r) / (w / h))))


def gemini_image_size(long_edge: int) -> str:
    """The smallest size tier whose long edge covers the request (4K at most)."""
    sizes = catalog()["gemini"]["image_sizes"]
    for label, edge in sorted(sizes.items(), key=lambda kv: kv[1]):
        if edge >= long_edge:
            return label
    return max(sizes, key=sizes.get)


def gemini_output_dims(aspect: str, size: str) -> tuple[int, int]:
    """Pixel size of an output: the tier's long edge squared as area, at the aspect, multiples of 16."""
    edge = catalog()["gemini"]["image_sizes"][size]
    r = _ratio(aspect)
    h = math.sqrt(edge * edge / r)
    w = h * r
    return int(round(w / 16) * 16), int(round(h / 16) * 16)


def gemini_image_input_tokens(w: int, h: int) -> int:
    """Flat per input image for 3.1 Flash Image, whatever its size."""
    return catalog()["gemini"]["image_input"]["per_image"]
