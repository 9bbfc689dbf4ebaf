"""Each adapter through its real SDK, over real HTTP, against the emulator."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from providers import gemini_image, openai_common
from providers.base import EditJob, ImageBlob, ProviderResult
from providers.errors import AuthError, InvalidForProvider, RateLimited, Rejected, Unavailable
from providers.gemini_image import REGION_SENTENCE, GeminiImageProvider
from providers.openai_images import OpenAIImagesProvider
from providers.openai_responses import OpenAIResponsesProvider
from router.intake.masks import alpha_mask_png
from tests.conftest import decode, fixture_bytes

COFFEE = decode(fixture_bytes("coffee.png"))
EDIT = decode(fixture_bytes("coffee_background_mask.png"))[..., 3] < 128


def _blob(pixels: np.ndarray) -> ImageBlob:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return ImageBlob(buf.getvalue(), "image/png", pixels.shape[1], pixels.shape[0], pixels)


SOURCE = _blob(COFFEE)
MASK = ImageBlob(alpha_mask_png(EDIT), "image/png", 600, 400, EDIT)
REF = _blob(decode(fixture_bytes("chelsea.png")))


def _job(model: str, **kw: object) -> EditJob:
    args = {"prompt": "replace the table with sand", "model": model, "source": SOURCE, "mask": MASK,
            "out_w": 600, "out_h": 400, "timeout_s": 20.0}  # fmt: skip
    return EditJob(**{**args, **kw})  # type: ignore[arg-type]


def _images(url: str, key: str = "sk-test") -> OpenAIImagesProvider:
    return OpenAIImagesProvider(openai_common.make_client(key, f"{url}/v1"))


def _responses(url: str, key: str = "sk-test") -> OpenAIResponsesProvider:
    return OpenAIResponsesProvider(openai_common.make_client(key, f"{url}/v1"))


def _gemini(url: str, key: str = "g-test") -> GeminiImageProvider:
    return GeminiImageProvider(gemini_image.make_client(key, url))


ADAPTERS: dict[str, tuple[Callable[..., object], str, str]] = {
    "openai-images": (_images, "gpt-image-2", "images"),
    "openai-responses": (_responses, "gpt-5.4-mini", "responses"),
    "gemini": (_gemini, "gemini-3.1-flash-image", "gemini"),
}


def run(provider: object, job: EditJob) -> ProviderResult:
    return asyncio.run(provider.edit(job))  # type: ignore[attr-defined]


def test_openai_images_masked_edit_with_references(emulator: str) -> None:
    provider = _images(emulator)
    job = _job("gpt-image-2", references=(REF, REF), quality="draft")
    request = provider.build_request(job)
    assert request["size"] == "992x672" and request["quality"] == "medium"
    assert "input_fidelity" not in request and len(request["image"]) == 3  # type: ignore[arg-type]
    result = run(provider, job)
    out = decode(result.images[0].data)
    assert out.shape[:2] == (672, 992)
    assert result.emulated and result.request_id and result.request_id.startswith("req_")
    assert result.usage["input_image_tokens"] > 0 and result.usage["output_image_tokens"] > 0
    assert set(result.usage) == {
        "input_text_tokens",
        "input_image_tokens",
        "output_image_tokens",
        "output_text_tokens",
    }


def test_openai_images_quality_final_maps_to_high(emulator: str) -> None:
    assert _images(emulator).build_request(_job("gpt-image-2"))["quality"] == "high"


def test_gemini_masked_edit_sends_region_image_and_sentence(emulator: str) -> None:
    provider = _gemini(emulator)
    contents, config = provider.build_request(_job("gemini-3.1-flash-image", out_w=3000, out_h=2000))
    assert len(contents) == 1 and contents[0].role == "user"
    parts = contents[0].parts or []
    assert len([p for p in parts if p.inline_data]) == 2
    assert REGION_SENTENCE in (parts[-1].text or "")
    assert config.image_config.aspect_ratio == "3:2" and config.image_config.image_size == "4K"
    result = run(provider, _job("gemini-3.1-flash-image"))
    assert decode(result.images[0].data).shape[:2] == (832, 1248)  # 1K at 3:2
    assert result.emulated
    assert result.usage["output_image_tokens"] == 1120 and result.usage["input_image_tokens"] == 2 * 1120


def test_responses_three_round_chain(emulator: str) -> None:
    provider = _responses(emulator)

    async def chain() -> tuple[ProviderResult, ProviderResult, ProviderResult, dict]:
        first = await provider.edit(_job("gpt-5.4-mini"))
        second = await provider.edit(
            _job("gpt-5.4-mini", prompt="now make it warmer", mask=None, previous_response_id=first.chain_state)
        )
        third_job = _job("gpt-5.4-mini", prompt="add a shadow", mask=None, previous_response_id=second.chain_state)
        return first, second, await provider.edit(third_job), provider.build_request(third_job)

    first, second, third, request = asyncio.run(chain())
    assert request["previous_response_id"] == second.chain_state != first.chain_state
    assert all(part["type"] == "input_text" for part in request["input"][0]["content"]), "no re-upload"
    assert third.chain_state not in (first.chain_state, second.chain_state)
    r1 = decode(first.images[0].data)
    r2, r3 = (decode(r.images[0].data) for r in (second, third))
    h, w = r1.shape[:2]
    painted = cv2.resize(EDIT.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    painted[:, 100:] = False  # part of round one's edit, away from later rounds' central change
    source = cv2.resize(COFFEE, (w, h))

    def gap(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a[painted][:, :3].astype(int) - b[painted][:, :3].astype(int)).mean())

    assert gap(r2, r1) < 4 < gap(r2, source), "round two edits round one's output"
    assert gap(r3, r2) < 4
    assert third.usage["model_input_tokens"] > 0 and first.usage["output_image_tokens"] > 0


def test_responses_unknown_previous_id_is_invalid(emulator: str) -> None:
    with pytest.raises(InvalidForProvider) as err:
        run(_responses(emulator), _job("gpt-5.4-mini", previous_response_id="resp_nope"))
    assert "not found" in err.value.message and err.value.status == 400


def test_invalid_requests_keep_the_providers_message(emulator: str) -> None:
    with pytest.raises(InvalidForProvider) as err:
        run(_images(emulator), _job("gpt-image-9"))
    assert "model" in err.value.message
    with pytest.raises(InvalidForProvider) as err:
        run(_gemini(emulator), _job("gemini-3.1-flash-image-preview"))
    assert err.value.status == 404 and "retired" in err.value.message


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize(
    ("fault", "family"),
    [
        ("rate_limit", RateLimited),
        ("server_error", Unavailable),
        ("unavailable", Unavailable),
        ("hang", Unavailable),
        ("drop", Unavailable),
        ("malformed", Unavailable),
        ("safety", Rejected),
    ],
)
def test_each_fault_maps_to_its_error_family(emulator: str, faults: Callable[..., None], name: str,
                                             fault: str, family: type) -> None:  # fmt: skip
    make, model, endpoint = ADAPTERS[name]
    faults(endpoint, **{fault: 1.0}, hang_s=5.0)
    with pytest.raises(family) as err:
        run(make(emulator), _job(model, timeout_s=1.0))
    assert err.value.provider == name
    if fault == "rate_limit":
        assert err.value.retry_after == 1.0


@pytest.mark.parametrize("name", ADAPTERS)
def test_bad_key_is_auth_error(emulator: str, name: str) -> None:
    make, model, _ = ADAPTERS[name]
    with pytest.raises(AuthError):
        run(make(emulator, "invalid-key"), _job(model))


def test_faults_are_deterministic_by_seed(emulator: str) -> None:
    import httpx

    def outcomes() -> list[int]:
        plan = {"seed": 42, "endpoints": {"gemini": {"faults": {"unavailable": 0.5}}}}
        httpx.put(f"{emulator}/_emulator/config", json=plan).raise_for_status()
        url = f"{emulator}/v1beta/models/gemini-3.1-flash-image:generateContent"
        body = {"contents": [{"parts": [{"text": "hi"}]}]}
        return [httpx.post(url, json=body, headers={"x-goog-api-key": "k"}).status_code for _ in range(12)]

    try:
        first, second = outcomes(), outcomes()
        assert first == second and {200, 503} == set(first)
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_a_released_source_is_read_back_or_streamed_from_its_stored_file(
    emulator: str, name: str, tmp_path: Path
) -> None:
    """After storage the gateway drops a source's bytes; each adapter still sends exactly the stored file,
    and no stored file is left open after the call."""
    stored = tmp_path / "source.png"
    stored.write_bytes(SOURCE.data)
    source = ImageBlob(SOURCE.data, "image/png", SOURCE.width, SOURCE.height)
    source.release_to(stored)
    assert source.pixels is None and source.data == stored.read_bytes() and "path=" in repr(source)
    factory, model, _ = ADAPTERS[name]
    result = run(factory(emulator), _job(model, source=source))
    assert decode(result.images[0].data).ndim == 3
    open_files = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
    assert str(stored.resolve()) not in open_files


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize("mode", ["inpaint", "generate"])
def test_partial_images_are_relayed_then_the_final_with_its_usage(emulator: str, name: str, mode: str) -> None:
    make, model, _ = ADAPTERS[name]
    partials: list[tuple[int, bytes, str]] = []

    async def on_partial(index: int, data: bytes, mime: str) -> None:
        partials.append((index, data, mime))

    job = _job(model, mode=mode, mask=None if mode == "generate" else MASK, output_format="webp")
    plain = run(make(emulator), job)
    streamed = run(make(emulator), _job(model, mode=mode, mask=job.mask, output_format="webp", partial_images=2,
                                        on_partial=on_partial))  # fmt: skip
    if name == "gemini":  # no partials from gemini: only the final image
        assert partials == []
    else:
        assert [(i, m) for i, _, m in partials] == [(0, "image/webp"), (1, "image/webp")]
        assert all(decode(data).shape[:2] == decode(streamed.images[0].data).shape[:2] for _, data, _ in partials)
    # cost comes from the completed event; OpenAI bills each partial image 100 image output tokens
    billed = {**plain.usage, "output_image_tokens": plain.usage["output_image_tokens"] + 200 * (name != "gemini")}
    assert streamed.usage == billed and streamed.usage
    assert streamed.emulated and len(streamed.images) == 1


@pytest.mark.parametrize("name", ["openai-images", "openai-responses"])
def test_a_mid_stream_error_event_is_unavailable(emulator: str, faults: Callable[..., None], name: str) -> None:
    make, model, endpoint = ADAPTERS[name]
    faults(endpoint, mid_stream=1.0)
    seen: list[int] = []

    async def on_partial(index: int, data: bytes, mime: str) -> None:
        seen.append(index)

    with pytest.raises(Unavailable, match="mid-stream") as err:
        run(make(emulator), _job(model, partial_images=1, on_partial=on_partial))
    assert seen == [0] and err.value.provider == name and not err.value.ambiguous


def test_a_stored_input_is_sent_in_large_reads_and_arrives_whole(tmp_path: Path) -> None:
    """The SDK's multipart encoder streams a stored input in the reads :class:`LargeReads` gives it (1 MiB,
    not the encoder's 64 KiB) and the body is byte for byte the one the same bytes in memory make."""
    from httpx2._multipart import MultipartStream

    from providers.base import UPLOAD_CHUNK, LargeReads

    data = os.urandom(2 * UPLOAD_CHUNK + 12345)
    stored = tmp_path / "source.png"
    stored.write_bytes(data)
    with LargeReads(stored) as f:
        streamed = list(MultipartStream({}, {"image": ("a.png", f, "image/png")}, boundary=b"b").iter_chunks())
    in_memory = b"".join(MultipartStream({}, {"image": ("a.png", data, "image/png")}, boundary=b"b").iter_chunks())
    assert b"".join(streamed) == in_memory
    assert sorted(len(c) for c in streamed)[-3:] == [12345, UPLOAD_CHUNK, UPLOAD_CHUNK]
