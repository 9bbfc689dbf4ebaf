"""The emulator streams as the OpenAI APIs do: the unmodified SDK parses every event into its own types."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from openai.types import (
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
)
from openai.types.responses import ResponseCompletedEvent, ResponseErrorEvent, ResponseImageGenCallPartialImageEvent
from pydantic import BaseModel

from tests.conftest import decode, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


@pytest.fixture()
def sdk(emulator: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key="sk-test", base_url=f"{emulator}/v1", max_retries=0) as client:
        yield client


def _strict(event: BaseModel) -> BaseModel:
    """Full validation of what the SDK parsed leniently: a missing required field fails here."""
    return type(event).model_validate(event.model_dump())


def test_image_edit_stream_yields_partials_then_completed_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.images.edit(image=("a.png", COFFEE, "image/png"), mask=("m.png", MASK, "image/png"),
                             prompt="sand", model="gpt-image-2", size="992x672", stream=True, partial_images=2,
                             output_format="webp")  # fmt: skip
    assert "test double" in stream.response.headers["x-emulator"]
    events = [_strict(e) for e in stream]
    assert [type(e) for e in events] == [ImageEditPartialImageEvent] * 2 + [ImageEditCompletedEvent]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]  # type: ignore[attr-defined]
    completed = events[-1]
    assert isinstance(completed, ImageEditCompletedEvent) and completed.usage.output_tokens > 0
    for event in events:
        raw = base64.b64decode(event.b64_json)  # type: ignore[attr-defined]
        assert raw[:4] == b"RIFF" and decode(raw).shape[:2] == (672, 992)


def test_image_generation_stream_and_zero_partials(sdk: openai.OpenAI) -> None:
    events = list(sdk.images.generate(prompt="a lake", model="gpt-image-2", size="1024x1024", stream=True,
                                      partial_images=1))  # fmt: skip
    assert [type(_strict(e)) for e in events] == [ImageGenPartialImageEvent, ImageGenCompletedEvent]
    only = list(sdk.images.generate(prompt="a lake", model="gpt-image-2", stream=True, partial_images=0))
    assert [type(e) for e in only] == [ImageGenCompletedEvent]


def test_responses_stream_relays_partial_images(sdk: openai.OpenAI) -> None:
    image = "data:image/png;base64," + base64.b64encode(COFFEE).decode()
    stream = sdk.responses.create(
        model="gpt-5.4-mini",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "sand"},
                                             {"type": "input_image", "image_url": image, "detail": "auto"}]}],
        tools=[{"type": "image_generation", "size": "992x672", "partial_images": 3}],
        stream=True,
    )  # fmt: skip
    events = [_strict(e) for e in stream]
    types = [e.type for e in events]  # type: ignore[attr-defined]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    partials = [e for e in events if isinstance(e, ResponseImageGenCallPartialImageEvent)]
    assert [p.partial_image_index for p in partials] == [0, 1, 2]
    assert [e.sequence_number for e in events] == list(range(len(events)))  # type: ignore[attr-defined]
    done = events[-1]
    assert isinstance(done, ResponseCompletedEvent) and done.response.tool_usage
    call = done.response.output[0]
    assert call.type == "image_generation_call" and call.result


def _plan(emulator: str, endpoint: str, **plan: object) -> None:
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {endpoint: plan}}).raise_for_status()


@pytest.fixture()
def plan(emulator: str) -> Iterator[Callable[..., None]]:
    yield lambda endpoint, **p: _plan(emulator, endpoint, **p)
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def test_mid_stream_fault_is_an_error_event_the_sdk_raises(sdk: openai.OpenAI, plan: Callable[..., None]) -> None:
    plan("images", faults={"mid_stream": 1.0})
    stream = sdk.images.generate(prompt="a lake", model="gpt-image-2", stream=True, partial_images=2)
    assert stream.response.status_code == 200  # the headers were already sent
    seen = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for event in stream:
            seen.append(event)
    assert [type(e) for e in seen] == [ImageGenPartialImageEvent] * 2
    with pytest.raises(openai.InternalServerError):  # without a stream, the same fault is a plain 500
        sdk.images.generate(prompt="a lake", model="gpt-image-2")


def test_responses_mid_stream_error_event(sdk: openai.OpenAI, plan: Callable[..., None]) -> None:
    plan("responses", faults={"mid_stream": 1.0})
    stream = sdk.responses.create(model="gpt-5.4-mini", input="a lake", stream=True,
                                  tools=[{"type": "image_generation", "partial_images": 1}])  # fmt: skip
    events = list(stream)
    assert isinstance(_strict(events[-1]), ResponseErrorEvent)
    assert not any(e.type == "response.completed" for e in events)


def test_partial_interval_paces_the_stream(emulator: str, plan: Callable[..., None]) -> None:
    plan("images", partial_interval_ms=150)
    arrivals = []
    with httpx.stream("POST", f"{emulator}/v1/images/generations", headers={"Authorization": "Bearer sk-test"},
                      json={"prompt": "x", "model": "gpt-image-2", "size": "1024x1024", "stream": True,
                            "partial_images": 2}, timeout=30) as r:  # fmt: skip
        assert r.headers["content-type"].startswith("text/event-stream") and r.headers["x-emulator"]
        for line in r.iter_lines():
            if line.startswith("event:"):
                arrivals.append(line.split(": ", 1)[1])
    assert arrivals == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert httpx.get(f"{emulator}/_emulator/config").json()["endpoints"]["images"]["partial_interval_ms"] == 150
