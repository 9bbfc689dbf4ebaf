"""The native edit API over a real socket, with the fixture photos."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
from PIL import Image

from tests.conftest import decode, fixture_bytes


def _edit(client: httpx.Client, files: list, **fields: object) -> httpx.Response:
    data = {k: (json.dumps(v) if isinstance(v, list | dict) else str(v)) for k, v in fields.items()}
    return client.post("/v1/edits", files=files, data=data)


def test_helmet_removal_keeps_every_pixel_outside_the_mask(client: httpx.Client) -> None:
    src, mask = fixture_bytes("astronaut.png"), fixture_bytes("astronaut_helmet_mask.png")
    r = _edit(
        client,
        [("image", ("astronaut.png", src)), ("mask", ("m.png", mask))],
        prompt="remove the helmet",
        protect=["face", "pose"],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["provider"] == "local" and body["status"] == "succeeded"
    assert body["emulated"] is False
    assert body["mask"] == {"convention": "alpha", "coverage": 0.129181}
    image = body["images"][0]
    assert (image["width"], image["height"], image["format"]) == (512, 512, "png")
    out = decode(client.get(image["url"]).content)
    source = decode(src)
    edit = decode(mask)[..., 3] < 128
    assert out.shape[:2] == source.shape[:2]
    assert np.array_equal(out[~edit][:, :3], source[~edit])
    assert not np.array_equal(out[edit][:, :3], source[edit]), "the masked region must change"
    assert body["preservation"]["region"] == "outside_mask"
    assert body["preservation"]["mean_abs_diff"] == 0.0
    lat = body["latency_ms"]
    assert lat["total"] >= lat["provider"] > 0 and lat["gateway"] >= 0
    assert body["route"]["attempts"][0]["outcome"] == "ok"


def test_black_white_mask_is_converted_and_coverage_reported(client: httpx.Client) -> None:
    bw = fixture_bytes("coffee_background_mask_bw.png")
    r = _edit(
        client,
        [("image", ("coffee.png", fixture_bytes("coffee.png"))), ("mask", ("bw.png", bw))],
        prompt="remove the background clutter",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    expected = float((decode(bw) >= 128).mean())
    assert body["mask"]["convention"] == "black_white"
    assert abs(body["mask"]["coverage"] - expected) < 1e-6
    stored_mask = decode(client.get(body["inputs"]["mask"]["url"]).content)
    assert stored_mask.shape == (400, 600, 4), "stored mask is alpha-convention RGBA"
    assert np.array_equal(stored_mask[..., 3] == 0, decode(bw) >= 128)


def test_exif_orientation_applied_and_metadata_stripped(client: httpx.Client) -> None:
    r = _edit(
        client,
        [
            ("image", ("cat.jpg", fixture_bytes("chelsea_gps_rotated.jpg"))),
            ("mask", ("m.png", _center_mask(300, 451))),
        ],
        prompt="remove the spot",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    src_ref = body["inputs"]["source"]
    assert (src_ref["width"], src_ref["height"]) == (300, 451)
    assert any("orientation 6" in w for w in body["warnings"])
    for url in (src_ref["url"], body["images"][0]["url"]):
        data = client.get(url).content
        img = Image.open(io.BytesIO(data))
        assert img.size == (300, 451)
        assert len(img.getexif()) == 0
        assert "exif" not in img.info and "xmp" not in img.info
        assert b"ExampleCam" not in data and b"Model X" not in data


def _center_mask(w: int, h: int) -> bytes:
    arr = np.zeros((h, w), dtype=np.uint8)
    arr[h // 3 : h // 2, w // 3 : w // 2] = 255
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, "PNG")
    return buf.getvalue()


def test_outpaint_rocket_to_9_16_keeps_original_pixels(client: httpx.Client) -> None:
    src = fixture_bytes("rocket.jpg")
    r = _edit(
        client,
        [("image", ("rocket.jpg", src))],
        prompt="extend the night sky",
        mode="outpaint",
        aspect="9:16",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    image = body["images"][0]
    assert (image["width"], image["height"]) == (640, 1138)
    assert body["mask"]["convention"] == "outpaint"
    out = decode(client.get(image["url"]).content)
    stored_source = decode(client.get(body["inputs"]["source"]["url"]).content)
    y = (1138 - 427) // 2
    assert np.array_equal(out[y : y + 427, :, :3], stored_source[..., :3])
    assert out[..., 3].min() == 255 if out.shape[2] == 4 else True
    assert out[:y].std() > 1, "the new area is filled, not left blank"


def test_json_body_with_base64_and_inline_result(client: httpx.Client) -> None:
    payload = {
        "image": "data:image/png;base64," + base64.b64encode(fixture_bytes("coffee.png")).decode(),
        "mask": base64.b64encode(fixture_bytes("coffee_background_mask.png")).decode(),
        "prompt": "erase the wooden table",
        "output_format": "webp",
        "size": "300x200",
        "include_base64": True,
        "metadata": {"job": "42"},
    }
    r = client.post("/v1/edits", json=payload, headers={"X-Request-ID": "req-abc.123"})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "req-abc.123"
    body = r.json()
    image = body["images"][0]
    assert (image["format"], image["width"], image["height"]) == ("webp", 300, 200)
    inline = base64.b64decode(image["b64_json"])
    assert inline == client.get(image["url"]).content
    assert Image.open(io.BytesIO(inline)).format == "WEBP"
    assert body["metadata"] == {"job": "42"}


def test_edit_record_is_stored_and_fetchable(client: httpx.Client) -> None:
    r = _edit(
        client,
        [
            ("image", ("c.png", fixture_bytes("coffee.png"))),
            ("mask", ("m.png", fixture_bytes("coffee_background_mask.png"))),
        ],
        prompt="remove the table",
    )
    record = client.get(f"/v1/edits/{r.json()['id']}").json()
    assert record["status"] == "succeeded"
    assert record["settings"]["prompt"] == "remove the table"
    assert record["inputs"]["source"]["sha256"] == r.json()["inputs"]["source"]["sha256"]


def test_request_id_generated_when_missing_or_unsafe(client: httpx.Client) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32


def test_service_basics(client: httpx.Client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["providers"] == ["local"]
    schema = client.get("/docs/openapi.json").json()
    body = schema["paths"]["/v1/edits"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert "protect" in body["application/json"]["schema"]["properties"]
    assert "EditResponse" in str(schema["paths"]["/v1/edits"]["post"]["responses"])
    assert client.get("/docs/").status_code == 200
    assert "only_mask" in client.get("/v1/chips").json()
