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
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from PIL import Image

from providers.openai_models import accepted_tokens, image_models, needs, refusal
from tests.conftest import fixture_bytes, png_bytes, sent_to

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


# --- through editgate's drop-in -----------------------------------------------------------------


def test_a_newer_model_takes_its_parameters_through_the_drop_in(sdk: OpenAI, received: Callable) -> None:
    raw = sdk.images.with_raw_response.edit(
        model="gpt-image-2.5-sunburst", image=("c.png", COFFEE), markup=("m.png", MARKUP), prompt="a red kite",
        quality="xhigh", complexity="high", size="1024x688",
    )  # fmt: skip
    result = raw.parse()
    assert (raw.headers["x-editgate-provider"], raw.headers["x-editgate-model"]) == (
        "openai-images", "gpt-image-2.5-sunburst")  # fmt: skip
    assert result.quality == "xhigh", "the quality the provider rendered"
    [sent] = sent_to(received, "images")
    assert sent["model"] == b"gpt-image-2.5-sunburst" and sent["quality"] == b"xhigh" and sent["complexity"] == b"high"
    assert sent["markup"] == MARKUP, "the markup reached the provider as it was sent"


@pytest.mark.parametrize(
    ("model", "kwargs", "param", "code"),
    [
        ("gpt-image-2", {"markup": ("m.png", MARKUP)}, "markup", "unsupported_parameter"),
        ("gpt-image-2.6-flare", {"markup": ("m.png", MARKUP)}, "markup", "unsupported_parameter"),
        ("gpt-image-2", {"quality": "max"}, "quality", "invalid_value"),
        ("gpt-image-2", {"complexity": "low"}, "complexity", "unsupported_parameter"),
        ("gpt-image-2.5-flare", {"markup": ("m.png", MARKUP), "mask": ("k.png", MASK)}, "markup", "invalid_value"),
        ("gemini-3.1-flash-image", {"markup": ("m.png", MARKUP)}, "markup", "no_capable_provider"),
        ("editgate-auto", {"complexity": "extreme"}, "complexity", "invalid_value"),
        ("editgate-auto", {"frame_count": 4}, "frame_count", "invalid_value"),
        ("editgate-auto", {"extra_body": {"moderation": "low"}}, "moderation", "unknown_parameter"),
    ],
)
def test_what_the_chosen_model_does_not_take_is_refused_by_name(
    sdk: OpenAI, received: Callable, model: str, kwargs: dict, param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.edit(model=model, image=("c.png", COFFEE), prompt="a kite", **kwargs)
    assert (err.value.body["param"], err.value.body["code"]) == (param, code)  # type: ignore[index]
    if code == "unsupported_parameter" and param == "markup":
        assert "gpt-image-2.5-sunburst" in err.value.message, "the message says which models take it"
    assert sent_to(received, "images") == [] and sent_to(received, "gemini") == [], "no provider was called"


def test_markup_with_a_policy_alias_goes_to_a_model_generation_that_takes_it(sdk: OpenAI, received: Callable) -> None:
    raw = sdk.images.with_raw_response.edit(model="editgate-auto", image=("c.png", COFFEE),
                                            markup=("m.png", MARKUP), prompt="a red kite")  # fmt: skip
    assert raw.headers["x-editgate-route-rule"] == "newer-model-params"
    assert raw.headers["x-editgate-model"] == "gpt-image-2.5-sunburst"
    [sent] = sent_to(received, "images")
    assert sent["markup"] == MARKUP


@pytest.mark.parametrize("quality", ["low", "medium", "high"])
def test_quality_is_rendered_one_to_one_and_reported_as_rendered(sdk: OpenAI, received: Callable,
                                                                 quality: str) -> None:  # fmt: skip
    result = sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a kite", quality=quality)
    [sent] = sent_to(received, "images")
    assert sent["quality"] == quality.encode() and result.quality == quality


def test_auto_quality_reports_what_the_provider_rendered(sdk: OpenAI) -> None:
    assert (
        sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a kite", quality="auto").quality == "high"
    )
    gemini = sdk.images.edit(model="gemini-3.1-flash-image", image=("c.png", COFFEE), prompt="a kite", quality="low")
    assert gemini.quality is None, "Gemini renders no OpenAI quality: none is claimed"


def test_safety_identifier_is_per_tenant_by_default_and_the_callers_wins(sdk: OpenAI, received: Callable) -> None:
    default = sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a kite")
    assert default.safety_identifier and default.safety_identifier.startswith("editgate-tenant-")
    given = sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a kite", safety_identifier="u-7")
    assert given.safety_identifier == "u-7"
    by_user = sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a kite", user="legacy-9")
    assert by_user.safety_identifier == "legacy-9", "the API uses `user` when no identifier is sent"
    first, second, third = sent_to(received, "images")
    assert first["safety_identifier"].decode() == default.safety_identifier
    assert second["safety_identifier"] == b"u-7"
    assert "safety_identifier" not in third and third["user"] == b"legacy-9"


def test_moderation_and_output_compression_reach_the_provider(sdk: OpenAI, received: Callable) -> None:
    sdk.images.generate(model="gpt-image-2", prompt="a lighthouse", moderation="low", output_format="jpeg",
                        output_compression=55, size="1024x1024")  # fmt: skip
    [sent] = sent_to(received, "images")
    assert (sent["moderation"], sent["output_compression"], sent["output_format"]) == ("low", 55, "jpeg")


def test_a_responses_route_reports_mainline_tokens_apart(sdk: OpenAI, received: Callable) -> None:
    raw = sdk.images.with_raw_response.edit(model="gpt-5.4-mini", image=("c.png", COFFEE), prompt="a kite",
                                            quality="low", safety_identifier="u-1")  # fmt: skip
    body = json.loads(raw.content)
    assert raw.headers["x-editgate-provider"] == "openai-responses"
    [sent] = sent_to(received, "responses")
    assert sent["tools"][0]["quality"] == "low" and sent["safety_identifier"] == "u-1"
    assert body["quality"] == "low" and body["safety_identifier"] == "u-1"
    mainline = body["mainline_usage"]
    assert mainline["model"] == "gpt-5.4-mini" and mainline["input_tokens"] > 0 and mainline["output_tokens"] > 0
    usage = body["usage"]
    assert usage["output_tokens"] == usage["output_tokens_details"]["image_tokens"], "no mainline text tokens"
    assert body["data"][0]["revised_prompt"], "the Responses tool returned a revised prompt"
    images = sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a kite")
    assert images.data[0].revised_prompt is None, "the Images API returned none, so none is reported"


def test_the_estimate_prices_the_quality_that_is_sent() -> None:
    from dataclasses import replace

    from providers.pricing import UsageInputs, estimate_usd

    u = UsageInputs("a kite", ((1024, 1024),), 1024, 1024, "draft")  # draft maps to medium without a caller quality
    low = estimate_usd("openai-images", "gpt-image-2", {}, replace(u, openai_quality="low"))
    # by hand: 2 text tokens at $5/M, one 512-px tile (65 + 129 = 194) at $8/M, 200 low-quality tokens at $30/M
    assert low == round(2 * 5e-6 + 194 * 8e-6 + 200 * 30e-6, 6)
    medium = estimate_usd("openai-images", "gpt-image-2", {}, u)
    xhigh = estimate_usd("openai-images", "gpt-image-2.5-flare", {}, replace(u, openai_quality="xhigh"))
    assert low < medium < xhigh  # type: ignore[operator]


def test_a_policy_rule_routes_by_model_generation_end_to_end(make_server: Callable[..., str], emulator: str,
                                                             tmp_path: Path, received: Callable) -> None:  # fmt: skip
    from importlib import resources

    import yaml

    from tests.conftest import cloud_settings

    policy = yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())
    rule = {"name": "pro-on-2.6", "when": {"tier": "pro"}, "route": "openai-images/gpt-image-2.6-flare",
            "fallbacks": ["openai-images"]}  # fmt: skip
    policy["rules"].insert(0, rule)
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    url = make_server(policy_file=tmp_path / "policy.yaml", **cloud_settings(emulator))
    with OpenAI(base_url=f"{url}/v1", api_key="dev", max_retries=0) as client:
        raw = client.images.with_raw_response.edit(model="editgate-pro", image=("c.png", COFFEE), prompt="a kite",
                                                   complexity="low")  # fmt: skip
    assert (raw.headers["x-editgate-route-rule"], raw.headers["x-editgate-model"]) == (
        "pro-on-2.6", "gpt-image-2.6-flare")  # fmt: skip
    edit = httpx.get(f"{url}/v1/edits/{raw.headers['x-editgate-edit-id']}").json()
    assert edit["route"]["candidates"] == ["openai-images/gpt-image-2.6-flare"], "gpt-image-2 takes no complexity"
    assert [(a["provider"], a["model"]) for a in edit["route"]["attempts"]] == [
        ("openai-images", "gpt-image-2.6-flare")
    ]
    assert edit["cost"]["actual_usd"] > 0, "priced from the model's own entry"
    [sent] = sent_to(received, "images")
    assert (sent["model"], sent["complexity"]) == (b"gpt-image-2.6-flare", b"low")


