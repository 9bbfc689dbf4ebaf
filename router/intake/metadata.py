"""Strip metadata at the container level: rebuild a PNG, JPEG or WebP from its image structures only.

Each stripper walks the whole container and copies an allow-list: the segments or chunks a decoder
needs for the first image's pixels. Everything else goes wherever it sits: EXIF, GPS, XMP, ICC and
text chunks, APPn and COM segments between progressive scans, JFXX thumbnails, a second image after
EOI (MPO, motion photos), unknown chunks and any bytes after the end of the container. The compressed
pixels are copied byte for byte: no decode/re-encode cost and no generation loss. Callers use it only
for images whose pixels need no change (orientation 1, sRGB, RGB/RGBA); the rest are re-encoded anyway.

A container the walk cannot follow raises :class:`StripError`; the caller re-encodes from the decoded
pixels or rejects the file, so nothing unparsed is ever passed on.
"""

from __future__ import annotations

import re
import struct

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
# Kept ancillary chunks, with the only payload sizes the spec allows: too small to hold a message.
# pHYs (pixel density) says nothing about who or where; libvips writes it into every PNG it encodes.
_PNG_FIXED = {b"gAMA": (4,), b"sRGB": (1,), b"sBIT": (1, 2, 3, 4), b"pHYs": (9,)}
_PNG_IMAGE = frozenset({b"IHDR", b"PLTE", b"IDAT", b"tRNS"})
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_JPEG_TABLES = frozenset({0xC4, 0xCC, 0xDB, 0xDD, 0xDC})  # DHT DAC DQT DRI DNL (hierarchical DHP/EXP: refused)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length field
# Inside entropy-coded data 0xFF is followed by a stuffed 0x00 or an RSTn. The first 0xFF followed by
# anything else ends the data: a marker, or the fill bytes (0xFF) that may run before one.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")

_WEBP_KEEP = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF"})
_WEBP_FRAME_KEEP = frozenset({b"VP8 ", b"VP8L", b"ALPH"})
_WEBP_IMAGE = frozenset({b"VP8 ", b"VP8L", b"ANMF"})
_VP8X_KEEP_FLAGS = 0x10 | 0x02  # alpha, animation; ICC (0x20), EXIF (0x08), XMP (0x04) and reserved bits cleared


class StripError(ValueError):
    """The container is malformed; the caller falls back to a pixel re-encode or rejects the file."""


def strip_png(data: bytes) -> bytes:
    """IHDR, PLTE, tRNS and IDAT as they are, fixed-size colour/density chunks, then a fresh IEND.

    Returns ``data`` itself (no copy) when nothing had to go."""
    if not data.startswith(_PNG_SIG):
        raise StripError("not a PNG")
    out = [_PNG_SIG]
    pos = len(_PNG_SIG)
    dropped = False
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise StripError("PNG chunk runs past the end of the file")
        if kind == b"IHDR" and (len(out) > 1 or length != 13):
            raise StripError("PNG must have one 13-byte IHDR chunk before its image data")
        if kind == b"IEND":
            out.append(_PNG_IEND)
            unchanged = not dropped and data[pos:end] == _PNG_IEND and end == len(data)
            return data if unchanged else b"".join(out)
        if kind in _PNG_IMAGE or length in _PNG_FIXED.get(kind, ()):
            if len(out) == 1 and kind != b"IHDR":
                raise StripError("PNG must have one 13-byte IHDR chunk before its image data")
            out.append(data[pos:end])
        elif not kind[0] & 0x20:  # critical chunk this walk does not know: the pixels may depend on it
            raise StripError(f"PNG has an unknown critical chunk {kind!r}")
        else:
            dropped = True
        pos = end
    raise StripError("PNG has no IEND chunk")


def _jfif_app0(payload: bytes) -> bytes | None:
    """A JFIF APP0 rebuilt from its version, units and density alone (no thumbnail); None if not JFIF."""
    if len(payload) < 12 or payload[:5] != b"JFIF\x00" or payload[7] > 2:
        return None
    body = b"JFIF\x00\x01\x01" + payload[7:12] + b"\x00\x00"
    return b"\xff\xe0" + struct.pack(">H", len(body) + 2) + body


def _adobe_app14(payload: bytes) -> bytes | None:
    """An Adobe APP14 rebuilt from its colour transform alone (what decoders read); None if not Adobe."""
    if len(payload) < 12 or payload[:5] != b"Adobe" or payload[11] > 2:
        return None
    body = b"Adobe\x00\x64\x00\x00\x00\x00" + payload[11:12]
    return b"\xff\xee" + struct.pack(">H", len(body) + 2) + body


def _jpeg_tables_fit(marker: int, payload: bytes) -> bool:
    """DQT and DHT payloads are whole tables, end to end: bytes spliced into one do not parse."""
    pos = 0
    while pos < len(payload):
        if marker == 0xDB:
            precision, table = payload[pos] >> 4, payload[pos] & 15
            if precision > 1 or table > 3:
                return False
            pos += 1 + 64 * (1 + precision)
        elif marker == 0xC4:
            if payload[pos] >> 4 > 1 or payload[pos] & 15 > 3 or pos + 17 > len(payload):
                return False
            pos += 17 + sum(payload[pos + 1 : pos + 17])
        else:
            return len(payload) == 2 if marker in (0xDD, 0xDC) else len(payload) % 2 == 0  # DRI, DNL; DAC pairs
    return pos == len(payload)


