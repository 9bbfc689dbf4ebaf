"""The unmodified OpenAI SDK streaming through editgate's drop-in: partials as they come, then the normalized
final with its usage, as the SDK's own event types; a provider failure after the headers raises in the SDK."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable

import openai
import pytest
from openai import OpenAI
from openai.types import (
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
)
from PIL import Image
from pydantic import BaseModel

from tests.conftest import fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


def _strict(event: BaseModel) -> BaseModel:
    return type(event).model_validate(event.model_dump())


def _image(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_streamed_edit_yields_partials_then_the_normalized_final(sdk: OpenAI) -> None:
    stream = sdk.images.edit(model="gpt-image-2", image=("coffee.png", COFFEE), mask=("mask.png", MASK),
                             prompt="a sandy beach", size="1024x688", output_format="webp", stream=True,
                             partial_images=2)  # fmt: skip
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    edit_id = stream.response.headers["x-editgate-edit-id"]
    events = [_strict(e) for e in stream]
    assert [type(e) for e in events] == [ImageEditPartialImageEvent] * 2 + [ImageEditCompletedEvent]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]  # type: ignore[attr-defined]
    assert all(_image(e.b64_json).format == "WEBP" for e in events)  # type: ignore[attr-defined]
    final = events[-1]
    assert isinstance(final, ImageEditCompletedEvent)
    assert final.size == "1024x688" and _image(final.b64_json).size == (1024, 688)  # normalized to the request
    assert final.usage.output_tokens > 0 and final.usage.total_tokens > final.usage.output_tokens
    stored = sdk.with_options().get(f"/edits/{edit_id}", cast_to=object)  # the same edit, stored
    assert stored["status"] == "succeeded"  # type: ignore[index]


def test_streamed_generation(sdk: OpenAI) -> None:
    events = [_strict(e) for e in sdk.images.generate(model="gpt-image-2", prompt="a lighthouse", size="1024x1024",
                                                      stream=True, partial_images=1)]  # fmt: skip
    assert [type(e) for e in events] == [ImageGenPartialImageEvent, ImageGenCompletedEvent]
    assert events[-1].usage.output_tokens > 0  # type: ignore[attr-defined]


def test_no_partials_from_gemini_only_the_final(sdk: OpenAI) -> None:
    events = list(sdk.images.edit(model="gemini-3.1-flash-image", image=("coffee.png", COFFEE), prompt="a beach",
                                  stream=True, partial_images=3))  # fmt: skip
    assert [type(e) for e in events] == [ImageEditCompletedEvent]


def test_a_provider_failure_mid_stream_raises_in_the_sdk(sdk: OpenAI, faults: Callable[..., None]) -> None:
    faults("images", mid_stream=1.0)
    stream = sdk.images.edit(model="gpt-image-2", image=("coffee.png", COFFEE), prompt="a sandy beach",
                             stream=True, partial_images=1)  # fmt: skip
    seen = []
    with pytest.raises(openai.APIError, match="mid-stream") as err:
        for event in stream:
            seen.append(event)
    # previews came before the failure (one per attempt: the executor retried the last candidate once)
    assert seen and all(isinstance(e, ImageEditPartialImageEvent) and e.partial_image_index == 0 for e in seen)
    assert err.value.body["code"] == "provider_unavailable" and err.value.body["edit_id"]  # type: ignore[index]


def test_streamed_idempotent_replay_answers_the_completed_event(sdk: OpenAI) -> None:
    key = {"Idempotency-Key": f"drop-in-stream-{time.time_ns()}"}
    args = {"model": "gpt-image-2", "prompt": "a lighthouse", "size": "1024x1024", "stream": True,
            "partial_images": 1, "extra_headers": key}  # fmt: skip
    first = list(sdk.images.generate(**args))  # type: ignore[call-overload]
    again = list(sdk.images.generate(**args))  # type: ignore[call-overload]
    assert [type(e) for e in again] == [ImageGenCompletedEvent]
    assert again[0].b64_json == first[-1].b64_json and again[0].usage == first[-1].usage


def test_partial_images_out_of_range_is_a_bad_request(sdk: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.generate(model="gpt-image-2", prompt="x", stream=True, partial_images=4)
    assert err.value.body["param"] == "partial_images"  # type: ignore[index]
