"""Hostile request bodies, generated from the fixtures: what an attacker or a broken client sends.

Every case is one HTTP request to one of the edit endpoints. Images are mutated at the container level
(truncations, bit flips in headers and in compressed data with PNG CRCs recomputed, lying dimensions,
bombs, polyglots); forms are built by hand so a part can carry bytes no well-behaved client would send
(non-UTF-8 names and values, unknown charsets, empty filenames, duplicated parts); JSON bodies go deep,
carry bad base64 and values of the wrong type. ``tests/test_hostile_inputs.py`` sends them all.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image

from tests.conftest import fixture_bytes

COFFEE = fixture_bytes("coffee.png")
COFFEE_MASK = fixture_bytes("coffee_background_mask.png")
COFFEE_MASK_BW = fixture_bytes("coffee_background_mask_bw.png")
JPEG = fixture_bytes("chelsea_gps_rotated.jpg")
ROCKET = fixture_bytes("rocket.jpg")
PNG_SIG = b"\x89PNG\r\n\x1a\n"
BOUNDARY = b"hostile-7MA4YWxkTrZu0gW"


def _webp(lossless: bool) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(fixture_bytes("chelsea.png"))).save(buf, "WEBP", lossless=lossless, quality=60)
    return buf.getvalue()


WEBP = _webp(False)
WEBP_LOSSLESS = _webp(True)


# --- containers -------------------------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of each chunk of a well-formed PNG."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + payload) if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_from(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """Reassemble chunks with every CRC recomputed: only a decoder can tell what is wrong."""
    return PNG_SIG + b"".join(chunk(k, p) for k, p in chunks)


def _flip(data: bytes, pos: int, mask: int = 0x5A) -> bytes:
    pos %= len(data)
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]


def _replace_chunk(data: bytes, kind: bytes, payload: bytes) -> bytes:
    return png_from([(k, payload if k == kind else p) for k, p in png_chunks(data)])


def _ihdr(data: bytes, **fields: int) -> bytes:
    """The PNG with IHDR fields changed (width, height, depth, colour, interlace) and its CRC fixed."""
    ihdr = png_chunks(data)[0][1]
    w, h, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", ihdr)
    values = {"w": w, "h": h, "depth": depth, "colour": colour, "comp": comp, "filt": filt, "interlace": interlace}
    values.update(fields)
    return _replace_chunk(data, b"IHDR", struct.pack(">IIBBBBB", *values.values()))


def _idat_flipped(data: bytes, where: float) -> bytes:
    """One byte of the compressed pixel stream changed, CRCs recomputed: structurally a perfect PNG."""
    chunks = png_chunks(data)
    i = next(n for n, (k, _) in enumerate(chunks) if k == b"IDAT")
    payload = chunks[i][1]
    chunks[i] = (b"IDAT", _flip(payload, max(2, int(len(payload) * where))))
    return png_from(chunks)


def _idat_replaced(data: bytes, stream: bytes) -> bytes:
    """The pixel stream replaced by ``stream`` in one IDAT, CRCs recomputed."""
    out: list[tuple[bytes, bytes]] = []
    for kind, payload in png_chunks(data):
        if kind == b"IDAT":
            if not any(k == b"IDAT" for k, _ in out):
                out.append((b"IDAT", stream))
        else:
            out.append((kind, payload))
    return png_from(out)


def bomb_png(w: int, h: int) -> bytes:
    """A small file that inflates to w*h grey pixels."""
    raw = zlib.compressobj(9)
    body = b"".join(raw.compress(b"\x00" * (w + 1)) for _ in range(h)) + raw.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return png_from([(b"IHDR", ihdr), (b"IDAT", body), (b"IEND", b"")])


def png_mutations(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    chunks = png_chunks(data)
    idat = b"".join(p for k, p in chunks if k == b"IDAT")
    w, h = struct.unpack(">II", chunks[0][1][:8])
    for cut in (8, 16, 33, 41, len(data) // 3, len(data) - 13, len(data) - 1):
        yield f"{name} truncated at {cut}", data[:cut]
    yield f"{name} signature only", PNG_SIG
    yield f"{name} IHDR bit flip, CRC stale", _flip(data, 20)
    yield f"{name} IEND missing", data[:-12]
    yield f"{name} width lies (+1)", _ihdr(data, w=w + 1)
    yield f"{name} height lies (x2)", _ihdr(data, h=h * 2)
    yield f"{name} height lies (-1)", _ihdr(data, h=h - 1)
    yield f"{name} width 0", _ihdr(data, w=0)
    yield f"{name} width 2^31", _ihdr(data, w=2**31 - 1)
    yield f"{name} 30000x30000 claimed", _ihdr(data, w=30000, h=30000)
    yield f"{name} bit depth 3", _ihdr(data, depth=3)
    yield f"{name} bit depth 16", _ihdr(data, depth=16)
    yield f"{name} colour type 7", _ihdr(data, colour=7)
    yield f"{name} palette without PLTE", _ihdr(data, colour=3)
    yield f"{name} interlace 1 (lies)", _ihdr(data, interlace=1)
    yield f"{name} interlace 9", _ihdr(data, interlace=9)
    yield f"{name} compression method 1", _ihdr(data, comp=1)
    for where in (0.0, 0.01, 0.5, 0.999):
        yield f"{name} IDAT bit flip at {where:.0%}, CRC fixed", _idat_flipped(data, where)
    yield f"{name} IDAT zlib header broken, CRC fixed", _idat_replaced(data, b"\x00\x00" + idat[2:])
    yield f"{name} IDAT adler32 broken, CRC fixed", _idat_replaced(data, idat[:-4] + b"\x00\x00\x00\x00")
    yield f"{name} IDAT stream half, CRC fixed", _idat_replaced(data, idat[: len(idat) // 2])
    yield f"{name} IDAT raw garbage, CRC fixed", _idat_replaced(data, bytes(range(256)) * 8)
    yield f"{name} IDAT empty, CRC fixed", _idat_replaced(data, b"")
    yield f"{name} IDAT before IHDR", png_from([chunks[-2], *chunks[:-2], chunks[-1]])
    yield f"{name} duplicate IHDR", png_from([chunks[0], *chunks])
    yield f"{name} chunk length 2^32-1", data[:33] + b"\xff\xff\xff\xffIDAT" + data[41:]
    yield f"{name} unknown critical chunk", png_from([chunks[0], (b"ABCD", b"x" * 10), *chunks[1:]])
    yield f"{name} tEXt with script (polyglot)", png_from([chunks[0], (b"tEXt", b"c\0<?php system($_GET[1]);?>"),
                                                           *chunks[1:]])  # fmt: skip
    yield f"{name} + zip appended (polyglot)", data + b"PK\x03\x04" + b"\x00" * 26 + b"evil.sh"
    yield f"{name} + html appended (polyglot)", data + b"<html><script>alert(1)</script></html>"
    yield f"{name} + jpeg appended (polyglot)", data + JPEG[:4096]


def bomb_mutations() -> Iterator[tuple[str, bytes]]:
    yield "bomb png 9000x9000 (81 MP inflated from a few KB)", bomb_png(9000, 9000)
    yield "bomb png 8193x64 (edge over the limit)", bomb_png(8193, 64)
    yield "bomb png 1x1", bomb_png(1, 1)


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset, total length) of each header segment up to SOS."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append((marker, pos, length + 2))
        if marker == 0xDA:
            break
        pos += length + 2
    return out


def _without_segments(data: bytes, marker: int) -> bytes:
    out, last = [data[:2]], 2
    for m, pos, length in jpeg_segments(data):
        out.append(data[last:pos])
        if m != marker:
            out.append(data[pos : pos + length])
        last = pos + length
    out.append(data[last:])
    return b"".join(out)


def jpeg_mutations(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    segments = jpeg_segments(data)
    sof = next(pos for m, pos, _ in segments if m in (0xC0, 0xC1, 0xC2))
    sos_pos, sos_len = next((pos, length) for m, pos, length in segments if m == 0xDA)
    scan = sos_pos + sos_len
    for cut in (2, 3, 20, sof + 6, scan, (scan + len(data)) // 2, len(data) - 2):
        yield f"{name} truncated at {cut}", data[:cut]
    height = sof + 5
    yield f"{name} SOF height 0 (DNL)", data[:height] + b"\x00\x00" + data[height + 2 :]
    yield f"{name} SOF height lies (x2)", data[:height] + struct.pack(">H", 600) + data[height + 2 :]
    yield f"{name} SOF width 65535", data[: height + 2] + b"\xff\xff" + data[height + 4 :]
    yield f"{name} SOF precision 12", data[: sof + 4] + b"\x0c" + data[sof + 5 :]
    yield f"{name} SOF 0 components", data[: sof + 8] + b"\x00" + data[sof + 9 :]
    yield f"{name} SOF 9 components", data[: sof + 8] + b"\x09" + data[sof + 9 :]
    first_len = segments[0][1] + 2
    yield f"{name} first segment length 0", data[:first_len] + b"\x00\x00" + data[first_len + 2 :]
    yield f"{name} first segment length 65535", data[:first_len] + b"\xff\xff" + data[first_len + 2 :]
    yield f"{name} DQT removed", _without_segments(data, 0xDB)
    yield f"{name} DHT removed", _without_segments(data, 0xC4)
    yield f"{name} SOF removed", _without_segments(data, 0xC0)
    yield f"{name} SOS removed", data[:sos_pos] + b"\xff\xd9"
    for where in (0.1, 0.5, 0.9):
        pos = scan + int((len(data) - scan - 2) * where)
        yield f"{name} scan byte flipped at {where:.0%}", _flip(data, pos, 0xFF)
    yield f"{name} scan garbage", data[:scan] + bytes(range(255)) * 20 + b"\xff\xd9"
    yield f"{name} EOI missing", data[:-2]
    yield f"{name} + png appended (polyglot)", data + COFFEE[:2048]
    yield f"{name} soi then png", b"\xff\xd8\xff" + COFFEE


def webp_mutations(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    for cut in (12, 20, 30, len(data) // 2, len(data) - 1):
        yield f"{name} truncated at {cut}", data[:cut]
    yield f"{name} RIFF size lies (huge)", data[:4] + b"\xff\xff\xff\x7f" + data[8:]
    yield f"{name} RIFF size lies (small)", data[:4] + struct.pack("<I", 8) + data[8:]
    yield f"{name} chunk size lies (huge)", data[:16] + b"\xff\xff\xff\x7f" + data[20:]
    yield f"{name} chunk size 0", data[:16] + b"\x00\x00\x00\x00" + data[20:]
    yield f"{name} chunk fourcc unknown", data[:12] + b"ABCD" + data[16:]
    for where in (0.05, 0.5):
        yield f"{name} payload bit flip at {where:.0%}", _flip(data, 30 + int((len(data) - 30) * where))
    yield f"{name} VP8 frame tag dims flipped", _flip(_flip(data, 26, 0xFF), 28, 0xFF)
    yield f"{name} + garbage appended", data + b"\x00" * 64


def image_mutations() -> list[tuple[str, bytes]]:
    """Every mutated source image; the unmutated fixtures are in too, as a control."""
    cases = [("coffee.png as is", COFFEE), ("chelsea jpeg as is", JPEG), ("webp as is", WEBP)]
    cases += list(png_mutations("coffee.png", COFFEE))
    cases += list(bomb_mutations())
    cases += list(jpeg_mutations("chelsea.jpg", JPEG))
    cases += list(jpeg_mutations("rocket.jpg", ROCKET))[::3]
    cases += list(webp_mutations("webp", WEBP))
    cases += list(webp_mutations("webp lossless", WEBP_LOSSLESS))[::2]
    cases += [
        ("empty", b""),
        ("one byte", b"\x89"),
        ("gif", b"GIF89a" + COFFEE[6:200]),
        ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
        ("svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"),
        ("text", "a photo, honestly ☺".encode()),
        ("utf-16 text", "photo".encode("utf-16")),
        ("heic brand", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64),
    ]
    return cases


def mask_mutations() -> list[tuple[str, bytes]]:
    """Masks for coffee.png (600x400): wrong sizes, undecodable, corrupt pixel streams with CRCs fixed."""
    small = Image.open(io.BytesIO(COFFEE_MASK)).resize((300, 200))
    buf = io.BytesIO()
    small.save(buf, "PNG")
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(COFFEE_MASK_BW)).save(jpeg, "JPEG")
    cases = [
        ("mask as is", COFFEE_MASK),
        ("mask bw as is", COFFEE_MASK_BW),
        ("mask wrong size", buf.getvalue()),
        ("mask jpeg", jpeg.getvalue()),
        ("mask text", b"not a mask at all"),
        ("mask empty", b""),
        ("mask is the photo", COFFEE),
    ]
    for source, data in (("mask", COFFEE_MASK), ("mask bw", COFFEE_MASK_BW)):
        cases += [
            (f"{source} IDAT bit flip, CRC fixed", _idat_flipped(data, 0.5)),
            (f"{source} IDAT early bit flip, CRC fixed", _idat_flipped(data, 0.01)),
            (
                f"{source} adler32 broken, CRC fixed",
                _idat_replaced(data, b"".join(p for k, p in png_chunks(data) if k == b"IDAT")[:-4] + b"\x00" * 4),
            ),
            (f"{source} zlib garbage, CRC fixed", _idat_replaced(data, b"\x78\x9c" + bytes(range(256)) * 4)),
            (f"{source} truncated", data[: len(data) // 2]),
            (f"{source} height lies", _ihdr(data, h=401)),
        ]
    return cases


# --- request bodies ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    name: bytes
    data: bytes
    filename: bytes | None = None
    content_type: bytes | None = None
    extra_headers: bytes = b""


def file_part(name: str, data: bytes, filename: bytes = b"photo.png", ctype: bytes = b"image/png") -> Part:
    return Part(name.encode(), data, filename, ctype)


def field(name: str | bytes, value: str | bytes, content_type: bytes | None = None) -> Part:
    name = name.encode() if isinstance(name, str) else name
    value = value.encode() if isinstance(value, str) else value
    return Part(name, value, None, content_type)


def multipart(parts: list[Part], boundary: bytes = BOUNDARY) -> bytes:
    out = []
    for p in parts:
        disposition = b'form-data; name="' + p.name + b'"'
        if p.filename is not None:
            disposition += b'; filename="' + p.filename + b'"'
        head = b"Content-Disposition: " + disposition + b"\r\n" + p.extra_headers
        if p.content_type is not None:
            head += b"Content-Type: " + p.content_type + b"\r\n"
        out.append(b"--" + boundary + b"\r\n" + head + b"\r\n" + p.data + b"\r\n")
    return b"".join(out) + b"--" + boundary + b"--\r\n"


MULTIPART = f"multipart/form-data; boundary={BOUNDARY.decode()}"


@dataclass(frozen=True, slots=True)
class Body:
    name: str
    content: bytes
    content_type: str | None


def form(name: str, parts: list[Part]) -> Body:
    return Body(name, multipart(parts), MULTIPART)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def deep(levels: int, leaf: str = "1") -> str:
    return "[" * levels + leaf + "]" * levels


def deep_object(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


PROMPT = field("prompt", "remove the background")


def form_cases(with_image: bool) -> list[Body]:
    """Form-level hostility; ``with_image`` adds the fixture source where the endpoint needs one."""
    img = [file_part("image", COFFEE)] if with_image else []
    mask = file_part("mask", COFFEE_MASK)
    return [
        form("no parts", []),
        form("only a prompt", [PROMPT]),
        form("prompt not UTF-8", [*img, field("prompt", b"remove \xff\xfe the \xc3(background")]),
        form("prompt with UTF-8 surrogate bytes", [*img, field("prompt", b"remove \xed\xa0\x80")]),
        form("prompt unknown charset", [*img, field("prompt", b"remove it", b"text/plain; charset=x-klingon")]),
        form(
            "prompt charset utf-16",
            [*img, field("prompt", "remove it".encode("utf-16"), b"text/plain; charset=utf-16")],
        ),
        form("prompt charset latin-1", [*img, field("prompt", b"remov\xe9", b"text/plain; charset=latin-1")]),
        form("prompt with NUL", [*img, field("prompt", b"remove\x00the\x00table")]),
        form("prompt empty", [*img, field("prompt", b"")]),
        form("prompt 100 KB", [*img, field("prompt", b"x" * 100_000)]),
        form("field name not UTF-8", [*img, PROMPT, field(b"pro\xffmpt", b"x")]),
        form("field name empty", [*img, PROMPT, field(b"", b"x")]),
        form("mode not UTF-8", [*img, PROMPT, field("mode", b"\xff\xff")]),
        form("protect not UTF-8", [*img, PROMPT, field("protect", b"face,\xfe")]),
        form("image part empty filename", [Part(b"image", COFFEE, b"", b"image/png"), PROMPT]),
        form("image part empty filename, text", [Part(b"image", b"hello", b""), PROMPT]),
        form("image part no filename", [Part(b"image", COFFEE, None, b"image/png"), PROMPT]),
        form("image part filename not UTF-8", [Part(b"image", COFFEE, b"ph\xffoto.png", b"image/png"), PROMPT]),
        form("image part path traversal name", [Part(b"image", COFFEE, b"../../etc/passwd", b"image/png"), PROMPT]),
        form("image part charset unknown", [Part(b"image", COFFEE, b"a.png", b"image/png; charset=x-nope"), PROMPT]),
        form("image part empty", [file_part("image", b""), PROMPT]),
        form("image part text/plain", [file_part("image", COFFEE, ctype=b"text/plain"), PROMPT]),
        form("image part no content type", [Part(b"image", COFFEE, b"a.png"), PROMPT]),
        form("two images", [*img, file_part("image", COFFEE), PROMPT]),
        form("image[] twice", [file_part("image[]", COFFEE), file_part("image[]", JPEG), PROMPT]),
        form("two masks", [*img, mask, mask, PROMPT]),
        form("mask empty filename", [*img, Part(b"mask", COFFEE_MASK, b"", b"image/png"), PROMPT]),
        form("mask as text field", [*img, field("mask", "alpha"), PROMPT]),
        form("reference as text field", [*img, field("reference", "https://example.com/x.png"), PROMPT]),
        form("two prompts", [*img, PROMPT, field("prompt", "another")]),
        form("prompt as a file", [*img, file_part("prompt", b"remove it", ctype=b"text/plain")]),
        form("metadata as a file", [*img, PROMPT, file_part("metadata", b"{}", ctype=b"application/json")]),
        form("metadata {bad", [*img, PROMPT, field("metadata", "{bad")]),
        form("metadata a list", [*img, PROMPT, field("metadata", "[1, 2]")]),
        form("metadata 100,000 deep", [*img, PROMPT, field("metadata", deep(100_000))]),
        form("metadata object 5,000 deep", [*img, PROMPT, field("metadata", deep_object(5_000))]),
        form("metadata object 900 deep", [*img, PROMPT, field("metadata", deep_object(900))]),
        form("metadata not UTF-8", [*img, PROMPT, field("metadata", b'{"a": "\xff"}')]),
        form("metadata lone surrogate", [*img, PROMPT, field("metadata", '{"a": "\\ud800"}')]),
        form("protect 100,000 deep", [*img, PROMPT, field("protect", deep(100_000))]),
        form("protect 900 deep", [*img, PROMPT, field("protect", deep(900))]),
        form("protect [1", [*img, PROMPT, field("protect", "[1")]),
        form("protect objects", [*img, PROMPT, field("protect", '[{"a": 1}, null]')]),
        form("n not a number", [*img, PROMPT, field("n", "many")]),
        form("n huge", [*img, PROMPT, field("n", "9" * 5000)]),
        form("n negative", [*img, PROMPT, field("n", "-1")]),
        form("size 0x0", [*img, PROMPT, field("size", "0x0")]),
        form("size huge", [*img, PROMPT, field("size", "99999x99999")]),
        form("size unicode digits", [*img, PROMPT, field("size", "\u0661\u0660\u0662\u0664x\u0661\u0660")]),
        form("aspect 0:1", [*img, PROMPT, field("mode", "outpaint"), field("aspect", "0:1")]),
        form("aspect extreme", [*img, PROMPT, field("mode", "outpaint"), field("aspect", "1:999")]),
        form(
            "anchor unknown",
            [*img, PROMPT, field("mode", "outpaint"), field("aspect", "1:1"), field("anchor", "nowhere")],
        ),
        form("parent_version huge", [*img, PROMPT, field("parent_version", str(2**63))]),
        form("session_id path traversal", [*img, PROMPT, field("session_id", "../../../etc/passwd")]),
        form("session_id NUL", [*img, PROMPT, field("session_id", "ses_\x00")]),
        form("provider unknown", [*img, PROMPT, field("provider", "nope")]),
        form("output_compression 1000", [*img, PROMPT, field("output_compression", "1000")]),
        form("include_base64 maybe", [*img, PROMPT, field("include_base64", "maybe")]),
        form("experiment_key 10 KB", [*img, PROMPT, field("experiment_key", "k" * 10_000)]),
        form("unknown field", [*img, PROMPT, field("evil", "1")]),
        form("mask without convention match", [*img, PROMPT, mask, field("mask_convention", "black_white")]),
        form("1000 protect fields", [*img, PROMPT, *[field("protect", "face")] * 1000]),
        Body("multipart without boundary", multipart([*img, PROMPT]), "multipart/form-data"),
        Body("multipart wrong boundary", multipart([*img, PROMPT], b"other"), MULTIPART),
        Body("multipart truncated", multipart([*img, PROMPT])[:-30], MULTIPART),
        Body("multipart no closing boundary", multipart([*img, PROMPT]).rsplit(b"--" + BOUNDARY, 1)[0], MULTIPART),
        Body("multipart garbage", bytes(range(256)) * 40, MULTIPART),
        Body("multipart boundary not UTF-8", multipart([PROMPT], b"\xff\xfe"), "multipart/form-data; boundary=\xff"),
        Body(
            "part without content-disposition",
            b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n",
            MULTIPART,
        ),
        Body(
            "part header garbage",
            b"--" + BOUNDARY + b"\r\n\xff\xfe: \x00\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n",
            MULTIPART,
        ),
        Body("urlencoded", b"prompt=remove+it&image=%89PNG", "application/x-www-form-urlencoded"),
        Body("urlencoded not UTF-8", b"prompt=%ff%fe&protect=%c3%28", "application/x-www-form-urlencoded"),
        Body("urlencoded deep metadata", b"prompt=x&metadata=" + b"%5B" * 100_000, "application/x-www-form-urlencoded"),
        Body("text/plain body", b"prompt=remove it", "text/plain"),
        Body("xml body", b"<edit><prompt>x</prompt></edit>", "application/xml"),
        Body("no content type", b"prompt=x", None),
        Body("content type garbage", b"{}", ";;;==, foo/bar; q"),
        Body("image/png body", COFFEE, "image/png"),
    ]


def json_cases(with_image: bool, field_name: str = "image") -> list[Body]:
    """JSON-body hostility: depth, wrong types, bad base64."""
    import json

    img = {field_name: b64(COFFEE)} if with_image else {}

    def body(name: str, value: object) -> Body:
        return Body(name, json.dumps(value).encode(), "application/json")

    def raw(name: str, content: bytes | str) -> Body:
        return Body(name, content.encode() if isinstance(content, str) else content, "application/json")

    base = {"prompt": "remove the background", **img}
    return [
        raw("100,000 [", "[" * 100_000),
        raw("100,000 {", '{"a":' * 100_000),
        raw("deep array then garbage", deep(5_000) + "x"),
        raw("metadata 100,000 deep", json.dumps(base)[:-1] + ', "metadata": ' + deep_object(100_000) + "}"),
        raw("metadata 5,000 deep", json.dumps(base)[:-1] + ', "metadata": ' + deep_object(5_000) + "}"),
        raw("metadata 900 deep", json.dumps(base)[:-1] + ', "metadata": ' + deep_object(900) + "}"),
        raw("protect 100,000 deep", json.dumps(base)[:-1] + ', "protect": ' + deep(100_000) + "}"),
        raw("protect 900 deep", json.dumps(base)[:-1] + ', "protect": ' + deep(900, '"face"') + "}"),
        raw("brackets inside strings", json.dumps({**base, "metadata": {"s": "[" * 100_000}}).encode()),
        raw("escaped quotes and brackets", json.dumps({**base, "metadata": {"s": '\\"[[[' * 20_000}}).encode()),
        raw("not JSON", "{bad"),
        raw("not UTF-8", b'{"prompt": "\xff\xfe"}'),
        raw("UTF-16 JSON", json.dumps(base).encode("utf-16")),
        raw(
            "lone surrogate prompt",
            json.dumps(base)[:-1] + ', "x": 1}'.replace('"x": 1', '"metadata": {"a": "\\udc80"}'),
        ),
        raw(
            "lone surrogate in prompt",
            '{"prompt": "remove \\ud800 it"' + (f', "{field_name}": "{b64(COFFEE)}"' if with_image else "") + "}",
        ),
        raw("NaN and Infinity", json.dumps(base)[:-1] + ', "n": NaN, "output_compression": Infinity}'),
        raw("1e400", json.dumps(base)[:-1] + ', "n": 1e400}'),
        raw("huge integer", json.dumps(base)[:-1] + ', "n": ' + "9" * 5000 + "}"),
        raw("duplicate keys", json.dumps(base)[:-1] + ', "prompt": "again", "prompt": 3}'),
        raw("empty body", b""),
        raw("whitespace body", b"   \n\t "),
        raw("BOM then JSON", b"\xef\xbb\xbf" + json.dumps(base).encode()),
        body("array body", [base]),
        body("string body", "hello"),
        body("null body", None),
        body("prompt a number", {**base, "prompt": 5}),
        body("prompt a list", {**base, "prompt": ["a", "b"]}),
        body("prompt an object", {**base, "prompt": {"x": 1}}),
        body("prompt with NUL", {**base, "prompt": "a\x00b"}),
        body("image a number", {**base, field_name: 5}),
        body("image a list", {**base, field_name: [b64(COFFEE)]}),
        body("image an object", {**base, field_name: {"b64": b64(COFFEE)}}),
        body("image null", {**base, field_name: None}),
        body("image empty string", {**base, field_name: ""}),
        body("image bad base64", {**base, field_name: "%%%not base64%%%"}),
        body("image base64 bad padding", {**base, field_name: b64(COFFEE)[:-3]}),
        body(
            "image base64 with newlines",
            {**base, field_name: "\n".join(b64(COFFEE)[i : i + 76] for i in range(0, 2000, 76))},
        ),
        body("image urlsafe base64", {**base, field_name: base64.urlsafe_b64encode(COFFEE).decode()}),
        body("image data url bad", {**base, field_name: "data:image/png;base64"}),
        body("image data url not base64", {**base, field_name: "data:image/png," + "%89PNG"}),
        body("image data url of text", {**base, field_name: "data:text/html;base64," + b64(b"<script>")}),
        body("image base64 of truncated png", {**base, field_name: b64(COFFEE[:5000])}),
        body("image base64 of corrupt IDAT", {**base, field_name: b64(_idat_flipped(COFFEE, 0.5))}),
        body("image http url", {**base, field_name: "http://169.254.169.254/latest/meta-data/"}),
        body("mask a number", {**base, "mask": 1}),
        body("mask bad base64", {**base, "mask": "***"}),
        body("mask corrupt IDAT", {**base, "mask": b64(_idat_flipped(COFFEE_MASK, 0.5))}),
        body("mask wrong size", {**base, "mask": b64(mask_mutations()[2][1])}),
        body("references a string", {**base, "references": b64(COFFEE)}),
        body("references an object", {**base, "references": {"a": 1}}),
        body("references of numbers", {**base, "references": [1, 2]}),
        body("references bad base64", {**base, "references": ["!!"]}),
        body("references 50", {**base, "references": [b64(JPEG[:100])] * 50}),
        body("metadata a string", {**base, "metadata": "{bad"}),
        body("metadata a list", {**base, "metadata": [1]}),
        body("protect a string", {**base, "protect": "face"}),
        body("protect an object", {**base, "protect": {"face": True}}),
        body("protect of objects", {**base, "protect": [{"a": [1]}]}),
        body("n a string", {**base, "n": "two"}),
        body("n a float", {**base, "n": 1.5}),
        body("n huge", {**base, "n": 10**30}),
        body("n bool", {**base, "n": True}),
        body("size a number", {**base, "size": 1024}),
        body("parent_version negative", {**base, "parent_version": -1}),
        body("session_id a list", {**base, "session_id": ["x"]}),
        body("session_id unknown", {**base, "session_id": "ses_" + "0" * 32}),
        body("unknown field", {**base, "evil": 1}),
        body("mode generate with image", {**base, "mode": "generate"}),
        body("mode outpaint no aspect", {**base, "mode": "outpaint"}),
        Body("JSON sent as text/plain", json.dumps(base).encode(), "text/plain"),
        Body("JSON with charset", json.dumps(base).encode(), "application/json; charset=utf-8"),
        Body("JSON with unknown charset", json.dumps(base).encode(), "application/json; charset=x-nope"),
        Body("JSON as multipart type", json.dumps(base).encode(), MULTIPART),
    ]


def openai_generation_cases() -> list[Body]:
    """``POST /v1/images/generations`` bodies: OpenAI's fields with hostile values, and JSON-level hostility."""
    import json

    def body(name: str, value: object) -> Body:
        return Body(name, json.dumps(value).encode(), "application/json")

    base = {"prompt": "a lighthouse", "model": "gpt-image-2"}
    return [
        *json_cases(with_image=False),
        body("generation ok", base),
        body("metadata {bad", {**base, "metadata": "{bad"}),
        body("metadata deep string", {**base, "metadata": deep(100_000)}),
        body("metadata list string", {**base, "metadata": "[1]"}),
        body("model a number", {**base, "model": 3}),
        body("model unknown", {**base, "model": "dall-e-9"}),
        body("model a list", {**base, "model": ["gpt-image-2"]}),
        body("quality a list", {**base, "quality": ["high"]}),
        body("quality a dict", {**base, "quality": {"a": 1}}),
        body("size a dict", {**base, "size": {"w": 1}}),
        body("response_format a list", {**base, "response_format": ["url"]}),
        body("stream a dict", {**base, "stream": {"a": 1}}),
        body("protect a number", {**base, "protect": 5}),
        body("protect deep string", {**base, "protect": deep(100_000)}),
        body("user a dict", {**base, "user": {"a": 1}}),
        body("user with metadata not a dict", {**base, "user": "u1", "metadata": "[1]"}),
        body("n zero", {**base, "n": 0}),
        body("n string", {**base, "n": "x"}),
        body("background a list", {**base, "background": ["transparent"]}),
    ]


