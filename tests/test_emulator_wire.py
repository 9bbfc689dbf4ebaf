"""The emulators answer in the SDKs' own types, validate like the real APIs, and say they are emulators."""

from __future__ import annotations

import base64

import httpx
import pytest
from google.genai import types as gt
from openai.types import ImagesResponse
from openai.types.responses import Response
from pydantic import BaseModel

from tests.conftest import fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
AUTH = {"Authorization": "Bearer sk-test"}


def _strict(model: type[BaseModel], data: dict) -> BaseModel:
    """Full pydantic validation (not the SDK's lenient parse): any missing required field fails."""
    return model.model_validate(data)


def _edit(url: str, **fields: str) -> httpx.Response:
    files = [("image[]", ("a.png", COFFEE, "image/png")), ("mask", ("m.png", MASK, "image/png"))]
    data = {"model": "gpt-image-2", "prompt": "sand", "size": "992x672", **fields}
    return httpx.post(f"{url}/v1/images/edits", files=files, data=data, headers=AUTH, timeout=30)


def test_images_edit_response_is_an_sdk_images_response(emulator: str) -> None:
    r = _edit(emulator, quality="low", output_format="webp", output_compression="70", n="2")
    assert r.status_code == 200 and "test double" in r.headers["x-emulator"]
    body = _strict(ImagesResponse, r.json())
    assert len(body.data) == 2 and body.output_format == "webp" and body.size == "992x672"
    assert body.usage.output_tokens == body.usage.output_tokens_details.image_tokens > 0
    assert base64.b64decode(body.data[0].b64_json)[:4] == b"RIFF"


def test_responses_payload_is_an_sdk_response(emulator: str) -> None:
    image = "data:image/png;base64," + base64.b64encode(COFFEE).decode()
    payload = {
        "model": "gpt-5.4-mini",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "sand"},
                    {"type": "input_image", "image_url": image},
                ],
            }
        ],
        "tools": [{"type": "image_generation", "size": "992x672"}],
    }
    r = httpx.post(f"{emulator}/v1/responses", json=payload, headers=AUTH, timeout=30)
    body = _strict(Response, r.json())
    assert body.output[0].type == "image_generation_call" and body.output[0].result
    assert body.tool_usage and body.tool_usage.image_gen.output_tokens > 0


def test_gemini_payload_is_an_sdk_response(emulator: str) -> None:
    payload = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(COFFEE).decode()}},
                    {"text": "sand"},
                ],
            }
        ],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
        },
    }
    r = httpx.post(f"{emulator}/v1beta/models/gemini-3.1-flash-image:generateContent", json=payload,
                   headers={"x-goog-api-key": "k"}, timeout=30)  # fmt: skip
    assert r.status_code == 200 and "x-emulator" in r.headers
    body = gt.GenerateContentResponse.model_validate(r.json())
    assert body.candidates[0].finish_reason == gt.FinishReason.STOP
    assert body.usage_metadata.candidates_tokens_details[0].token_count == 1680


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"size": "1000x1000"}, "size", "invalid_value"),
        ({"size": "4000x1000"}, "size", "invalid_value"),
        ({"model": "gpt-image-1.5", "size": "992x672"}, "size", "invalid_value"),
        ({"input_fidelity": "high"}, "input_fidelity", "unsupported_parameter"),
        ({"model": "gpt-image-1-mini", "size": "1024x1024", "input_fidelity": "high"}, "input_fidelity",
         "unsupported_value"),
        ({"n": "11"}, "n", "integer_above_max_value"),
        ({"n": "0"}, "n", "integer_below_min_value"),
        ({"partial_images": "4"}, "partial_images", "integer_above_max_value"),
        ({"partial_images": "-1"}, "partial_images", "integer_below_min_value"),
        ({"quality": "ultra"}, "quality", "invalid_value"),
        ({"output_compression": "50"}, "output_compression", None),
        ({"background": "transparent", "output_format": "jpeg"}, "background", "invalid_value"),
        ({"strength": "1"}, "strength", "unknown_parameter"),
        ({"response_format": "b64_json"}, "response_format", "unknown_parameter"),
        ({"moderation": "low"}, "moderation", "unknown_parameter"),
    ],
)  # fmt: skip
def test_images_edit_validation_matches_the_real_api(emulator: str, fields: dict, param: str, code: str | None) -> None:
    r = _edit(emulator, **fields)
    assert r.status_code == 400 and "x-emulator" in r.headers
    err = r.json()["error"]
    assert err["param"] == param and err["code"] == code and err["type"] == "invalid_request_error"
    if code == "unknown_parameter":  # the real API's wording (was "Unrecognized request argument supplied")
        assert err["message"] == f"Unknown parameter: '{param}'."
    assert r.headers["x-request-id"].startswith("req_")