def test_edits_refuse_moderation_as_the_images_edits_endpoint_does(sdk: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a kite", extra_body={"moderation": "low"})
    assert (err.value.body["param"], err.value.body["code"]) == ("moderation", "unknown_parameter")  # type: ignore[index]


def test_input_fidelity_reaches_only_a_model_that_takes_it(sdk: OpenAI, received: Callable) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.edit(model="gpt-image-2", image=("c.png", COFFEE), prompt="a kite", input_fidelity="high")
    assert err.value.body["param"] == "input_fidelity"  # type: ignore[index]
    raw = sdk.images.with_raw_response.edit(model="editgate-pro", image=("c.png", COFFEE), mask=("k.png", MASK),
                                            prompt="a kite", input_fidelity="high")  # fmt: skip
    assert raw.headers["x-editgate-model"] == "gpt-image-2"
    [sent] = sent_to(received, "images")
    assert "input_fidelity" not in sent, "gpt-image-2 takes none: OpenAI documents to omit it"


def test_emulator_responses_tool_refuses_what_its_image_model_does_not_take(direct: OpenAI) -> None:
    image = "data:image/png;base64," + base64.b64encode(COFFEE).decode()
    content = [{"type": "input_text", "text": "a kite"}, {"type": "input_image", "image_url": image}]
    user: Any = [{"role": "user", "content": content}]
    with pytest.raises(openai.BadRequestError) as err:
        tool: Any = {"type": "image_generation", "model": "gpt-image-2", "quality": "xhigh"}
        direct.responses.create(model="gpt-5.4-mini", input=user, tools=[tool])
    assert err.value.body["param"] == "tools[0].quality"  # type: ignore[index]
    ok = direct.responses.create(model="gpt-5.4-mini", input=user,
                                 tools=[{"type": "image_generation", "model": "gpt-image-2.5-flare", "quality": "xhigh",
                                         "complexity": "high"}])  # fmt: skip
    call = next(item for item in ok.output if item.type == "image_generation_call")
    assert call.quality == "xhigh" and call.result


def test_a_streamed_edit_on_a_newer_model_completes_with_the_rendered_quality(sdk: OpenAI) -> None:
    stream = sdk.images.edit(model="gpt-image-2.5-flare", image=("c.png", COFFEE), prompt="a kite", quality="max",
                             stream=True, partial_images=1)  # fmt: skip
    events = list(stream)
    assert [e.type for e in events][-1] == "image_edit.completed"
    assert events[-1].quality == "max" and events[-1].b64_json  # type: ignore[union-attr]


def test_a_route_naming_a_model_its_provider_does_not_serve_is_refused_at_load(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from router.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: t\ndefault_route: openai-images/gpt-image-9\nproviders: {openai-images: {model: gpt-image-2}}\n"
    )
    result = CliRunner().invoke(main, ["policy", "check", str(bad)])
    assert result.exit_code != 0 and "serves no model 'gpt-image-9'" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(bad.read_text().replace("gpt-image-9", "gpt-image-2.6-flare"))
    assert CliRunner().invoke(main, ["policy", "check", str(good)]).exit_code == 0


def test_a_retry_of_an_edit_with_markup_sends_it_again(sdk: OpenAI, cloud: httpx.Client, received: Callable,
                                                        emulator: str) -> None:  # fmt: skip
    def plan(**faults: float) -> None:  # a fault plan that keeps the emulator recording what it serves
        endpoints = {"images": {"faults": faults}} if faults else {}
        config = {"record_bodies": True, "endpoints": endpoints}
        httpx.put(f"{emulator}/_emulator/config", json=config).raise_for_status()

    plan(server_error=1.0)
    with pytest.raises(openai.InternalServerError) as err:
        sdk.images.edit(model="gpt-image-2.5-flare", image=("c.png", COFFEE), markup=("m.png", MARKUP), prompt="a kite")
    failed = cloud.get(f"/v1/edits/{err.value.body['edit_id']}").json()  # type: ignore[index]
    assert failed["inputs"]["markup"]["sha256"], "the markup is kept with the edit's other inputs"
    plan()
    retried = cloud.post(f"/v1/sessions/{failed['session_id']}/versions/{failed['version']}/retry")
    assert retried.status_code == 200, retried.text
    [sent] = sent_to(received, "images")  # the emulator records the calls it served: the retry
    assert sent["markup"] == MARKUP, "the retry sent the markup the edit was sent with"


def test_native_edits_reach_openai_with_the_tenants_safety_identifier(cloud: httpx.Client, received: Callable) -> None:
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    r = cloud.post("/v1/edits", files=files, data={"prompt": "a sandy beach", "provider": "openai-images"})
    assert r.status_code == 200, r.text
    [sent] = sent_to(received, "images")
    assert sent["safety_identifier"].decode().startswith("editgate-tenant-")
    assert r.json()["rendered"] == {"quality": "high", "safety_identifier": sent["safety_identifier"].decode()}
