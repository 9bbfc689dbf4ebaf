"""Every malformed input gets a specific 4xx in the one error shape, never a 500."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import fixture_bytes, png_bytes

COFFEE = fixture_bytes("coffee.png")
COFFEE_MASK = fixture_bytes("coffee_background_mask.png")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_header_png(w: int = 30000, h: int = 30000) -> bytes:
    """A tiny file whose header claims an enormous image: a decompression bomb's signature."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def gif_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "GIF")
    return buf.getvalue()


def _post(
    client: httpx.Client, image: bytes | None = COFFEE, mask: bytes | None = None, **fields: str
) -> httpx.Response:
    files = []
    if image is not None:
        files.append(("image", ("photo.png", image, "image/png")))
    if mask is not None:
        files.append(("mask", ("mask.png", mask, "image/png")))
    data = {"prompt": "remove the table", **fields}
    return client.post("/v1/edits", files=files or None, data=data)


CASES: list[tuple[str, Callable[[httpx.Client], httpx.Response], int, str, str | None]] = [
    ("zero bytes", lambda c: _post(c, image=b""), 422, "empty_file", "image"),
    ("truncated png", lambda c: _post(c, image=COFFEE[: len(COFFEE) // 2]), 422, "invalid_image", "image"),
    (
        "text named .png",
        lambda c: _post(c, image=b"hello, I am not a picture\n" * 20),
        415,
        "unsupported_image_type",
        "image",
    ),
    ("gif", lambda c: _post(c, image=gif_bytes()), 415, "unsupported_image_type", "image"),
    ("30000x30000 header", lambda c: _post(c, image=huge_header_png()), 422, "image_too_large", "image"),
    (
        "100000x1 header",
        lambda c: _post(c, image=huge_header_png(100000, 1)),
        422,
        "image_too_large",
        "image",
    ),
    (
        "mask wrong size",
        lambda c: _post(c, mask=png_bytes(np.zeros((10, 10, 4), np.uint8))),
        422,
        "mask_size_mismatch",
        "mask",
    ),
    (
        "mask not an image",
        lambda c: _post(c, mask=b"%PDF-1.4 not a mask"),
        415,
        "unsupported_image_type",
        "mask",
    ),
    (
        "empty mask",
        lambda c: _post(c, mask=png_bytes(np.zeros((400, 600), np.uint8))),
        422,
        "mask_empty",
        "mask",
    ),
    (
        "alpha convention without alpha",
        lambda c: _post(c, mask=png_bytes(np.full((400, 600), 255, np.uint8)), mask_convention="alpha"),
        422,
        "mask_has_no_alpha",
        "mask",
    ),
    (
        "prompt over limit",
        lambda c: _post(c, mask=COFFEE_MASK, prompt="x" * 2001),
        422,
        "prompt_too_long",
        "prompt",
    ),
    (
        "unknown chip",
        lambda c: _post(c, mask=COFFEE_MASK, protect="face,halo"),
        422,
        "unknown_protect_chip",
        "protect",
    ),
    ("n zero", lambda c: _post(c, mask=COFFEE_MASK, n="0"), 422, "invalid_parameter", "n"),
    ("n eleven", lambda c: _post(c, mask=COFFEE_MASK, n="11"), 422, "invalid_parameter", "n"),
    ("n not a number", lambda c: _post(c, mask=COFFEE_MASK, n="many"), 422, "invalid_parameter", "n"),
    ("bad size", lambda c: _post(c, mask=COFFEE_MASK, size="big"), 422, "invalid_parameter", "size"),
    (
        "size too large",
        lambda c: _post(c, mask=COFFEE_MASK, size="9000x100"),
        422,
        "output_too_large",
        "size",
    ),
    (
        "unknown field",
        lambda c: _post(c, mask=COFFEE_MASK, strength="0.5"),
        422,
        "unknown_parameter",
        "strength",
    ),
    ("missing image", lambda c: _post(c, image=None, mask=COFFEE_MASK), 422, "missing_image", "image"),
    (
        "image as text field",
        lambda c: c.post("/v1/edits", files={"x": ("a", b"b")}, data={"image": "abc", "prompt": "p"}),
        422,
        "not_a_file",
        "image",
    ),
    (
        "missing prompt",
        lambda c: c.post("/v1/edits", files={"image": ("a.png", COFFEE)}),
        422,
        "missing_parameter",
        "prompt",
    ),
    (
        "transparent jpeg",
        lambda c: _post(c, mask=COFFEE_MASK, background="transparent", output_format="jpeg"),
        422,
        "invalid_parameter",
        "background",
    ),
    ("outpaint without target", lambda c: _post(c, mode="outpaint"), 422, "invalid_parameter", "aspect"),
    (
        "outpaint too small",
        lambda c: _post(c, mode="outpaint", size="100x100"),
        422,
        "outpaint_target_too_small",
        "size",
    ),
    (
        "outpaint with mask",
        lambda c: _post(c, mask=COFFEE_MASK, mode="outpaint", aspect="1:1"),
        422,
        "invalid_parameter",
        "mask",
    ),
    (
        "bad json",
        lambda c: c.post("/v1/edits", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "invalid_json",
        None,
    ),
    (
        "bad base64",
        lambda c: c.post("/v1/edits", json={"image": "!!!", "prompt": "p"}),
        422,
        "invalid_base64",
        "image",
    ),
    (
        "wrong content type",
        lambda c: c.post("/v1/edits", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "unsupported_content_type",
        None,
    ),
    (
        "variation on local",
        lambda c: _post(c, mode="variation", prompt="a variation"),
        422,
        "no_capable_provider",
        None,
    ),
    (
        "replacement on local",
        lambda c: _post(c, mask=COFFEE_MASK, prompt="put a beach behind the cup"),
        422,
        "no_capable_provider",
        None,
    ),
    (
        "unknown provider",
        lambda c: _post(c, mask=COFFEE_MASK, provider="dall-e-9"),
        422,
        "no_capable_provider",
        None,
    ),
]


@pytest.mark.parametrize(("name", "send", "status", "code", "param"), CASES, ids=[c[0] for c in CASES])
def test_rejections(
    client: httpx.Client,
    name: str,
    send: Callable[[httpx.Client], httpx.Response],
    status: int,
    code: str,
    param: str | None,
) -> None:
    r = send(client)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["param"] == param
    assert len(err["message"]) > 10


def test_detected_type_is_named(client: httpx.Client) -> None:
    err = _post(client, image=gif_bytes()).json()["error"]
    assert err["detected"] == "gif" and "gif" in err["message"]
    assert _post(client, image=b"plain text" * 10).json()["error"]["detected"] == "text"


def test_capability_refusal_names_the_capability(client: httpx.Client) -> None:
    err = _post(client, mask=COFFEE_MASK, prompt="put a beach behind the cup").json()["error"]
    assert "prompt_guided" in err["message"] and "edit_id" in err
    refs = [("image", ("a.png", COFFEE)), ("mask", ("m.png", COFFEE_MASK)), ("reference", ("r.png", COFFEE))]
    err = client.post("/v1/edits", files=refs, data={"prompt": "remove the table"}).json()["error"]
    assert "references" in err["message"]


def test_refused_edit_keeps_inputs_and_settings(client: httpx.Client) -> None:
    err = _post(client, mask=COFFEE_MASK, prompt="put a beach behind the cup", tier="pro").json()["error"]
    record = client.get(f"/v1/edits/{err['edit_id']}").json()
    assert record["status"] == "failed"
    assert record["settings"]["tier"] == "pro"
    assert record["error"]["code"] == "no_capable_provider"
    stored = client.get(record["inputs"]["source"]["url"])
    assert stored.status_code == 200 and Image.open(io.BytesIO(stored.content)).size == (600, 400)


def test_body_over_limit_is_413_with_content_length(client: httpx.Client) -> None:
    big = b"\0" * (7 * 1024 * 1024)
    r = client.post("/v1/edits", files={"image": ("big.png", big)}, data={"prompt": "p"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_body_over_limit_is_413_while_streaming(client: httpx.Client) -> None:
    """No Content-Length (chunked): the limit is enforced on the bytes as they arrive."""
    boundary = "xyz"

    def body():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        yield head.encode()
        for _ in range(8):
            yield b"\0" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post("/v1/edits", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413


def test_per_file_and_megapixel_limits(make_server: Callable[..., str]) -> None:
    url = make_server(limits={"max_file_bytes": 100_000, "max_megapixels": 0.1})
    with httpx.Client(base_url=url) as c:
        r = _post(c, mask=COFFEE_MASK)
        assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
        small = png_bytes(np.full((400, 600, 3), 128, np.uint8))
        r = _post(c, image=small, mask=COFFEE_MASK)
        assert r.status_code == 422 and r.json()["error"]["code"] == "image_too_large"


def test_unknown_routes_and_ids_use_the_error_shape(client: httpx.Client) -> None:
    for path in ("/v1/files/" + "0" * 64, "/v1/files/../etc/passwd", "/v1/edits/edit_nope", "/nope"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
    r = client.delete("/v1/edits")
    assert r.status_code == 405 and "error" in r.json()