def _scan_header_fits(payload: bytes, components: bytes) -> bool:
    """SOS: 1-4 components of the frame with table ids 0-3, spectral selection within 0..63, successive
    approximation bits within 0..13."""
    count = payload[0] if payload else 0
    if not 1 <= count <= 4 or len(payload) != 4 + 2 * count:
        return False
    ss, se, approx = payload[-3], payload[-2], payload[-1]
    if not (ss <= se <= 63 and approx >> 4 <= 13 and approx & 15 <= 13):
        return False
    selectors = payload[1:-3]
    return all(
        c in components and t >> 4 <= 3 and t & 15 <= 3 for c, t in zip(selectors[::2], selectors[1::2], strict=True)
    )


def strip_jpeg(data: bytes) -> bytes:
    """Tables, frame header, scans with their entropy-coded data, and EOI; a plain JFIF and the Adobe
    colour transform rebuilt. Stops at the first EOI."""
    if not data.startswith(b"\xff\xd8"):
        raise StripError("not a JPEG")
    out = [b"\xff\xd8"]
    pos, components, scans = 2, b"", 0
    while True:
        if pos + 2 > len(data):
            raise StripError("JPEG ends before its EOI marker")
        if data[pos] != 0xFF:
            raise StripError("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == _EOI:
            if not scans:
                raise StripError("JPEG has no image data")
            out.append(b"\xff\xd9")
            return b"".join(out)
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == _SOI or marker == 0x00:
            raise StripError("JPEG has a misplaced marker")
        if pos + 4 > len(data):
            raise StripError("JPEG segment runs past the end of the file")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise StripError("JPEG segment runs past the end of the file")
        payload = data[pos + 4 : end]
        if marker in _JPEG_TABLES:
            if not _jpeg_tables_fit(marker, payload):
                raise StripError(f"JPEG table segment 0x{marker:02X} is malformed")
            out.append(data[pos:end])
        elif marker in _JPEG_SOF:
            if components or len(payload) < 6 or len(payload) != 6 + 3 * payload[5]:
                raise StripError("JPEG frame header is malformed or repeated")
            components = payload[6::3]
            out.append(data[pos:end])
        elif marker == _SOS:
            if not _scan_header_fits(payload, components):
                raise StripError("JPEG scan header is malformed or comes before the frame header")
            found = _SCAN_END.search(data, end)
            if found is None:
                raise StripError("JPEG scan data runs to the end of the file")
            out.append(data[pos : found.start()])
            scans += 1
            end = found.start()
        elif marker == 0xE0 and (jfif := _jfif_app0(payload)):
            out.append(jfif)
        elif marker == 0xEE and (adobe := _adobe_app14(payload)):
            out.append(adobe)
        elif not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            raise StripError(f"JPEG has an unsupported marker 0x{marker:02X}")
        pos = end


def _webp_chunks(data: bytes, pos: int, end: int, keep: frozenset[bytes]) -> list[bytes]:
    chunks = []
    while pos < end:
        if pos + 8 > end:
            raise StripError("WebP chunk header runs past the end of the file")
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if pos + 8 + size > end:
            raise StripError("WebP chunk runs past the end of the file")
        payload = data[pos + 8 : pos + 8 + size]
        if kind == b"VP8X":
            if size != 10 or chunks:
                raise StripError("WebP VP8X chunk is misplaced or the wrong size")
            payload = bytes([payload[0] & _VP8X_KEEP_FLAGS]) + b"\x00\x00\x00" + payload[4:]
        elif kind == b"ANMF":
            if size < 16:
                raise StripError("WebP ANMF chunk is too short")
            frame = _webp_chunks(data, pos + 8 + 16, pos + 8 + size, _WEBP_FRAME_KEEP)
            payload = payload[:16] + b"".join(frame)
        if kind in keep:
            pad = b"\x00" if len(payload) & 1 else b""  # the padding byte is rebuilt, not copied
            chunks.append(kind + struct.pack("<I", len(payload)) + payload + pad)
        pos += 8 + size + (size & 1)
    return chunks


def strip_webp(data: bytes) -> bytes:
    """VP8/VP8L/VP8X/ALPH/ANIM/ANMF chunks only (unknown chunks inside animation frames too), VP8X's
    metadata flags cleared, RIFF size recomputed; bytes after the RIFF's declared end dropped."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise StripError("not a WebP")
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size < 4 or 8 + riff_size > len(data):
        raise StripError("WebP RIFF size runs past the end of the file")
    chunks = _webp_chunks(data, 12, 8 + riff_size, _WEBP_KEEP)
    if not any(c[:4] in _WEBP_IMAGE for c in chunks):
        raise StripError("WebP has no image data")
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


STRIPPERS = {"png": strip_png, "jpeg": strip_jpeg, "webp": strip_webp}


def strip_metadata(data: bytes, fmt: str) -> bytes:
    return STRIPPERS[fmt](data)
