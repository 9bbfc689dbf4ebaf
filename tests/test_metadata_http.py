"""Over real HTTP: canary metadata in any upload is in neither the store nor any provider's request.

Each input role (source, reference, mask, a session's version 0) is sent with canaries at every legal
position of its container at once, plus a second image and loose bytes after the end, to each provider
that takes that role. The data dir's files are searched for the canary, and so is every request body
the emulator received (its test-only recording), base64 payloads decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.canaries import base_images, decoded, new_canary, plant_everywhere
from tests.conftest import cloud_settings, png_bytes

PROVIDERS = ["local", "openai-images", "openai-responses", "gemini"]
BASES = base_images()
H, W = decoded(BASES["png"]).shape[:2]  # type: ignore[union-attr]


def _mask() -> bytes:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[H // 3 : H // 2, W // 3 : W // 2, 3] = 0  # alpha 0: the region to edit
    return png_bytes(rgba)


MASK = _mask()


@pytest.fixture(scope="module")
def stack(make_server: Callable[..., str], emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    data_dir = tmp_path_factory.mktemp("canary-store")
    url = make_server(data_dir=data_dir, **cloud_settings(emulator))
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client, data_dir


@pytest.fixture()
def received(emulator: str) -> Iterator[Callable[[], list[bytes]]]:
    """Everything the emulated providers were sent during the test: raw bodies and the images inside them."""
    httpx.put(f"{emulator}/_emulator/config", json={"record_bodies": True}).raise_for_status()

    def read() -> list[bytes]:
        bodies = [base64.b64decode(r["body_b64"]) for r in httpx.get(f"{emulator}/_emulator/received").json()]
        return [*bodies, *(blob for body in bodies for blob in _embedded(body))]

    yield read
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def _embedded(body: bytes) -> Iterator[bytes]:
    """Base64 payloads inside a JSON body (data URLs, Gemini inline data), decoded."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack += node.values()
        elif isinstance(node, list):
            stack += node
        elif isinstance(node, str) and len(node) > 64:
            text = node.partition(",")[2] if node.startswith("data:") else node
            try:
                yield base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                continue


def _stored(data_dir: Path) -> Iterator[tuple[Path, bytes]]:
    for path in data_dir.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def _edit(client: httpx.Client, provider: str, files: list[tuple[str, tuple[str, bytes]]]) -> httpx.Response:
    return client.post("/v1/edits", files=files, data={"prompt": "remove the marked object", "provider": provider})


def _send(client: httpx.Client, role: str, provider: str, upload: bytes, base: bytes) -> httpx.Response:
    source = ("image", ("photo", BASES["png"]))
    if role == "source":
        return _edit(client, provider, [("image", ("photo", upload)), ("mask", ("m.png", MASK))])
    if role == "reference":
        return _edit(client, provider, [source, ("mask", ("m.png", MASK)), ("reference", ("ref", upload))])
    if role == "mask":
        return _edit(client, provider, [source, ("mask", ("m.png", upload))])
    created = client.post("/v1/sessions", files={"image": ("photo", upload)})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    version0 = client.get(f"/v1/sessions/{sid}/versions/0/image")
    assert np.array_equal(decoded(version0.content), decoded(base)), "the stored source keeps its pixels"
    return client.post(
        f"/v1/sessions/{sid}/edits",
        files={"mask": ("m.png", MASK)},
        data={"prompt": "remove the marked object", "provider": provider},
    )


CASES = [
    (role, provider, name)
    for role in ("source", "reference", "session")
    for provider in PROVIDERS
    if not (role == "reference" and provider == "local")  # local takes no references
    for name in sorted(BASES)
] + [("mask", provider, "png") for provider in PROVIDERS]


@pytest.mark.parametrize(("role", "provider", "name"), CASES)
def test_no_canary_is_stored_or_sent(
    stack: tuple[httpx.Client, Path], received: Callable[[], list[bytes]], role: str, provider: str, name: str
) -> None:
    client, data_dir = stack
    canary = new_canary()
    base = MASK if role == "mask" else BASES[name]
    upload = plant_everywhere(name, base, canary)
    assert upload.count(canary) > 3
    r = _send(client, role, provider, upload, base)
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == provider
    sent = received()
    assert provider == "local" or sent, "the provider was called"
    assert not [i for i, body in enumerate(sent) if canary in body], f"{role} metadata sent to {provider}"
    assert not [p.name for p, data in _stored(data_dir) if canary in data], f"{role} metadata stored"
