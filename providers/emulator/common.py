"""Helpers shared by the emulated endpoints: decoding inputs and encoding outputs as providers do."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pybase64
from litestar import Response
from PIL import Image

from providers.imaging import encode

SNIFF = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"RIFF": "webp"}


def image_format(data: bytes) -> str | None:
    for magic, fmt in SNIFF.items():
        if data.startswith(magic):
            return fmt
    return None


def decode_any(data: bytes) -> np.ndarray:
    """Decode to RGB or RGBA; raises on anything that is not a readable image."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        mode = "RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB"
        return np.asarray(img.convert(mode))


def b64_image(pixels: np.ndarray, fmt: str, quality: int | None = None) -> str:
    return pybase64.b64encode(encode(pixels, fmt, quality)).decode()  # type: ignore[arg-type]


def data_url_bytes(url: str) -> bytes:
    if not url.startswith("data:") or "," not in url:
        raise ValueError("expected a base64 data URL")
    return pybase64.b64decode(url.partition(",")[2], validate=True)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(json.dumps(body).encode(), status_code=status, media_type="application/json", headers=headers or {})
