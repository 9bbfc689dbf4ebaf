"""Intake's image handling: container-level metadata stripping and colour-mode normalization."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from router.errors import ApiError
from router.intake.images import load_image
from router.intake.metadata import StripError, strip_jpeg, strip_png, strip_webp
from router.intake.sniff import sniff
from router.settings import Limits
from tests.conftest import fixture_bytes

LIMITS = Limits()


def _exif_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    return exif


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _photo(mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).convert(mode)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_metadata_is_stripped_without_touching_pixels(fmt: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "private note")
    extra = {"pnginfo": info} if fmt == "PNG" else {}
    data = _save(_photo(), fmt, exif=_exif_with_gps(), xmp=b"<x:xmpmeta>secret</x:xmpmeta>", **extra)
    assert b"SecretCam" in data
    loaded = load_image(data, "image", LIMITS)
    assert not loaded.reencoded
    assert b"SecretCam" not in loaded.blob.data and b"secret" not in loaded.blob.data
    assert b"private note" not in loaded.blob.data
    out = Image.open(io.BytesIO(loaded.blob.data))
    assert len(out.getexif()) == 0 and "xmp" not in out.info and "exif" not in out.info
    before = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(np.asarray(out.convert("RGB")), before), "pixels pass through unchanged"


def test_strippers_refuse_malformed_containers() -> None:
    png = _save(_photo(), "PNG")
    with pytest.raises(StripError):
        strip_png(png[:-20])
    with pytest.raises(StripError):
        strip_jpeg(b"\xff\xd8\x00\x00")
    with pytest.raises(StripError):
        strip_webp(b"RIFF\x00\x00\x00\x00WEBPVP8 \xff\xff\x00\x00")


def test_fixture_photo_loses_comment_and_icc() -> None:
    loaded = load_image(fixture_bytes("chelsea.png"), "image", LIMITS)
    out = Image.open(io.BytesIO(loaded.blob.data))
    assert not loaded.reencoded
    assert "icc_profile" not in out.info and "xmp" not in out.info


def test_non_srgb_profile_is_converted_then_dropped() -> None:
    loaded = load_image(fixture_bytes("rocket.jpg"), "image", LIMITS)
    assert loaded.reencoded and loaded.format == "png"
    assert "colour profile converted to sRGB" in loaded.notes
    out = Image.open(io.BytesIO(loaded.blob.data))
    assert "icc_profile" not in out.info
    assert np.array_equal(np.asarray(out), loaded.blob.pixels)


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("L", "RGB"),
        ("LA", "RGBA"),
        ("P", "RGB"),
        ("RGBA", "RGBA"),
        ("1", "RGB"),
        ("I;16", "RGB"),
        ("CMYK", "RGB"),
    ],
)
def test_colour_modes_become_rgb_or_rgba(mode: str, expect: str) -> None:
    if mode == "I;16":
        img = Image.fromarray(np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 20)
    else:
        img = _photo("RGBA" if mode == "LA" else "RGB").convert(mode)
    data = _save(img, "JPEG" if mode == "CMYK" else "PNG")
    loaded = load_image(data, "image", LIMITS)
    pixels = loaded.blob.decoded()
    assert pixels.dtype == np.uint8
    assert pixels.shape == (48, 64, len(expect))
    assert Image.open(io.BytesIO(loaded.blob.data)).mode == expect
    if mode == "I;16":
        assert pixels.max() > 200, "16-bit range is scaled, not clipped"


def test_palette_with_transparency_keeps_alpha() -> None:
    img = Image.new("P", (16, 16), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.info["transparency"] = 0
    loaded = load_image(_save(img, "PNG", transparency=0), "image", LIMITS)
    assert loaded.blob.decoded().shape[2] == 4
    assert loaded.blob.decoded()[..., 3].max() == 0


def test_grayscale_fixture_is_normalized() -> None:
    loaded = load_image(fixture_bytes("text.png"), "image", LIMITS)
    assert loaded.blob.decoded().shape == (172, 448, 3)
    assert loaded.converted_from == "L"


def test_animated_webp_uses_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    loaded = load_image(buf.getvalue(), "image", LIMITS)
    assert tuple(loaded.blob.decoded()[0, 0, :3]) == (255, 0, 0)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"GIF89a....", "gif"),
        (b"\x00\x00\x00\x18ftypheic", "heic"),
        (b"%PDF-1.7", "pdf"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "svg/xml"),
        (b"just words", "text"),
        (bytes(range(200, 256)) * 4, "unknown"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
    ],
)
def test_sniff_names_what_it_sees(data: bytes, name: str) -> None:
    assert sniff(data) == name


def test_truncated_jpeg_is_refused() -> None:
    data = fixture_bytes("rocket.jpg")
    with pytest.raises(ApiError) as err:
        load_image(data[: len(data) // 3], "image", LIMITS)
    assert err.value.code == "invalid_image"
