"""Limits a small upload cannot get around: output canvas size, decode memory, slow request bodies."""

from __future__ import annotations

import json
import socket
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


@pytest.fixture(scope="module")
def impatient(make_server: Callable[..., str]) -> str:
    return make_server(body_read_timeout_s=0.5)


def _half_sent(url: str, path: str, content_type: bytes, body: bytes) -> bytes:
    """Send the headers and half the body over a raw socket, then wait for the server to give up on us."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: ".encode()
            + content_type
            + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        sock.sendall(head + body[: len(body) // 2])
        received = b""
        while chunk := sock.recv(65536):  # until the server closes; a server that waits forever times this out
            received += chunk
        return received


def _multipart(image: bytes) -> tuple[bytes, bytes]:
    request = httpx.Request(
        "POST", "http://x/", files={"image": ("photo.png", image, "image/png")}, data={"prompt": "remove it"}
    )
    return request.headers["content-type"].encode(), request.read()


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/edits", "editgate"), ("/v1/images/edits", "openai")],
)
def test_a_half_sent_body_is_cut_off_with_408(impatient: str, path: str, shape: str) -> None:
    content_type, body = _multipart(_tiny(256, 256))
    answer = _half_sent(impatient, path, content_type, body)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"connection: close" in head.lower()
    error = json.loads(payload)["error"]
    assert error["code"] == "body_timeout"
    assert ("type" in error) == (shape == "openai")


def test_a_half_sent_json_body_is_cut_off_too(impatient: str) -> None:
    answer = _half_sent(impatient, "/v1/edits", b"application/json", json.dumps({"prompt": "p" * 4000}).encode())
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_a_whole_body_is_not_affected_by_the_deadline(impatient: str) -> None:
    r = _edit(impatient, _tiny(64, 64), mask=_half_mask(64, 64))
    assert r.status_code == 200, r.text
