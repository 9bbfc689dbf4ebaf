"""Strip metadata at the container level (PNG chunks, JPEG APP segments, WebP chunks).

Removing EXIF, GPS, XMP, text comments and camera ICC profiles this way leaves the compressed pixels
byte for byte as uploaded: no decode/re-encode cost and no generation loss. Callers use it only for
images whose pixels need no change (orientation 1, sRGB, RGB/RGBA); the rest are re-encoded anyway.
"""

from __future__ import annotations

import struct

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
# pHYs (pixel density) says nothing about who or where; libvips writes it into every PNG it encodes
_PNG_KEEP = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs"})
_JPEG_KEEP_APP = frozenset({0xE0, 0xEE})  # APP0 (JFIF), APP14 (Adobe: colour transform flag)
_WEBP_DROP = frozenset({b"EXIF", b"XMP ", b"ICCP"})
_VP8X_CLEAR = 0x20 | 0x08 | 0x04  # ICC, EXIF, XMP flags


class StripError(ValueError):
    """The container is malformed; the caller falls back to a pixel re-encode or rejects the file."""


def strip_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIG):
        raise StripError("not a PNG")
    out = [_PNG_SIG]
    pos = len(_PNG_SIG)
    dropped = False
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise StripError("PNG chunk runs past the end of the file")
        if kind in _PNG_KEEP:
            out.append(data[pos:end])
        else:
            dropped = True
        pos = end
        if kind == b"IEND":
            return b"".join(out) if dropped or end != len(data) else data  # nothing to strip: no copy
    raise StripError("PNG has no IEND chunk")


def strip_jpeg(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise StripError("not a JPEG")
    out = [b"\xff\xd8"]
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise StripError("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if end > len(data):
            raise StripError("JPEG segment runs past the end of the file")
        if marker == 0xDA:  # start of scan: entropy-coded data follows to the end
            out.append(data[pos:])
            return b"".join(out)
        is_app = 0xE0 <= marker <= 0xEF
        if (not is_app and marker != 0xFE) or marker in _JPEG_KEEP_APP:
            out.append(data[pos:end])
        pos = end
    raise StripError("JPEG has no image data")


def strip_webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise StripError("not a WebP")
    chunks = []
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        end = pos + 8 + size + (size & 1)
        if pos + 8 + size > len(data):
            raise StripError("WebP chunk runs past the end of the file")
        chunk = data[pos:end]
        if kind == b"VP8X" and size >= 1:
            chunk = chunk[:8] + bytes([chunk[8] & ~_VP8X_CLEAR & 0xFF]) + chunk[9:]
        if kind not in _WEBP_DROP:
            chunks.append(chunk)
        pos = end
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


STRIPPERS = {"png": strip_png, "jpeg": strip_jpeg, "webp": strip_webp}


def strip_metadata(data: bytes, fmt: str) -> bytes:
    return STRIPPERS[fmt](data)
