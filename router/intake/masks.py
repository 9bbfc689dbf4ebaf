"""Masks in either convention become one: a boolean edit region plus an alpha-convention PNG.

Conventions: ``alpha`` (alpha 0 = edit, what OpenAI takes natively) and ``black_white`` (white =
edit, what most editors export). ``auto`` picks alpha when the mask has any transparency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from providers.base import ImageBlob
from providers.imaging import encode
from router.errors import ApiError

Convention = Literal["auto", "alpha", "black_white"]


Box = tuple[int, int, int, int]
"""x, y, width, height."""


@dataclass(frozen=True, slots=True)
class EditRegion:
    """The boolean edit region as intake measured it, kept for normalization at one bit per pixel of its
    bounding box: the lock and the score then never decode the mask again, and an edit waiting on its provider
    holds an eighth of a byte per boxed pixel (a 1024x1024 mask at most 128 KB), not a byte per pixel."""

    width: int
    height: int
    box: Box
    bits: np.ndarray

    @classmethod
    def of(cls, edit: np.ndarray) -> EditRegion:
        x, y, w, h = cv2.boundingRect(np.ascontiguousarray(edit).view(np.uint8))
        return cls(edit.shape[1], edit.shape[0], (x, y, w, h), np.packbits(edit[y : y + h, x : x + w], axis=None))

    def unpack(self) -> np.ndarray:
        """The HxW boolean region (True = edit)."""
        x, y, w, h = self.box
        edit = np.zeros((self.height, self.width), dtype=bool)
        edit[y : y + h, x : x + w] = np.unpackbits(self.bits, count=w * h).reshape(h, w).view(bool)
        return edit


@dataclass(slots=True)
class Mask:
    blob: ImageBlob
    """Alpha-convention RGBA PNG (alpha 0 = edit): what providers are sent."""
    convention: Literal["alpha", "black_white"]
    coverage: float
    region: EditRegion
    """The same region, for the lock and the score (the blob's pixels are not held through the call)."""


def alpha_mask_png(edit: np.ndarray) -> bytes:
    """Encode a boolean edit region as the RGBA alpha-convention mask OpenAI takes natively."""
    rgba = np.zeros((*edit.shape, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(edit, 0, 255)
    return encode(rgba, "png")


def edit_region(pixels: np.ndarray, convention: Convention) -> tuple[np.ndarray, Literal["alpha", "black_white"]]:
    """Boolean HxW edit region from decoded RGB/RGBA mask pixels."""
    has_alpha = pixels.ndim == 3 and pixels.shape[2] == 4
    alpha = np.ascontiguousarray(pixels[..., 3]) if has_alpha else None  # one copy: every test below is then ~0.1 ms
    if convention == "auto":
        convention = "alpha" if alpha is not None and int(alpha.min()) < 255 else "black_white"
    if convention == "alpha":
        if alpha is None:
            raise ApiError(
                422,
                "mask_has_no_alpha",
                "mask_convention is 'alpha' but the mask has no alpha channel; send an RGBA PNG with "
                "alpha 0 where the edit goes, or use mask_convention=black_white.",
                "mask",
            )
        return alpha < 128, "alpha"
    rgb = pixels[..., :3].astype(np.uint32)
    luminance = (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114) // 1000
    return luminance >= 128, "black_white"


def convert_mask(
    pixels: np.ndarray, convention: Convention, source_size: tuple[int, int], uploaded: ImageBlob | None = None
) -> tuple[Mask | None, str | None]:
    """Validate against the source and convert; a full mask is dropped with a warning saying so."""
    h, w = pixels.shape[:2]
    sw, sh = source_size
    if (w, h) != (sw, sh):
        raise ApiError(
            422,
            "mask_size_mismatch",
            f"The mask is {w}x{h} but the image is {sw}x{sh} (after EXIF orientation); they must match.",
            "mask",
        )
    edit, used = edit_region(pixels, convention)
    edited = np.count_nonzero(edit)
    coverage = edited / edit.size
    if coverage == 0.0:
        how = "alpha 0 (transparent)" if used == "alpha" else "white"
        raise ApiError(
            422,
            "mask_empty",
            f"The mask marks nothing to edit (read as {used} convention: edit pixels are {how}). "
            "Mark the region to change, or send no mask to edit the whole image.",
            "mask",
        )
    if coverage == 1.0:
        return None, "The mask covers the whole image, so it was treated as an edit without a mask."
    exact = False  # an uploaded PNG whose alpha is only 0 and 255 is already what providers take: no re-encode
    if uploaded is not None and uploaded.mime == "image/png" and used == "alpha":
        alpha = np.ascontiguousarray(pixels[..., 3])
        exact = np.count_nonzero(alpha == 0) == edited and np.count_nonzero(alpha == 255) == edit.size - edited
    data = uploaded.data if exact and uploaded else alpha_mask_png(edit)
    blob = ImageBlob(data=data, mime="image/png", width=w, height=h)  # the region is not held through the call
    return Mask(blob=blob, convention=used, coverage=coverage, region=EditRegion.of(edit)), None
