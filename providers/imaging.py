"""Pixel-level helpers shared by providers and normalization: encode and decode with fast settings.

Library choice is by measurement (``python -m bench`` prints them beside each other): libvips decodes PNG about
twice as fast as Pillow and encodes it about three times as fast at a similar size, and encodes WebP faster; OpenCV
decodes WebP about 2.4x faster than libvips (libvips' loader runs libwebp's incremental decoder; the pixels are
identical); Pillow stays for JPEG and for every image the fast path does not cover (16-bit, grey, CMYK, damaged
files, where its errors are the ones callers expect).
"""

from __future__ import annotations

import io
import logging
from typing import Literal

import cv2
import numpy as np
import pyvips
from PIL import Image

from providers.decode_budget import DECODE_BUDGET

pyvips.cache_set_max(0)  # no operation cache: it would keep past requests' images alive
pyvips.concurrency_set(1)  # the gateway's worker pool already runs one image job per core
logging.getLogger("pyvips").setLevel(logging.WARNING)  # its debug lines print arguments, image buffers included

Format = Literal["png", "jpeg", "webp"]
"""The raster formats editgate encodes (and resizes, mask-locks and scores)."""
AsMadeFormat = Literal["gif", "svg"]
"""The newer models' animation and vector formats: delivered as the model made them, never re-encoded."""
OutputFormat = Format | AsMadeFormat
AS_MADE_FORMATS: tuple[AsMadeFormat, ...] = ("gif", "svg")
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif", "svg": "image/svg+xml"}
FORMAT_OF_MIME = {v: k for k, v in MIME.items()}


_PNG_FILTER_SUB = 0x10
_KEEP_NONE = 0  # libvips otherwise writes its own EXIF block into every file
_MAX_FAST_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
"""Above this, decoding goes through Pillow, whose decompression-bomb check then refuses it."""


def encode(pixels: np.ndarray, fmt: Format, quality: int | None = None) -> bytes:
    """Encode RGB/RGBA (or grey) uint8 pixels. PNG uses zlib level 2 with the Sub filter: ~3x faster than
    Pillow's level 1 for ~10% more bytes on photos."""
    if fmt != "jpeg" and pixels.dtype == np.uint8:
        img = pyvips.Image.new_from_array(np.ascontiguousarray(pixels))
        if fmt == "png":
            return img.pngsave_buffer(compression=2, filter=_PNG_FILTER_SUB, keep=_KEEP_NONE)
        return img.webpsave_buffer(Q=quality or 90, effort=0, keep=_KEEP_NONE)  # ~11% larger than effort 2, ~35% faster
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


class DecodeError(ValueError):
    """The bytes are not a decodable image (a corrupt pixel stream behind a sound container, say)."""


_RASTER_LOADERS = frozenset({"pngload_buffer", "jpegload_buffer", "webpload_buffer", "gifload_buffer"})
"""The libvips loaders untrusted bytes may reach: libvips would also render an SVG (librsvg), a PDF or a
TIFF; anything else goes to Pillow, which refuses what it cannot read."""


def decode(data: bytes) -> np.ndarray:
    """Decode provider output or validated uploads (images, but not necessarily sane ones) to RGB or RGBA uint8;
    bytes that do not decode raise :class:`DecodeError`, whatever the decoder's own exception was."""
    try:
        img = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="error")  # the header only
        if (
            img.get("vips-loader") in _RASTER_LOADERS
            and img.format == "uchar" and img.bands in (3, 4) and img.interpretation == "srgb"
            and img.width * img.height <= _MAX_FAST_PIXELS
        ):  # fmt: skip
            with DECODE_BUDGET.hold(img.width, img.height):
                if img.get("vips-loader") == "webpload_buffer":
                    pixels = _cv2_decode(data, img.bands)
                    if pixels is not None:
                        return pixels
                return img.numpy()
    except pyvips.Error:
        pass  # damaged or unusual: Pillow decodes it or raises the error callers handle
    return _pil_decode(data)


_TO_RGB = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}


def _cv2_decode(data: bytes, bands: int) -> np.ndarray | None:
    """OpenCV's decode, in RGB order, when it gives the ``bands`` the header announced; None otherwise."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if bgr is None or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != bands:
        return None
    return cv2.cvtColor(bgr, _TO_RGB[bands])


def _pil_decode(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img, DECODE_BUDGET.hold(*img.size):
            img.load()
            if img.mode not in ("RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
            return np.asarray(img)
    except MemoryError:
        raise
    except Exception as exc:  # OSError, SyntaxError, EOFError, zlib/struct errors...: the bytes' fault
        raise DecodeError(f"{type(exc).__name__}: {exc}") from exc
