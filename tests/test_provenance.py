"""C2PA content credentials through the gateway: kept on a pass-through, reported lost on a re-encode, and
re-signed by editgate (the provider's output as ingredient) when the operator configures a certificate.

The emulator signs every OpenAI image with a test certificate (providers/emulator/credentials.py), as
OpenAI signs its own; the files are read back with c2pa-python, independently of the gateway's report."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import c2pa
import httpx
import pybase64
import pytest
from PIL import Image

from providers.emulator.credentials import ISSUER, make_test_credentials
from tests.conftest import cloud_settings, fixture_bytes

COFFEE = fixture_bytes("coffee.png")  # 600x400
MASK = fixture_bytes("coffee_background_mask.png")
GPS_PHOTO = fixture_bytes("chelsea_gps_rotated.jpg")


def _edit(client: httpx.Client, image: bytes = COFFEE, mask: bytes | None = None, **fields: str) -> dict:
    files = [("image", ("photo", image))] + ([("mask", ("m.png", mask))] if mask else [])
    r = client.post("/v1/edits", files=files, data={"prompt": "replace the table with sand", **fields})
    assert r.status_code == 200, r.text
    return r.json()


def _file(client: httpx.Client, image: dict) -> bytes:
    return client.get(image["url"]).content


def _read(data: bytes, mime: str = "image/png") -> dict | None:
    reader = c2pa.Reader.try_create(mime, io.BytesIO(data))
    if reader is None:
        return None
    with reader:
        return json.loads(reader.json())


@pytest.mark.parametrize("preservation", ["true", "false"])
def test_c2pa_is_kept_on_a_pass_through(cloud: httpx.Client, preservation: str) -> None:
    body = _edit(cloud, provider="openai-images", size="1024x1024", preservation=preservation)
    image = body["images"][0]
    expected = {"c2pa": "kept", "issuer": ISSUER, "actions": ["c2pa.created"], "validation": "not_checked",
                "editgate_actions": [], "editgate_manifest": False}  # fmt: skip
    assert image["provenance"] == expected
    store = _read(_file(cloud, image))
    assert store is not None, "the delivered file still carries the provider's manifest"
    active = store["manifests"][store["active_manifest"]]
    assert active["signature_info"]["issuer"] == ISSUER and store["validation_state"] == "Valid"


def test_c2pa_is_reported_lost_on_a_resize(cloud: httpx.Client) -> None:
    image = _edit(cloud, provider="openai-images")["images"][0]  # 992x672 rendered, 600x400 asked ("keep")
    assert (image["width"], image["height"]) == (600, 400)
    prov = image["provenance"]
    assert prov["c2pa"] == "lost" and prov["issuer"] == ISSUER and "resized" in prov["editgate_actions"]
    assert prov["editgate_manifest"] is False
    assert _read(_file(cloud, image)) is None, "no stale manifest is left in re-encoded bytes"


def test_a_mask_lock_is_reported_as_composited(cloud: httpx.Client) -> None:
    body = _edit(cloud, mask=MASK, provider="openai-images", size="992x672", protect="only_mask")
    prov = body["images"][0]["provenance"]
    assert prov["c2pa"] == "lost" and "composited" in prov["editgate_actions"]


def test_a_result_without_credentials_is_absent(cloud: httpx.Client) -> None:
    body = _edit(cloud, provider="gemini")
    assert body["images"][0]["provenance"]["c2pa"] == "absent"


@pytest.fixture(scope="module")
def signing_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    creds = make_test_credentials("Operator test CA")
    folder = tmp_path_factory.mktemp("c2pa")
    (folder / "chain.pem").write_bytes(creds.chain_pem)
    (folder / "key.pem").write_bytes(creds.key_pem)
    return folder / "chain.pem", folder / "key.pem"


def test_editgate_signs_its_own_manifest_with_the_provider_output_as_ingredient(
    make_server: Callable[..., str], emulator: str, signing_files: tuple[Path, Path]
) -> None:
    cert, key = signing_files
    url = make_server(c2pa_cert=cert, c2pa_key=key, c2pa_verify=True, **cloud_settings(emulator))
    with httpx.Client(base_url=url, timeout=60) as client:
        image = _edit(client, image=GPS_PHOTO, provider="openai-images")["images"][0]
        data = _file(client, image)
        kept = _edit(client, provider="openai-images", size="1024x1024")["images"][0]["provenance"]
    assert kept["c2pa"] == "kept" and kept["validation"] == "Valid", "EDITGATE_C2PA_VERIFY checks the manifest"
    prov = image["provenance"]
    assert prov["c2pa"] == "lost" and prov["editgate_manifest"] is True and "resized" in prov["editgate_actions"]
    assert prov["validation"] == "Valid"
    store = _read(data)
    assert store is not None and store["validation_state"] == "Valid"
    active = store["manifests"][store["active_manifest"]]
    assert active["claim_generator_info"][0]["name"] == "editgate"
    actions = [a["action"] for s in active["assertions"] if s["label"].startswith("c2pa.actions")
               for a in s["data"]["actions"]]  # fmt: skip
    assert actions[0] == "c2pa.opened" and "c2pa.resized" in actions
    (ingredient,) = active["ingredients"]
    assert ingredient["relationship"] == "parentOf" and ingredient["title"] == "provider output"
    parent = store["manifests"][ingredient["active_manifest"]]
    assert parent["signature_info"]["issuer"] == ISSUER, "the provider's manifest travels as the ingredient"
    assert "thumbnail" not in active and "thumbnail" not in ingredient
    with Image.open(io.BytesIO(GPS_PHOTO)) as photo:
        exif = photo.getexif()
        secrets = [str(v) for v in (exif.get(0x010F), exif.get(0x0110)) if v]
    text = json.dumps(store)
    assert secrets and not any(s in text for s in secrets), "no camera metadata of the caller's photo"
    assert "GPS" not in text and "exif" not in text.lower()


def test_a_half_configured_certificate_fails_the_start(signing_files: tuple[Path, Path], tmp_path: Path) -> None:
    from router.app import create_app
    from router.settings import Settings

    with pytest.raises(ValueError, match="EDITGATE_C2PA_CERT and EDITGATE_C2PA_KEY"):
        create_app(Settings(data_dir=tmp_path, c2pa_cert=signing_files[0]))


def test_the_drop_in_delivers_the_provider_manifest_and_says_so(cloud: httpx.Client) -> None:
    import openai

    sdk = openai.OpenAI(base_url=str(cloud.base_url).rstrip("/") + "/v1", api_key="sk-anything", max_retries=0)
    raw = sdk.images.with_raw_response.edit(image=("c.png", COFFEE, "image/png"), prompt="add a cup",
                                            model="gpt-image-2", size="1024x1024")  # fmt: skip
    assert raw.headers["x-editgate-c2pa"] == "kept"
    store = _read(pybase64.b64decode(raw.parse().data[0].b64_json))
    assert store is not None and store["manifests"][store["active_manifest"]]["signature_info"]["issuer"] == ISSUER


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_truncated_or_corrupt_credentials_never_break_a_result(fmt: str) -> None:
    from providers.emulator.credentials import sign_b64
    from router.provenance import has_manifest_store, read_manifest

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buf, fmt.upper())
    signed = pybase64.b64decode(sign_b64(pybase64.b64encode(buf.getvalue()).decode(), fmt))
    assert has_manifest_store(signed) and not has_manifest_store(buf.getvalue())
    assert read_manifest(signed, f"image/{fmt}", verify=True).validation == "Valid"  # type: ignore[union-attr]
    for cut in range(0, len(signed), max(1, len(signed) // 40)):
        damaged = signed[:cut] + bytes(reversed(signed[cut : cut + 16])) + signed[cut + 16 :]
        for data in (signed[:cut], damaged):
            found = read_manifest(data, f"image/{fmt}", verify=True)  # never raises
            assert found is None or found.issuer == ISSUER or found.validation == "Invalid", "tampering shows"
