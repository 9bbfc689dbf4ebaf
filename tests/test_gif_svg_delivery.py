"""gif and svg output, delivered as the model made them (the newer GPT Image models' formats).

An animation or a vector document cannot be resized, mask-locked or scored as a raster result is: editgate
checks that the bytes are what was asked for (a GIF; a well-formed SVG document with no DTD), stores them,
serves them with their own type (an SVG under a sandboxing CSP, so a script in it cannot run on editgate's
origin), reports the SVG author's tokens and prices them, and says in the record what it did not do.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import OpenAI
from PIL import Image

from providers.base import ResultImage
from router.normalize import as_made
from tests.conftest import fixture_bytes, sent_to

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


def record(cloud: httpx.Client, edit_id: str) -> dict[str, Any]:
    r = cloud.get(f"/v1/edits/{edit_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_gif_edit_is_delivered_as_the_model_made_it(sdk: OpenAI, cloud: httpx.Client, received: Callable) -> None:
    raw = sdk.images.with_raw_response.edit(
        model="gpt-image-2.5-flare", image=("c.png", COFFEE), prompt="the steam rises", output_format="gif",
        frame_count=4, frame_duration_ms=120, size="1024x1024",
    )  # fmt: skip
    result = raw.parse()
    assert result.output_format == "gif" and result.size == "1024x1024"
    gif = base64.b64decode(result.data[0].b64_json)
    with Image.open(io.BytesIO(gif)) as frames:
        assert (frames.format, frames.n_frames, frames.size) == ("GIF", 4, (1024, 1024))
        assert frames.info["duration"] == 120
    [sent] = sent_to(received, "images")
    assert (sent["output_format"], sent["frame_count"], sent["frame_duration_ms"]) == (b"gif", b"4", b"120")

    edit = record(cloud, raw.headers["x-editgate-edit-id"])
    [image] = edit["images"]
    assert (image["format"], image["width"], image["height"]) == ("gif", 1024, 1024)
    assert edit["preservation"] is None and any("as the model made it" in w for w in edit["warnings"])
    served = cloud.get(f"/v1/files/{image['id']}")
    assert served.headers["content-type"] == "image/gif" and served.content == gif


def test_an_svg_edit_is_served_sandboxed_with_its_authors_tokens_priced(sdk: OpenAI, cloud: httpx.Client,
                                                                        received: Callable) -> None:  # fmt: skip
    raw = sdk.images.with_raw_response.edit(
        model="gpt-image-2.6-sunburst", image=("c.png", COFFEE), prompt="a flat poster of this", output_format="svg",
        svg={"reasoning": {"effort": "low"}},
    )  # fmt: skip
    result = raw.parse()
    svg = base64.b64decode(result.data[0].b64_json)
    assert result.output_format == "svg" and svg.startswith(b"<svg")
    assert result.svg_usage is not None and result.svg_usage.output_tokens > 0, "the SVG author's tokens"
    [sent] = sent_to(received, "images")
    assert sent["svg[reasoning][effort]"] == b"low"

    edit = record(cloud, raw.headers["x-editgate-edit-id"])
    [image] = edit["images"]
    assert image["format"] == "svg" and f"{image['width']}x{image['height']}" == result.size
    kinds = {line["kind"]: line for line in edit["cost"]["breakdown"]}
    assert kinds["svg_output_tokens"]["model"] == result.svg_usage.model
    assert kinds["svg_output_tokens"]["tokens"] == result.svg_usage.output_tokens
    assert edit["cost"]["actual_usd"] is not None, "every token is priced"
    served = cloud.get(f"/v1/files/{image['id']}")
    assert served.headers["content-type"] == "image/svg+xml" and served.content == svg
    csp = served.headers["content-security-policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp, "a script in an SVG cannot run on editgate's origin"
    assert served.headers["x-content-type-options"] == "nosniff"


def test_a_policy_alias_sends_gif_to_a_model_that_makes_it(sdk: OpenAI) -> None:
    raw = sdk.images.with_raw_response.edit(model="editgate-auto", image=("c.png", COFFEE), prompt="steam rises",
                                            output_format="gif", frame_count=3)  # fmt: skip
    # the default policy's newer-model-params rule: the configured gpt-image-2 does not make gif
    assert (raw.headers["x-editgate-provider"], raw.headers["x-editgate-model"]) == (
        "openai-images", "gpt-image-2.5-sunburst")  # fmt: skip
    with Image.open(io.BytesIO(base64.b64decode(raw.parse().data[0].b64_json))) as frames:
        assert frames.n_frames == 3


def test_the_native_api_delivers_gif_from_a_model_that_makes_it(cloud: httpx.Client) -> None:
    r = cloud.post("/v1/edits", files=[("image", ("c.png", COFFEE))], data={
        "prompt": "the steam rises", "provider": "openai-images", "model": "gpt-image-2.6-flare",
        "output_format": "gif", "include_base64": "true",
        "provider_params": json.dumps({"frame_count": 5})})  # fmt: skip
    assert r.status_code == 200, r.text
    [image] = r.json()["images"]
    assert image["format"] == "gif"
    with Image.open(io.BytesIO(base64.b64decode(image["b64_json"]))) as frames:
        assert frames.format == "GIF" and frames.n_frames == 5, "provider_params travel as JSON in a form field"


@pytest.mark.parametrize(
    ("data", "files", "param"),
    [
        ({"output_format": "gif"}, [("mask", ("m.png", MASK))], "mask"),  # the API takes no mask with gif
        ({"output_format": "svg", "n": "2"}, [], "n"),
        ({"output_format": "gif", "partial_images": "2"}, [], "partial_images"),
        ({"output_format": "svg", "protect": "only_mask"}, [("mask", ("m.png", MASK))], "protect"),
        ({"output_format": "gif", "model": "gpt-image-2"}, [], "output_format"),
    ],
)
def test_what_gif_or_svg_cannot_do_is_refused_by_name(cloud: httpx.Client, data: dict[str, str],
                                                     files: list[Any], param: str) -> None:  # fmt: skip
    fields = {"prompt": "steam", "provider": "openai-images", "model": "gpt-image-2.5-flare", **data}
    r = cloud.post("/v1/edits", files=[("image", ("c.png", COFFEE)), *files], data=fields)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["param"] == param, r.text


def test_gif_through_a_provider_that_cannot_make_it_is_refused(sdk: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.edit(model="gemini-3.1-flash-image", image=("c.png", COFFEE), prompt="steam", output_format="gif")
    assert err.value.body["param"] == "output_format"  # type: ignore[index]


# --- what the provider's bytes must be (pure) ---------------------------------------------------------


def _svg(body: str) -> ResultImage:
    return ResultImage(data=body.encode(), mime="image/svg+xml")


def test_an_svg_is_sized_from_its_attributes_or_its_view_box() -> None:
    sized = as_made(_svg('<svg xmlns="http://www.w3.org/2000/svg" width="640px" height="480"></svg>'), "svg")
    assert (sized.format, sized.width, sized.height) == ("svg", 640, 480)
    boxed = as_made(_svg('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1536 1024.4"><rect/></svg>'), "svg")
    assert (boxed.width, boxed.height) == (1536, 1024)


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1">&b;</svg>',  # entity expansion
        '<!DOCTYPE svg SYSTEM "file:///etc/passwd"><svg xmlns="http://www.w3.org/2000/svg"/>',  # an external DTD
        '<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',  # not an SVG document
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect>',  # cut off
        '<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>',  # no size at all
        '<svg xmlns="http://www.w3.org/2000/svg" width="99999999" height="1"/>',  # absurd size
    ],
)
def test_an_svg_that_is_not_a_plain_svg_document_is_refused(body: str) -> None:
    with pytest.raises(ValueError):
        as_made(_svg(body), "svg")


def test_bytes_that_are_not_the_format_asked_for_are_refused() -> None:
    with pytest.raises(ValueError):
        as_made(ResultImage(data=COFFEE, mime="image/gif"), "gif")  # a PNG labelled gif
    with pytest.raises(ValueError):
        as_made(ResultImage(data=b"GIF89a" + b"\x00" * 5, mime="image/gif"), "gif")  # a header, then nothing


def test_the_emulator_reports_svg_usage_as_the_sdk_types_it(emulator: str) -> None:
    with OpenAI(base_url=f"{emulator}/v1", api_key="sk-test", max_retries=0) as direct:
        raw = direct.images.with_raw_response.edit(model="gpt-image-2.5-sunburst", image=("c.png", COFFEE),
                                                   prompt="a poster", output_format="svg")  # fmt: skip
    body = json.loads(raw.content)
    usage = raw.parse().svg_usage
    assert usage is not None and set(body["svg_usage"]) == {"input_tokens", "model", "output_tokens",
                                                            "reasoning_tokens", "total_tokens"}  # fmt: skip
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_a_session_does_not_continue_from_a_gif_but_from_a_raster_version_it_names(cloud: httpx.Client) -> None:
    first = cloud.post("/v1/edits", files=[("image", ("c.png", COFFEE))], data={"prompt": "warmer light"})
    assert first.status_code == 200, first.text
    session = first.json()["session_id"]
    gif = cloud.post("/v1/edits", data={"prompt": "steam rises", "session_id": session, "provider": "openai-images",
                                        "model": "gpt-image-2.5-flare", "output_format": "gif"})  # fmt: skip
    assert gif.status_code == 200, gif.text
    after = cloud.post("/v1/edits", data={"prompt": "add a cup", "session_id": session})
    assert after.status_code == 422, after.text
    assert after.json()["error"]["code"] == "parent_not_usable" and "GIF" in after.json()["error"]["message"]
    named = cloud.post("/v1/edits", data={"prompt": "add a cup", "session_id": session,
                                          "parent_version": str(first.json()["version"])})  # fmt: skip
    assert named.status_code == 200, named.text


@pytest.mark.parametrize("fmt", ["gif", "svg"])
@pytest.mark.parametrize("provider", ["local", "gemini", "openai-responses"])
def test_gif_or_svg_from_a_provider_that_cannot_make_them_is_refused_by_name(cloud: httpx.Client, provider: str,
                                                                             fmt: str) -> None:  # fmt: skip
    r = cloud.post("/v1/edits", files=[("image", ("c.png", COFFEE))],
                   data={"prompt": "steam", "provider": provider, "output_format": fmt})  # fmt: skip
    assert r.status_code == 422, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("no_capable_provider", "output_format")


def test_an_svg_author_without_a_price_is_refused_before_anything_is_paid(sdk: OpenAI, cloud: httpx.Client) -> None:
    """Its tokens would make the whole edit's cost unknown, and an unknown cost passes budgets unseen."""
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.edit(model="gpt-image-2.5-flare", image=("c.png", COFFEE), prompt="a poster", output_format="svg",
                        svg={"model": "an-unpriced-author"})  # fmt: skip
    assert (err.value.body["code"], err.value.body["param"]) == ("unpriced_svg_author", "svg")  # type: ignore[index]
    assert "gpt-5.4-mini" in err.value.body["message"]  # type: ignore[index]
    native = cloud.post("/v1/edits", files=[("image", ("c.png", COFFEE))], data={
        "prompt": "a poster", "provider": "openai-images", "model": "gpt-image-2.5-flare", "output_format": "svg",
        "provider_params": json.dumps({"svg": {"model": "an-unpriced-author"}})})  # fmt: skip
    assert native.status_code == 422 and native.json()["error"]["code"] == "unpriced_svg_author", native.text


