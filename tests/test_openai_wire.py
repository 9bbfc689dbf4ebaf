"""A 200 answer the OpenAI adapters cannot read is a malformed response (``Unavailable``), never a crash.

The adapters decode the raw body themselves (``providers/openai_wire.py``) rather than through the SDK's
models; the real SDK still sends the request, here over an ``httpx2.MockTransport`` that answers each
call with one fixed body.
"""

from __future__ import annotations

import asyncio
import io
import json

import httpx2
import numpy as np
import pybase64
import pytest
from PIL import Image

from providers import openai_common
from providers.base import EditJob, ImageBlob, ProviderResult
from providers.errors import Unavailable
from providers.openai_images import OpenAIImagesProvider
from providers.openai_responses import OpenAIResponsesProvider


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()
B64 = pybase64.b64encode(PNG).decode()
SOURCE = ImageBlob(PNG, "image/png", 8, 8, None)


def _client(body: bytes) -> openai_common.openai.AsyncOpenAI:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "application/json", "x-request-id": "r1"})

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(answer))
    return openai_common.make_client("sk-test", "http://upstream.test/v1", http_client=http)  # type: ignore[arg-type]


def _edit(provider: object, model: str) -> ProviderResult:
    job = EditJob(prompt="make it blue", model=model, source=SOURCE, mask=None, out_w=1024, out_h=1024, timeout_s=5.0)
    return asyncio.run(provider.edit(job))  # type: ignore[attr-defined]


def _images(body: object) -> ProviderResult:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _edit(OpenAIImagesProvider(_client(raw)), "gpt-image-2")


def _responses(body: object) -> ProviderResult:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _edit(OpenAIResponsesProvider(_client(raw)), "gpt-5.4-mini")


def _call(**fields: object) -> dict[str, object]:
    return {"type": "image_generation_call", "id": "ig_1", "status": "completed", **fields}


MALFORMED_IMAGES = {
    "truncated": b'{"created": 1700000000, "data": [{"b64_json": "iVBORw0K',
    "not json": b"<html>bad gateway</html>",
    "b64_json not a string": {"created": 1, "data": [{"b64_json": 123}]},
    "data not a list": {"created": 1, "data": {"b64_json": B64}},
    "missing data": {"created": 1},
    "b64_json not base64": {"created": 1, "data": [{"b64_json": "@@not base64@@"}]},
    "usage of the wrong shape": {"created": 1, "data": [{"b64_json": B64}], "usage": "many"},
}

MALFORMED_RESPONSES = {
    "truncated": b'{"id": "resp_1", "output": [{"type": "image_generation_call", "result": "iVBO',
    "result not a string": {"id": "resp_1", "output": [_call(result=5)]},
    "missing output": {"id": "resp_1"},
    "item without a type": {"id": "resp_1", "output": [{"id": "ig_1", "result": B64}]},
    "result not base64": {"id": "resp_1", "output": [_call(result="@@not base64@@")]},
}


@pytest.mark.parametrize("body", MALFORMED_IMAGES.values(), ids=MALFORMED_IMAGES.keys())
def test_a_malformed_images_answer_is_unavailable(body: object) -> None:
    with pytest.raises(Unavailable) as err:
        _images(body)
    assert err.value.provider == "openai-images"
    assert not err.value.ambiguous


@pytest.mark.parametrize("body", MALFORMED_RESPONSES.values(), ids=MALFORMED_RESPONSES.keys())
def test_a_malformed_responses_answer_is_unavailable(body: object) -> None:
    with pytest.raises(Unavailable) as err:
        _responses(body)
    assert err.value.provider == "openai-responses"
    assert not err.value.ambiguous


def test_unknown_fields_and_nulls_in_an_images_answer_are_read_past() -> None:
    result = _images(
        {
            "created": 1,
            "background": "opaque",
            "data": [{"b64_json": B64, "revised_prompt": None, "url": None}, {"b64_json": None}],
            "output_format": "png",
            "usage": {"input_tokens": 7, "output_tokens": 9, "input_tokens_details": {"text_tokens": 7}},
        }
    )
    assert [i.data for i in result.images] == [PNG]
    assert result.usage["input_text_tokens"] == 7 and result.usage["output_image_tokens"] == 9
    assert result.request_id == "r1" and result.revised_prompt is None


def test_a_responses_answer_keeps_its_id_usage_and_revised_prompt() -> None:
    result = _responses(
        {
            "id": "resp_9",
            "object": "response",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                _call(result=B64, output_format="png", revised_prompt="a blue cup"),
                {"type": "message", "id": "msg_1", "role": "assistant", "content": [], "status": "completed"},
            ],
            "usage": {"input_tokens": 11, "output_tokens": 3, "total_tokens": 14},
            "tool_usage": {"image_gen": {"input_tokens": 5, "output_tokens": 272}, "web_search": {"num_requests": 0}},
        }
    )
    assert [i.data for i in result.images] == [PNG]
    assert result.chain_state == "resp_9" and result.revised_prompt == "a blue cup"
    assert result.usage["model_input_tokens"] == 11 and result.usage["output_image_tokens"] == 272
