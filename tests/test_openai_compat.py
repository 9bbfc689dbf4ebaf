"""An unmodified OpenAI SDK client pointed at editgate: edits, generations, routing by `model`, errors."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from click.testing import CliRunner
from openai import OpenAI
from PIL import Image

from router.cli import main
from tests.conftest import fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
CHELSEA = fixture_bytes("chelsea.png")


def png(data: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def test_masked_edit_with_a_pinned_model(sdk: OpenAI) -> None:
    raw = sdk.images.with_raw_response.edit(
        model="gpt-image-2", image=("coffee.png", COFFEE), mask=("mask.png", MASK), prompt="a sandy beach",
        size="1024x688", quality="high", output_format="png",
    )  # fmt: skip
    result = raw.parse()
    assert raw.headers["x-editgate-provider"] == "openai-images"
    assert raw.headers["x-editgate-route-rule"] == "request.provider"
    assert float(raw.headers["x-editgate-cost-usd"]) > 0
    assert result.size == "1024x688" and result.output_format == "png" and result.quality == "high"
    assert png(result.data[0].b64_json).shape[:2] == (688, 1024)
    assert result.usage.output_tokens_details.image_tokens > 0 and result.usage.total_tokens > 0


def test_edit_with_two_images_routes_by_policy(sdk: OpenAI) -> None:
    raw = sdk.images.with_raw_response.edit(
        model="editgate-auto",
        image=[("coffee.png", COFFEE), ("chelsea.png", CHELSEA)],
        prompt="add the cat to the table",
    )
    assert raw.headers["x-editgate-route-rule"] == "standard-tier"
    assert raw.headers["x-editgate-provider"] == "gemini"
    edit = httpx.get(f"{str(sdk.base_url).removesuffix('/v1/')}/v1/edits/{raw.headers['x-editgate-edit-id']}").json()
    assert len(edit["inputs"]["references"]) == 1, "the second image became a reference"


@pytest.mark.parametrize(
    ("model", "extra", "rule", "provider"),
    [
        ("gemini-3.1-flash-image", {}, "request.provider", "gemini"),
        ("gpt-image-2", {}, "request.provider", "openai-images"),
        ("editgate-pro", {}, "pro-masked", "openai-images"),
        ("editgate-standard", {}, "standard-tier", "gemini"),
        ("editgate-auto", {"tier": "pro"}, "pro-masked", "openai-images"),
    ],
)
def test_model_names_and_aliases_route(sdk: OpenAI, model: str, extra: dict, rule: str, provider: str) -> None:
    raw = sdk.images.with_raw_response.edit(model=model, image=("c.png", COFFEE), mask=("m.png", MASK),
                                            prompt="a sandy beach", extra_body=extra)  # fmt: skip
    assert (raw.headers["x-editgate-route-rule"], raw.headers["x-editgate-provider"]) == (rule, provider)


def test_extra_body_carries_editgate_fields(sdk: OpenAI) -> None:
    raw = sdk.images.with_raw_response.edit(
        model="gpt-image-2", image=("c.png", COFFEE), mask=("m.png", MASK), prompt="a sandy beach",
        extra_body={"protect": "only_mask,label"},
    )  # fmt: skip
    out = png(raw.parse().data[0].b64_json)
    keep = np.asarray(Image.open(io.BytesIO(MASK)))[..., 3] == 255
    source = np.asarray(Image.open(io.BytesIO(COFFEE)))
    assert out.shape[:2] == source.shape[:2]
    assert np.array_equal(out[keep][:, :3], source[keep]), "only_mask locked everything outside the mask"


def test_generation(sdk: OpenAI) -> None:
    raw = sdk.images.with_raw_response.generate(
        model="gpt-image-2", prompt="a lighthouse at dusk", size="1024x1024", n=2
    )
    result = raw.parse()
    assert len(result.data) == 2 and result.size == "1024x1024"
    assert png(result.data[0].b64_json).shape[:2] == (1024, 1024)
    routed = sdk.images.with_raw_response.generate(model="editgate-auto", prompt="a lighthouse at dusk")
    assert routed.headers["x-editgate-provider"] == "gemini"
    url = sdk.images.generate(model="editgate-auto", prompt="a lighthouse", response_format="url")
    assert url.data[0].url and httpx.get(url.data[0].url).status_code == 200


def test_local_cannot_generate(sdk: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.generate(model="opencv-inpaint", prompt="a lighthouse")
    assert "generation" in err.value.message


@pytest.mark.parametrize(
    ("kwargs", "exception", "code"),
    [
        ({"model": "dall-e-9"}, openai.BadRequestError, "invalid_value"),
        ({"model": "gpt-image-2", "quality": "ultra"}, openai.BadRequestError, "invalid_value"),
        ({"model": "gpt-image-2", "extra_body": {"protect": "halo"}}, openai.BadRequestError, "unknown_protect_chip"),
        ({"model": "gpt-image-2", "extra_body": {"session_id": "ses_" + "0" * 32}}, openai.NotFoundError, "not_found"),
    ],
)
def test_errors_raise_the_matching_sdk_exception(sdk: OpenAI, kwargs: dict, exception: type, code: str) -> None:
    with pytest.raises(exception) as err:
        sdk.images.edit(image=("c.png", COFFEE), prompt="x", **kwargs)
    assert err.value.body["code"] == code and err.value.body["type"] == "invalid_request_error"


def test_bad_image_is_a_bad_request(sdk: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.edit(model="gpt-image-2", image=("c.png", b"GIF89a not a png"), prompt="x")
    assert err.value.body["code"] == "unsupported_image_type" and err.value.body["param"] == "image"


def test_provider_failures_raise_rate_limit_and_server_errors(sdk: OpenAI, faults: Callable[..., None]) -> None:
    faults("images", rate_limit=1.0, retry_after_s=0.1)
    with pytest.raises(openai.RateLimitError):
        sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a sandy beach")
    faults("images", server_error=1.0)
    with pytest.raises(openai.InternalServerError):
        sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a sandy beach")


def test_editgate_key_is_the_sdk_key(make_server: Callable[..., str], tmp_path: Path) -> None:
    url = make_server(data_dir=tmp_path)
    key = (
        CliRunner().invoke(main, ["keys", "create", "--tenant", "sdk", "--data-dir", str(tmp_path)]).output.split()[-1]
    )
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).images.edit(
            model="opencv-inpaint", image=("c.png", COFFEE), prompt="remove the table"
        )
    good = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0).images.edit(
        model="opencv-inpaint", image=("c.png", COFFEE), mask=("m.png", MASK), prompt="remove the table"
    )
    assert good.data[0].b64_json


def test_plain_curl_form(cloud_server: str) -> None:
    """The README's curl -F example: OpenAI's documented multipart form, image[] and all."""
    files = [("image[]", ("coffee.png", COFFEE, "image/png")), ("mask", ("mask.png", MASK, "image/png"))]
    r = httpx.post(f"{cloud_server}/v1/images/edits", files=files, timeout=60,
                   data={"model": "gpt-image-2", "prompt": "a sandy beach", "size": "1024x688"},
                   headers={"Authorization": "Bearer dev"})  # fmt: skip
    assert r.status_code == 200 and r.json()["data"][0]["b64_json"]


def test_session_rounds_through_the_sdk(sdk: OpenAI, cloud: httpx.Client) -> None:
    session = cloud.post("/v1/sessions", files={"image": ("c.png", COFFEE)}).json()
    for round_number in (1, 2):
        raw = sdk.images.with_raw_response.edit(
            model="editgate-auto", image=("ignored.png", COFFEE), prompt=f"round {round_number}: warmer light",
            extra_body={"session_id": session["id"]},
        )  # fmt: skip
        assert raw.parse().data[0].b64_json
    tree = cloud.get(f"/v1/sessions/{session['id']}").json()
    assert [(v["number"], v["parent"]) for v in tree["versions"]] == [(0, None), (1, 0), (2, 1)]