def test_reasoning_reported_outside_the_output_is_billed_too() -> None:
    from providers.openai_images import svg_tokens
    from providers.openai_wire import SvgUsage

    inside = SvgUsage(model="m", input_tokens=10, output_tokens=300, reasoning_tokens=200, total_tokens=310)
    assert svg_tokens(inside)["output_tokens"] == 300, "OpenAI's convention: the output counts the reasoning"
    outside = SvgUsage(model="m", input_tokens=10, output_tokens=100, reasoning_tokens=200, total_tokens=310)
    assert svg_tokens(outside)["output_tokens"] == 300


def test_the_heat_map_refuses_gif_and_svg_versions(cloud: httpx.Client) -> None:
    r = cloud.post(
        "/v1/edits",
        files=[("image", ("c.png", COFFEE))],
        data={
            "prompt": "a poster",
            "provider": "openai-images",
            "model": "gpt-image-2.6-flare",
            "output_format": "svg",
        },
    )
    assert r.status_code == 200, r.text
    compared = cloud.get(f"/v1/sessions/{r.json()['session_id']}/compare", params={"a": 0, "b": 1})
    assert compared.status_code == 422 and compared.json()["error"]["code"] == "not_comparable", compared.text


def _gif(frames: int = 3) -> bytes:
    out = io.BytesIO()
    images = [Image.new("RGB", (64, 48), (40 * i, 90, 200 - 40 * i)) for i in range(frames)]
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def test_a_gif_with_a_damaged_or_missing_frame_is_refused() -> None:
    whole = _gif()
    assert (as_made(ResultImage(data=whole, mime="image/gif"), "gif").width, 64) == (64, 64)
    for damaged in (whole[:-40], whole[:13] + b"\x00" * 32, whole[:20]):
        with pytest.raises(ValueError):
            as_made(ResultImage(data=damaged, mime="image/gif"), "gif")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_mutated_gif_is_delivered_or_refused_never_an_internal_error(data: st.DataObject) -> None:
    gif = bytearray(_gif())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(gif) - 1))
        gif[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(6, len(gif)))
    try:
        made = as_made(ResultImage(data=bytes(gif[:cut]), mime="image/gif"), "gif")
    except ValueError:
        return
    assert 0 < made.width <= 16384 and 0 < made.height <= 16384


