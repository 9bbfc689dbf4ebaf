"""Limits a small upload cannot get around: output canvas size, decode memory, slow request bodies."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest

from tests.conftest import png_bytes

SMALL_LIMITS = {"max_megapixels": 2.0, "max_output_edge": 8192}
"""2 MP: a canvas past it is refused long before it would cost real memory, so the test stays cheap."""


@pytest.fixture(scope="module")
def small(make_server: Callable[..., str]) -> str:
    return make_server(limits=SMALL_LIMITS)


def _edit(url: str, image: bytes, mask: bytes | None = None, **fields: str) -> httpx.Response:
    files = [("image", ("photo.png", image, "image/png"))]
    if mask is not None:
        files.append(("mask", ("mask.png", mask, "image/png")))
    return httpx.post(f"{url}/v1/edits", files=files, data={"prompt": "remove it", **fields}, timeout=60)


def _tiny(w: int, h: int) -> bytes:
    return png_bytes(np.full((h, w, 3), 90, np.uint8))


def _half_mask(w: int, h: int) -> bytes:
    rgba = np.full((h, w, 4), 255, np.uint8)
    rgba[: h // 2, :, 3] = 0
    return png_bytes(rgba)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"mode": "outpaint", "size": "2048x2048"}, "size"),  # 4.2 MP from a 64x64 upload
        ({"mode": "outpaint", "aspect": "1:1"}, "aspect"),  # a 2000x20 strip squared: 4 MP
    ],
)
def test_outpaint_canvas_respects_the_megapixel_limit(small: str, fields: dict[str, str], param: str) -> None:
    image = _tiny(2000, 20) if "aspect" in fields else _tiny(64, 64)
    r = _edit(small, image, **fields)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "output_too_large" and err["param"] == param
    assert "megapixels" in err["message"]


def test_requested_output_size_respects_the_megapixel_limit(small: str) -> None:
    r = _edit(small, _tiny(64, 64), mask=_half_mask(64, 64), size="2048x2048")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("output_too_large", "size")


def test_a_canvas_within_the_limit_is_still_built(small: str) -> None:
    r = _edit(small, _tiny(64, 64), mode="outpaint", size="1024x1024")
    assert r.status_code == 200, r.text
    assert (r.json()["images"][0]["width"], r.json()["images"][0]["height"]) == (1024, 1024)
