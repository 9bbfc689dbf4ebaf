"""The emulators' images: real, derived from the input, and deterministic.

Inside the edit region a change an eye can see (a tint and stripes whose colour is seeded by the
prompt); outside it the source with the drift typical of the provider: ``small`` (a level or two of
noise, as a masked OpenAI edit shows) or ``global`` (a brightness and colour shift over the whole
frame, as a mask-less Gemini edit shows). Preservation scoring and mask lock measure exactly this.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import cv2
import numpy as np

Drift = Literal["small", "global"]


def _seed(prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")


def _default_region(h: int, w: int, seed: int) -> np.ndarray:
    """Without a mask, the 'model' changes a central ellipse (a subject), not the whole frame."""
    yy, xx = np.ogrid[:h, :w]
    cx, cy = w * (0.45 + (seed % 10) / 100), h * (0.45 + (seed // 10 % 10) / 100)
    return ((xx - cx) / (w * 0.28)) ** 2 + ((yy - cy) / (h * 0.28)) ** 2 <= 1.0


def render_edit(
    source: np.ndarray, edit: np.ndarray | None, prompt: str, out_size: tuple[int, int], drift: Drift
) -> np.ndarray:
    """Return RGB or RGBA uint8 pixels of ``out_size`` (w, h)."""
    seed = _seed(prompt)
    h, w = source.shape[:2]
    region = edit if edit is not None else _default_region(h, w, seed)
    rng = np.random.default_rng(seed)
    rgb = source[..., :3].astype(np.float32)
    if drift == "small":
        out = rgb + rng.integers(-2, 3, size=rgb.shape).astype(np.float32)
    else:
        out = rgb * 1.06 + np.array([14.0, 6.0, -4.0], np.float32)
    colour = np.array([(seed >> s) & 0xFF for s in (0, 8, 16)], np.float32)
    colour = 60 + colour * 0.75  # keep it clearly visible on dark and light photos alike
    stripes = (((np.arange(w)[None, :] + np.arange(h)[:, None]) // 12) % 2).astype(np.float32)[..., None]
    painted = rgb * 0.35 + colour * 0.65 + stripes * 40.0
    out = np.where(region[..., None], painted, out)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if source.shape[2] == 4:
        alpha = np.where(region, 255, source[..., 3]).astype(np.uint8)
        out = np.dstack([out, alpha])
    if (w, h) != out_size:
        out = cv2.resize(out, out_size, interpolation=cv2.INTER_AREA if out_size[0] < w else cv2.INTER_CUBIC)
    return out
