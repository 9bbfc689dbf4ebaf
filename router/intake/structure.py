"""Cheap container integrity, checked before an upload passes through undecoded.

A structural walk reads the container's framing, never its pixels: PNG chunks with their CRCs in a legal
order (IHDR first, IDATs in one run that opens a zlib stream, IEND), JPEG marker segments in bounds with
frame and quantization tables before the first scan and the scans ending in EOI, WebP chunks inside their
RIFF. It costs about a CRC pass over the bytes (well under a millisecond per MB), against tens of
milliseconds to decode. What it cannot see (a corrupt compressed stream behind correct CRCs) surfaces when
something decodes the pixels, and is then a 422 naming the input as well.
"""

from __future__ import annotations

import re
import struct
import zlib

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_WEBP_IMAGE = {b"VP8 ", b"VP8L", b"ANMF"}
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
"""Bit depths the PNG specification allows for each colour type."""


def _ihdr_legal(payload: bytes) -> bool:
    if len(payload) != 13:
        return False
    w, h, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", payload)
    return (
        0 < w < 2**31 and 0 < h < 2**31 and depth in _PNG_DEPTHS.get(colour, ())
        and compression == 0 and filtering == 0 and interlace in (0, 1)
    )  # fmt: skip


def png_sound(data: bytes) -> bool:
    """Every chunk inside the file with a matching CRC; IHDR first, IDATs contiguous and opening a zlib stream,
    IEND last (bytes after it are ignored, as every decoder does)."""
    if not data.startswith(_PNG_SIGNATURE):
        return False
    pos, kinds, idat_run_ended = 8, [], False
    view = memoryview(data)
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data) or zlib.crc32(view[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            return False
        if kind == b"IHDR" and (kinds or not _ihdr_legal(data[pos + 8 : end - 4])):
            return False
        if kind == b"IDAT":
            if idat_run_ended or (data[25] == 3 and b"PLTE" not in kinds):  # a palette image needs its palette
                return False
            if not kinds or kinds[-1] != b"IDAT":
                zlib_header = data[pos + 8 : pos + 10]
                if len(zlib_header) < 2 or zlib_header[0] & 0x0F != 8 or int.from_bytes(zlib_header) % 31:
                    return False
        elif kinds and kinds[-1] == b"IDAT":
            idat_run_ended = True
        kinds.append(kind)
        if kind == b"IEND":
            break
        pos = end
    return (
        bool(kinds)
        and kinds[0] == b"IHDR"
        and kinds.count(b"IHDR") == 1
        and kinds[-1] == b"IEND"
        and (b"IDAT" in kinds)
    )


def jpeg_sound(data: bytes) -> bool:
    """SOI; marker segments inside the file; a frame header and a quantization table before the first scan;
    at least one scan, its entropy-coded data skipped to the next marker; EOI reached."""
    if not data.startswith(b"\xff\xd8"):
        return False
    pos, seen_frame, seen_tables, seen_scan = 2, False, False, False
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return seen_scan
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > len(data):
            return False
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return False
        seen_frame |= marker in _SOF
        seen_tables |= marker == 0xDB
        if marker == 0xDA:
            if not (seen_frame and seen_tables):
                return False
            seen_scan = True
            found = _MARKER_IN_SCAN.search(data, end)
            if found is None:
                return False
            end = found.start()
        pos = end
    return False


def webp_sound(data: bytes) -> bool:
    """RIFF header and size inside the file; every chunk inside the RIFF; an image chunk present."""
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    (riff_size,) = struct.unpack_from("<I", data, 4)
    end = 8 + riff_size
    if riff_size < 4 or end > len(data) or riff_size % 2:
        return False
    pos, kinds = 12, []
    while pos + 8 <= end:
        kind, size = struct.unpack_from("<4sI", data, pos)
        pos += 8 + size + (size & 1)
        if pos > end:
            return False
        kinds.append(kind)
    return (
        pos == end and bool(kinds) and kinds[0] in {b"VP8 ", b"VP8L", b"VP8X"} and any(k in _WEBP_IMAGE for k in kinds)
    )


def container_sound(data: bytes, fmt: str) -> bool:
    """The structural walk for ``fmt`` (``png``/``jpeg``/``webp``); False means: decode it to judge."""
    walk = {"png": png_sound, "jpeg": jpeg_sound, "webp": webp_sound}.get(fmt)
    return walk(data) if walk else False
