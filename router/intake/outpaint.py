"""Outpainting canvas: the source placed on a larger transparent canvas whose new area is the edit."""

from __future__ import annotations

from typing import Literal

import numpy as np

from router.errors import ApiError

Anchor = Literal["center", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left", "bottom-right"]


def size_for_aspect(w: int, h: int, aw: int, ah: int) -> tuple[int, int]:
    """Smallest canvas of aspect ``aw:ah`` that contains a ``w``x``h`` image."""
    if w * ah < h * aw:  # source is narrower than the target aspect: widen
        return round(h * aw / ah), h
    return w, round(w * ah / aw)


def _offset(anchor: Anchor, free_w: int, free_h: int) -> tuple[int, int]:
    x = 0 if "left" in anchor else free_w if "right" in anchor else free_w // 2
    y = 0 if "top" in anchor else free_h if "bottom" in anchor else free_h // 2
    return x, y


def build_canvas(
    pixels: np.ndarray, target: tuple[int, int], anchor: Anchor
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Return the RGBA canvas, its edit region (the new area) and where the source's corner sits."""
    h, w = pixels.shape[:2]
    tw, th = target
    if tw < w or th < h:
        raise ApiError(
            422,
            "outpaint_target_too_small",
            f"Outpainting enlarges the image: the target {tw}x{th} is smaller than the source {w}x{h} "
            "in at least one dimension.",
            "size",
        )
    if (tw, th) == (w, h):
        raise ApiError(422, "outpaint_nothing_to_add", f"The target {tw}x{th} equals the source size.", "size")
    x, y = _offset(anchor, tw - w, th - h)
    canvas = np.zeros((th, tw, 4), dtype=np.uint8)
    canvas[y : y + h, x : x + w, :3] = pixels[..., :3]
    canvas[y : y + h, x : x + w, 3] = pixels[..., 3] if pixels.shape[2] == 4 else 255
    edit = np.ones((th, tw), dtype=bool)
    edit[y : y + h, x : x + w] = False
    return canvas, edit, (x, y)
