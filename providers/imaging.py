"""Pixel-level helpers shared by providers and normalization: encode and decode with fast settings."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image

Format = Literal["png", "jpeg", "webp"]
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FORMAT_OF_MIME = {v: k for k, v in MIME.items()}
_PIL_NAME = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def encode(pixels: np.ndarray, fmt: Format, quality: int | None = None) -> bytes:
    """Encode RGB/RGBA pixels. PNG uses a low zlib level: 5-10x faster for a few % more bytes."""
    img = Image.fromarray(pixels)
    if fmt == "jpeg" and img.mode == "RGBA":
        img = flatten(img)
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG", compress_level=1)
    elif fmt == "jpeg":
        img.save(buf, "JPEG", quality=quality or 90, optimize=False)
    else:
        img.save(buf, "WEBP", quality=quality or 90, method=2)
    return buf.getvalue()


def flatten(img: Image.Image, color: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Composite an RGBA image onto a solid colour, for formats that cannot carry alpha."""
    base = Image.new("RGB", img.size, color)
    base.paste(img, mask=img.getchannel("A"))
    return base


def decode(data: bytes) -> np.ndarray:
    """Decode provider output (trusted to be an image, but not to be a sane one) to RGB or RGBA."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
        return np.asarray(img)
