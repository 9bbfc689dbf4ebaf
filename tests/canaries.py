"""Canary metadata for the strip tests: unique byte strings placed at every position of a PNG, JPEG or WebP.

A container is split into its units (chunks, marker segments, the entropy-coded data of each scan);
every boundary between units is a position, and so are the bytes after the end of the container.
Each payload is a real kind of metadata (EXIF with GPS, XMP, comments, thumbnails, text chunks,
profiles, unknown private chunks, a second image after the first) that carries the canary literally.
"""

from __future__ import annotations

import io
import re
import struct
import uuid
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageCms

from tests.conftest import fixture_bytes

_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def new_canary() -> bytes:
    return b"CANARY-" + uuid.uuid4().hex[:12].encode()


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _chelsea() -> Image.Image:
    return Image.open(io.BytesIO(fixture_bytes("chelsea.png"))).convert("RGB")


def base_images() -> dict[str, bytes]:
    """Clean containers of each kind, made from the fixtures."""
    photo = _chelsea()
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.full((photo.height, photo.width), 200, np.uint8)))
    return {
        "png": fixture_bytes("chelsea.png"),
        "jpeg_baseline": _save(photo, "JPEG", quality=90),
        "jpeg_progressive": _save(photo, "JPEG", quality=90, progressive=True),
        "webp_lossy": _save(photo, "WEBP", quality=80),
        "webp_lossless": _save(photo, "WEBP", lossless=True, method=0),
        "webp_extended": _save(rgba, "WEBP", quality=80),
    }


def exif_with_gps(canary: bytes) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = canary.decode()  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 0x1B: canary}  # GPS: latitude and a processing-method blob
    return exif.tobytes()


def xmp(canary: bytes) -> bytes:
    return b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description gps="' + canary + b'"/></x:xmpmeta>'


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --- JPEG -----------------------------------------------------------------------------------------