def test_a_request_without_a_model_gets_the_documented_default(emulator: str) -> None:
    """Edits default to gpt-image-1.5 (so a gpt-image-2-only size is refused); generations must name one."""
    files = [("image", ("a.png", COFFEE, "image/png"))]
    assert httpx.post(f"{emulator}/v1/images/edits", files=files, data={"prompt": "x"}, headers=AUTH,
                      timeout=30).status_code == 200  # fmt: skip
    r = httpx.post(f"{emulator}/v1/images/edits", files=files, data={"prompt": "x", "size": "992x672"}, headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["param"] == "size"
    r = httpx.post(f"{emulator}/v1/images/generations", json={"prompt": "x"}, headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_required_parameter"
    assert r.json()["error"]["param"] == "model"


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"extra_body": {"strength": "1"}}, "strength", "unknown_parameter"),
        ({"response_format": "b64_json"}, "response_format", "unknown_parameter"),
        ({"background": "transparent", "output_format": "jpeg"}, "background", "invalid_value"),
        ({"input_fidelity": "high"}, "input_fidelity", "unsupported_parameter"),
        ({"model": "gpt-image-1.5", "partial_images": 4, "stream": True}, "partial_images", "integer_above_max_value"),
    ],
)
def test_the_sdk_raises_the_real_apis_refusals(emulator: str, kwargs: dict, param: str, code: str) -> None:
    """Through the real SDK: each refusal is a ``BadRequestError`` with the provider's code and param."""
    import openai

    client = openai.OpenAI(api_key="sk-test", base_url=f"{emulator}/v1", max_retries=0)
    args = {"model": "gpt-image-2", "prompt": "sand", "image": ("a.png", COFFEE, "image/png"), **kwargs}
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(**args)
    assert err.value.code == code and err.value.param == param and err.value.request_id


def test_mask_size_mismatch_is_the_providers_400(emulator: str) -> None:
    files = [
        ("image", ("a.png", COFFEE, "image/png")),
        ("mask", ("m.png", fixture_bytes("astronaut_helmet_mask.png"), "image/png")),
    ]
    r = httpx.post(
        f"{emulator}/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "x"}, headers=AUTH
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image_dimensions"


TEXT_ONLY = {"contents": [{"parts": [{"text": "x"}]}]}
GEMINI = "gemini-3.1-flash-image:generateContent"


@pytest.mark.parametrize(
    ("path", "body", "status", "state"),
    [
        ("gemini-3.1-flash-image-preview:generateContent", TEXT_ONLY, 404, "NOT_FOUND"),
        (GEMINI, {}, 400, "INVALID_ARGUMENT"),
        (
            GEMINI,
            {**TEXT_ONLY, "generationConfig": {"imageConfig": {"aspectRatio": "5:7"}}},
            400,
            "INVALID_ARGUMENT",
        ),
        (
            GEMINI,
            {**TEXT_ONLY, "generationConfig": {"imageConfig": {"imageSize": "8K"}}},
            400,
            "INVALID_ARGUMENT",
        ),
    ],
)
def test_gemini_validation_matches_the_real_api(emulator: str, path: str, body: dict, status: int, state: str) -> None:
    r = httpx.post(f"{emulator}/v1beta/models/{path}", json=body, headers={"x-goog-api-key": "k"})
    assert r.status_code == status and r.json()["error"]["status"] == state


def test_every_response_is_marked_even_errors_and_404s(emulator: str) -> None:
    for r in (httpx.get(f"{emulator}/nowhere"), httpx.post(f"{emulator}/v1/responses", json={})):
        assert "test double" in r.headers["x-emulator"]