@pytest.mark.parametrize("body", [
    '<svg xmlns="http://www.w3.org/2000/svg" width="' + "9" * 400 + '" height="1"/>',
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 inf 5"/>',
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1e400 5"/>',
    'Here is your image: <svg xmlns="http://www.w3.org/2000/svg" width="5" height="5"/>',
])  # fmt: skip
def test_an_svg_with_an_impossible_size_or_a_preamble_is_refused(body: str) -> None:
    with pytest.raises(ValueError):
        as_made(_svg(body), "svg")


def test_an_svg_opening_with_a_bom_or_a_comment_is_delivered_and_served_as_an_svg() -> None:
    from router.intake.sniff import sniff

    for head in ("\ufeff", "<!-- made by a model -->\n", "\ufeff<?xml version='1.0'?>\n<!-- a -->"):
        body = head + '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'
        made = as_made(_svg(body), "svg")
        assert made.format == "svg" and sniff(made.data[:1024]) == "svg/xml", "served as an SVG, under its policy"


def test_a_generation_in_svg_is_delivered_with_its_usage(sdk: OpenAI) -> None:
    result = sdk.images.generate(model="gpt-image-2.6-sunburst", prompt="a kite over a beach", output_format="svg",
                                 size="1024x1024")  # fmt: skip
    svg = base64.b64decode(result.data[0].b64_json)
    assert result.output_format == "svg" and result.size == "1024x1024" and svg.startswith(b"<svg")
    assert result.svg_usage is not None and result.svg_usage.model == "gpt-5.4-mini"


def test_a_compare_in_gif_runs_each_provider_on_a_model_that_makes_it(cloud: httpx.Client) -> None:
    named = cloud.post(
        "/v1/compare",
        params={"providers": "openai-images,local"},
        files=[("image", ("c.png", COFFEE))],
        data={"prompt": "steam rises", "output_format": "gif"},
    )
    assert named.status_code == 200, named.text
    by_provider = {r["provider"]: r for r in named.json()["results"]}
    assert by_provider["openai-images"]["status"] == "succeeded", by_provider["openai-images"]
    assert by_provider["openai-images"]["images"][0]["format"] == "gif"
    assert by_provider["local"]["error"]["code"] == "no_capable_provider"  # the CPU makes no animation
    chosen = cloud.post(
        "/v1/compare", files=[("image", ("c.png", COFFEE))], data={"prompt": "steam rises", "output_format": "gif"}
    )  # the policy's candidates
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["providers"] == ["openai-images"], "one arm per provider"
    [only] = chosen.json()["results"]
    assert only["status"] == "succeeded" and only["model"] == "gpt-image-2.5-sunburst"
