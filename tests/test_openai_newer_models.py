"""The newer GPT Image models (gpt-image-2.5-*, gpt-image-2.6-*, chatgpt-image-latest) through the real SDK.

First against the emulator alone (it takes what each model takes and refuses the rest as the API does),
then through editgate's drop-in (editgate pointed at the emulator): the model's parameters are accepted and
forwarded, ``markup`` is forwarded or refused by name, the quality reported is the one rendered, and
``safety_identifier`` reaches the provider (per tenant by default) and is echoed.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from PIL import Image

from providers.openai_models import accepted_tokens, image_models, needs, refusal
from tests.conftest import fixture_bytes, png_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


def markup_for(image: bytes) -> bytes:
    """A transparent PNG of the image's size with one opaque stroke: the region the edit is guided to."""
    w, h = Image.open(io.BytesIO(image)).size
    overlay = np.zeros((h, w, 4), np.uint8)
    overlay[h // 3 : h // 2, w // 4 : w // 2] = (255, 0, 0, 255)
    return png_bytes(overlay)


MARKUP = markup_for(COFFEE)


@pytest.fixture()
def direct(emulator: str) -> Iterator[OpenAI]:
    """The SDK pointed straight at the emulator."""
    client = OpenAI(base_url=f"{emulator}/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


@pytest.fixture()
def sdk(cloud_server: str) -> Iterator[OpenAI]:
    """The SDK pointed at editgate's drop-in (editgate's cloud providers are the emulator)."""
    client = OpenAI(base_url=f"{cloud_server}/v1", api_key="any-key-in-dev-mode", max_retries=0)
    yield client
    client.close()


@pytest.fixture()
def received(emulator: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The request bodies the emulator received during the test (multipart parsed into fields)."""
    httpx.put(f"{emulator}/_emulator/config", json={"record_bodies": True}).raise_for_status()

    def read() -> list[dict[str, Any]]:
        out = []
        for item in httpx.get(f"{emulator}/_emulator/received").json():
            out.append({"endpoint": item["endpoint"], "body": base64.b64decode(item["body_b64"])})
        return out

    yield read
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def form_fields(body: bytes) -> dict[str, bytes]:
    """Name -> value of each multipart part (the last of a repeated name)."""
    boundary = body.split(b"\r\n", 1)[0]
    fields = {}
    for part in body.split(boundary)[1:-1]:
        head, _, value = part.partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields[name] = value.removesuffix(b"\r\n")
    return fields


# --- the catalog's facts ------------------------------------------------------------------------


def test_the_catalog_lists_every_gpt_image_model_the_sdk_lists() -> None:
    from typing import get_args

    from openai.types import ImageModel

    sdk_models = {m for m in get_args(ImageModel) if m.startswith(("gpt-image", "chatgpt-image"))}
    sdk_models -= {"gpt-image-1"}  # shut down on October 23, 2026 (the SDK says so)
    assert sdk_models == set(image_models())


def test_gated_parameters_follow_the_sdk_docs() -> None:
    assert {"quality=xhigh", "quality=max", "markup"} <= accepted_tokens("gpt-image-2.5-flare")
    assert "markup" not in accepted_tokens("gpt-image-2.6-sunburst")
    assert "quality=xhigh" not in accepted_tokens("gpt-image-2.6-sunburst")
    assert accepted_tokens("gpt-image-2") == frozenset()
    assert needs({"quality": "max", "markup": True, "output_format": "png"}) == ("markup", "quality=max")
    found = refusal("gpt-image-2", "edits", {"markup": True})
    assert found is not None and (found.param, found.code) == ("markup", "unsupported_parameter")
    assert refusal("gpt-image-2.5-sunburst", "edits", {"markup": True, "quality": "xhigh"}) is None
    found = refusal("gpt-image-2.5-sunburst", "generations", {"markup": True})
    assert found is not None and found.code == "unknown_parameter", "markup is an edits field"


# --- the emulator, as the API -------------------------------------------------------------------


def test_emulator_renders_xhigh_with_markup_on_2_5(direct: OpenAI) -> None:
    result = direct.images.edit(
        model="gpt-image-2.5-sunburst", image=("c.png", COFFEE), markup=("m.png", MARKUP), prompt="a red kite",
        quality="xhigh", complexity="high", safety_identifier="user-42",
    )  # fmt: skip
    assert result.quality == "xhigh" and result.safety_identifier == "user-42"
    assert Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))).format == "PNG"


@pytest.mark.parametrize(
    ("model", "kwargs", "param", "code"),
    [
        ("gpt-image-2", {"markup": ("m.png", MARKUP)}, "markup", "unsupported_parameter"),
        ("gpt-image-2.6-sunburst", {"markup": ("m.png", MARKUP)}, "markup", "unsupported_parameter"),
        ("gpt-image-2", {"quality": "xhigh"}, "quality", "invalid_value"),
        ("chatgpt-image-latest", {"output_format": "gif"}, "output_format", "invalid_value"),
        ("gpt-image-2", {"complexity": "low"}, "complexity", "unsupported_parameter"),
        ("gpt-image-2.5-flare", {"markup": ("m.png", MARKUP), "mask": ("k.png", MASK)}, "markup", "invalid_value"),
        ("gpt-image-2.5-flare", {"frame_count": 4}, "frame_count", "invalid_value"),
        ("gpt-image-2.5-flare", {"output_format": "gif", "frame_count": 40}, "frame_count", "integer_out_of_range"),
    ],
)
def test_emulator_refuses_what_a_model_does_not_take(direct: OpenAI, model: str, kwargs: dict, param: str,
                                                     code: str) -> None:  # fmt: skip
    with pytest.raises(openai.BadRequestError) as err:
        direct.images.edit(model=model, image=("c.png", COFFEE), prompt="a kite", **kwargs)
    assert (err.value.body["param"], err.value.body["code"]) == (param, code)  # type: ignore[index]


def test_emulator_makes_gif_and_svg_on_the_newer_models(direct: OpenAI) -> None:
    gif = direct.images.generate(model="gpt-image-2.6-flare", prompt="a kite", output_format="gif", frame_count=4,
                                 size="1024x1024")  # fmt: skip
    frames = Image.open(io.BytesIO(base64.b64decode(gif.data[0].b64_json)))
    assert frames.format == "GIF" and frames.n_frames == 4
    svg = direct.images.generate(model="gpt-image-2.5-sunburst", prompt="a kite", output_format="svg")
    assert base64.b64decode(svg.data[0].b64_json).startswith(b"<svg")