def _seg(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_units(data: bytes) -> list[bytes]:
    """SOI, each marker segment, each scan with its entropy-coded data, EOI."""
    units, pos = [data[:2]], 2
    while data[pos + 1] != 0xD9:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if data[pos + 1] == 0xDA:
            end = _SCAN_END.search(data, end).start()  # type: ignore[union-attr]
        units.append(data[pos:end])
        pos = end
    return [*units, data[pos:]]


def jpeg_payloads(canary: bytes) -> dict[str, bytes]:
    thumb = canary.ljust(12 * ((len(canary) + 11) // 12), b"_")
    dims = bytes([len(thumb) // 3, 1])  # an RGB thumbnail of len/3 x 1 pixels
    second = _save(Image.new("RGB", (8, 8), (9, 9, 9)), "JPEG", exif=exif_with_gps(canary))
    return {
        "exif_app1": _seg(0xE1, b"Exif\x00\x00" + exif_with_gps(canary)),
        "xmp_app1": _seg(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp(canary)),
        "com": _seg(0xFE, b"comment " + canary),
        **{f"app{n}": _seg(0xE0 + n, b"Vendor\x00" + canary) for n in (2, 3, 7, 11, 13, 15)},
        "jfxx_thumbnail": _seg(0xE0, b"JFXX\x00\x13" + dims + thumb),
        "jfif_thumbnail": _seg(0xE0, b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01" + dims + thumb),
        "adobe_tail": _seg(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01" + canary),
        "mpo_second_image": second,
    }


# --- PNG ------------------------------------------------------------------------------------------


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_units(data: bytes) -> list[bytes]:
    units, pos = [data[:8]], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        units.append(data[pos : pos + 12 + length])
        pos += 12 + length
    return units


def png_payloads(canary: bytes) -> dict[str, bytes]:
    return {
        "tEXt": png_chunk(b"tEXt", b"Comment\x00" + canary),
        "zTXt_keyword": png_chunk(b"zTXt", canary + b"\x00\x00" + zlib.compress(b"x")),
        "iTXt": png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp(canary)),
        "eXIf": png_chunk(b"eXIf", exif_with_gps(canary)),
        "iCCP_name": png_chunk(b"iCCP", canary + b"\x00\x00" + zlib.compress(srgb_icc())),
        "cHRM": png_chunk(b"cHRM", canary.ljust(32, b"_")[:32]),
        "tIME_like_private": png_chunk(b"caNy", canary),
        "second_png": _save(Image.new("RGB", (4, 4)), "PNG", pnginfo=_pnginfo(canary)),
    }


def _pnginfo(canary: bytes) -> object:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("GPS", canary.decode())
    return info


# --- WebP -----------------------------------------------------------------------------------------


def webp_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def webp_units(data: bytes) -> list[bytes]:
    units, pos = [data[:12]], 12
    while pos < len(data):
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        end = pos + 8 + size + (size & 1)
        units.append(data[pos:end])
        pos = end
    return units


def webp_join(units: list[bytes], trailing: bytes = b"") -> bytes:
    body = b"".join(units[1:])
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body + trailing


def webp_payloads(canary: bytes) -> dict[str, bytes]:
    return {
        "EXIF": webp_chunk(b"EXIF", exif_with_gps(canary)),
        "XMP": webp_chunk(b"XMP ", xmp(canary)),
        "ICCP": webp_chunk(b"ICCP", srgb_icc() + canary),
        "unknown": webp_chunk(b"CNRY", canary),
        "odd_unknown": webp_chunk(b"cnry", canary + b"!"),
    }


# --- placing payloads -----------------------------------------------------------------------------


def _kind(name: str) -> str:
    return name.split("_")[0]


_KINDS: dict[str, tuple[Callable[[bytes], list[bytes]], Callable[[bytes], dict[str, bytes]]]] = {
    "jpeg": (jpeg_units, jpeg_payloads),
    "png": (png_units, png_payloads),
    "webp": (webp_units, webp_payloads),
}


def plant_each(name: str, base: bytes, canary: bytes) -> dict[str, bytes]:
    """One file per (payload, position): before and after every unit (inside the RIFF for WebP), after
    the end of the container, and plain bytes after the end."""
    kind = _kind(name)
    split, payloads = _KINDS[kind]
    units = split(base)
    join = webp_join if kind == "webp" else lambda us: b"".join(us)
    out = {f"{name}:trailing": base + canary}
    for label, payload in payloads(canary).items():
        for i in range(len(units) + 1):
            out[f"{name}:{label}@{i}"] = join([*units[:i], payload, *units[i:]]) if i else payload + base
        out[f"{name}:{label}@after_end"] = base + payload
    return out


def plant_everywhere(name: str, base: bytes, canary: bytes) -> bytes:
    """One file with a canary payload at every legal position at once (JPEG, PNG: plus data after the end)."""
    kind = _kind(name)
    if kind == "jpeg":
        payloads = [p for label, p in jpeg_payloads(canary).items() if label != "mpo_second_image"]
        units = jpeg_units(base)
        mixed = [units[0]] + [u + payloads[i % len(payloads)] for i, u in enumerate(units[1:-1])] + [units[-1]]
        return b"".join(mixed) + jpeg_payloads(canary)["mpo_second_image"] + canary
    if kind == "png":
        payloads = [p for label, p in png_payloads(canary).items() if label != "second_png"]
        units = png_units(base)
        after = [u if u[4:8] == b"IDAT" == units[2 + i + 1][4:8] else u + payloads[i % len(payloads)]
                 for i, u in enumerate(units[2:-1])]  # fmt: skip
        mixed = [units[0], units[1], *payloads, *after]  # not between IDATs: they must be consecutive
        return b"".join([*mixed, units[-1]]) + png_payloads(canary)["second_png"] + canary
    payloads = list(webp_payloads(canary).values())
    units = webp_units(base)
    # At the end, where EXIF and XMP go. Bytes after the RIFF are covered by plant_each: main's stripper
    # refused such files (a re-encode then hid its leak of every unknown chunk).
    return webp_join([*units, *payloads])


def decoded(data: bytes) -> np.ndarray | None:
    """RGBA pixels of the first frame, or None when no decoder reads the file."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGBA"))
    except Exception:
        return None