def openai_edit_cases() -> list[Body]:
    """``POST /v1/images/edits`` forms: the drop-in's own fields with hostile values."""
    img = [file_part("image", COFFEE)]
    prompt = field("prompt", "remove the background")
    model = field("model", "gpt-image-2")
    return [
        *form_cases(with_image=True),
        form("drop-in ok", [*img, prompt, model]),
        form("drop-in metadata={bad", [*img, prompt, model, field("metadata", "{bad")]),
        form("drop-in metadata list", [*img, prompt, model, field("metadata", "[1]")]),
        form("drop-in metadata 100,000 deep", [*img, prompt, model, field("metadata", deep(100_000))]),
        form("drop-in metadata and user", [*img, prompt, model, field("metadata", "[1]"), field("user", "u")]),
        form("drop-in protect deep", [*img, prompt, model, field("protect", deep(100_000))]),
        form("drop-in stream true", [*img, prompt, model, field("stream", "true")]),
        form("drop-in quality unknown", [*img, prompt, model, field("quality", "ultra")]),
        form("drop-in model unknown", [*img, prompt, field("model", "dall-e-9")]),
        form("drop-in response_format bad", [*img, prompt, model, field("response_format", "jpeg")]),
        form("drop-in mask corrupt IDAT", [*img, prompt, model, file_part("mask", _idat_flipped(COFFEE_MASK, 0.5))]),
        form("drop-in image empty filename", [Part(b"image", COFFEE, b"", b"image/png"), prompt, model]),
        form("drop-in image[] empty filename", [Part(b"image[]", COFFEE, b"", b"image/png"), prompt, model]),
        form("drop-in session_id unknown", [*img, prompt, model, field("session_id", "ses_" + "f" * 32)]),
        form("drop-in n zero", [*img, prompt, model, field("n", "0")]),
    ]


# --- sending and judging -------------------------------------------------------------------------------------


def problem(response: httpx.Response, openai_shape: bool) -> str | None:
    """Why this answer breaks the promise (a 2xx, or a 4xx in the JSON error shape); None when it keeps it."""
    if response.status_code in (200, 201):
        return None
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} without the JSON error shape: {response.text[:120]!r}"
    keys = {"message", "type", "param", "code"} if openai_shape else {"code", "message", "param"}
    if not isinstance(error, dict) or not keys <= error.keys() or not error["message"]:
        return f"{response.status_code} error not in the {'OpenAI' if openai_shape else 'editgate'} shape: {error}"
    return None


def post(client: httpx.Client, path: str, body: Body) -> httpx.Response:
    headers = {"content-type": body.content_type.encode("latin-1")} if body.content_type is not None else {}
    return client.post(path, content=body.content, headers=headers)


def print_summary(config: pytest.Config, line: str) -> None:
    """One line in the terminal summary, even under -q and output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
