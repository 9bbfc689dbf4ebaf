"""providers.imaging: the libvips fast path and its Pillow fallback give the same pixels and carry no metadata."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from providers.imaging import DecodeError, decode, encode
from router.intake.metadata import strip_png, strip_webp

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
RGBA = np.dstack([RGB, RNG.integers(0, 256, (48, 64), dtype=np.uint8)])


def pil_bytes(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("pixels", [RGB, RGBA], ids=["rgb", "rgba"])
def test_png_round_trip_is_exact_and_has_no_metadata(pixels: np.ndarray) -> None:
    data = encode(pixels, "png")
    assert np.array_equal(decode(data), pixels)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)  # other decoders agree
    assert strip_png(data) is data  # nothing a strip would remove: no eXIf, tEXt, iTXt, iCCP
    assert b"eXIf" not in data and b"Exif" not in data


def test_webp_has_no_exif_or_xmp() -> None:
    data = encode(RGB, "webp")
    assert strip_webp(data) == data
    assert b"EXIF" not in data and b"XMP " not in data
    assert decode(data).shape == RGB.shape


def test_grey_16bit_palette_and_cmyk_inputs_decode_to_8bit_rgb_or_rgba() -> None:
    grey = pil_bytes(Image.fromarray(RGB[..., 0]), "PNG")
    deep = pil_bytes(Image.fromarray(RGB[..., 0].astype(np.uint16) * 257), "PNG")
    palette = Image.fromarray(RGB).convert("P")
    palette.info["transparency"] = 0
    cmyk = pil_bytes(Image.fromarray(RGB).convert("CMYK"), "JPEG")
    for data, channels in ((grey, 3), (deep, 3), (pil_bytes(palette, "PNG", transparency=0), 4), (cmyk, 3)):
        out = decode(data)
        assert out.dtype == np.uint8 and out.shape == (48, 64, channels)
    assert np.array_equal(decode(grey)[..., 1], RGB[..., 0])


def test_truncated_png_raises_instead_of_returning_grey_pixels() -> None:
    data = encode(RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8), "png")
    with pytest.raises(DecodeError, match="truncated"):  # Pillow: "image file is truncated", as the input's fault
        decode(data[: len(data) // 2])


@pytest.mark.parametrize("pixels", [RGB, RGBA], ids=["rgb", "rgba"])
@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_webp_decodes_to_the_pixels_pillow_reads_in_rgb_order(pixels: np.ndarray, lossless: bool) -> None:
    """WebP goes through OpenCV (faster than libvips' loader): same pixels as Pillow, RGB(A) order, not BGR."""
    data = pil_bytes(Image.fromarray(pixels), "WEBP", lossless=lossless, quality=90, exact=True)
    out = decode(data)
    assert out.shape == pixels.shape and out.dtype == np.uint8
    assert np.array_equal(out, np.asarray(Image.open(io.BytesIO(data))))
    if lossless:
        assert np.array_equal(out, pixels)


def test_damaged_webp_raises_decode_error() -> None:
    data = encode(RNG.integers(0, 256, (128, 128, 3), dtype=np.uint8), "webp")
    with pytest.raises(DecodeError):
        decode(data[: len(data) // 2])
