"""Identify an upload by its magic bytes, never by its file name or declared content type."""

from __future__ import annotations

ACCEPTED = ("png", "jpeg", "webp")
OUTPUT_FORMATS = (*ACCEPTED, "gif", "svg")
"""What a stored image may be: an accepted upload, or a result in one of the formats editgate delivers."""

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"%PDF", "pdf"),
    (0, b"PK\x03\x04", "zip"),
    (0, b"\x00\x00\x01\x00", "ico"),
    (0, b"8BPS", "psd"),
    (4, b"ftypheic", "heic"),
    (4, b"ftypheix", "heic"),
    (4, b"ftypmif1", "heif"),
    (4, b"ftypavif", "avif"),
    (0, b"\xff\x0a", "jpeg-xl"),
    (0, b"\x00\x00\x00\x0cJXL ", "jpeg-xl"),
)


SNIFF_BYTES = 1024
"""How much of a file :func:`sniff` reads: an SVG may open with a BOM, whitespace and comments."""


def _markup_start(head: bytes) -> bytes:
    """``head`` past a UTF-8 BOM, whitespace and leading comments: where an XML document's own markup begins."""
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    while head.startswith(b"<!--") and (end := head.find(b"-->")) != -1:
        head = head[end + 3 :].lstrip()
    return head


def sniff(data: bytes) -> str:
    """Return ``png``/``jpeg``/``webp``, another format's name, ``text``, or ``unknown``."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for offset, magic, name in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    head = data[:SNIFF_BYTES].lstrip()
    start = _markup_start(head)
    if start[:5].lower() in (b"<?xml", b"<svg ") or start[:4].lower() == b"<svg":
        return "svg/xml"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown"
    return "text"


def stored_format(head: bytes) -> str | None:
    """The output format (``png``, ``jpeg``, ``webp``, ``gif``, ``svg``) a stored image's first
    :data:`SNIFF_BYTES` show, or None for anything else: how a file is served, and what it may be used for."""
    found = sniff(head)
    found = "svg" if found == "svg/xml" else found
    return found if found in OUTPUT_FORMATS else None
