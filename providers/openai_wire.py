"""Typed decoding of the OpenAI answers the adapters read, without the SDK's pydantic models.

A non-streaming image answer is several MB, nearly all of it one base64 string per image. The SDK's
``raw.parse()`` runs ``json.loads`` into dicts and then builds its models over them; here msgspec decodes
the raw body straight into small structs holding only the fields the adapters use (unknown fields are
skipped). The SDK still sends the request and raises its mapped errors for non-2xx statuses.

Strict: a body that is not JSON, or a field of the wrong type, raises ``msgspec.DecodeError`` (a
``ValueError``), which :func:`providers.openai_common.map_error` reports as a malformed response.
"""

from __future__ import annotations

import msgspec


class TokenDetails(msgspec.Struct):
    text_tokens: int | None = None
    image_tokens: int | None = None


class ImageUsage(msgspec.Struct):
    """Images API ``usage`` and Responses ``tool_usage.image_gen`` share this shape."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    input_tokens_details: TokenDetails | None = None
    output_tokens_details: TokenDetails | None = None


class ImageData(msgspec.Struct):
    b64_json: str | None = None
    revised_prompt: str | None = None


class SvgUsage(msgspec.Struct):
    """``ImagesResponse.svg_usage``: the SVG author's tokens, apart from the image model's."""

    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int | None = None


class ImagesAnswer(msgspec.Struct):
    """``ImagesResponse`` of ``images.edit`` / ``images.generate``."""

    created: int | None = None
    data: list[ImageData] | None = None
    output_format: str | None = None
    usage: ImageUsage | None = None
    quality: str | None = None
    safety_identifier: str | None = None
    svg_usage: SvgUsage | None = None


class ModerationDetails(msgspec.Struct):
    categories: list[str] = []
    moderation_stage: str | None = None


class ToolError(msgspec.Struct):
    message: str = "the image tool failed"
    code: str | None = None
    moderation_details: ModerationDetails | None = None


class ContentPart(msgspec.Struct):
    """A part of a ``message`` item: ``output_text`` (``text``) or ``refusal`` (``refusal``)."""

    type: str
    text: str | None = None
    refusal: str | None = None


class OutputItem(msgspec.Struct):
    """One ``output`` item of a response (a message, reasoning, an ``image_generation_call``): the image
    call's fields, and a message's content (what the model said instead of calling the tool)."""

    type: str
    id: str | None = None
    result: str | None = None
    output_format: str | None = None
    revised_prompt: str | None = None
    error: ToolError | None = None
    content: list[ContentPart] | None = None
    quality: str | None = None


class ResponseError(msgspec.Struct):
    """``error`` of a response whose ``status`` is ``failed``."""

    code: str | None = None
    message: str = "the response failed"


class IncompleteDetails(msgspec.Struct):
    reason: str | None = None


class ModelUsage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None


class ToolUsage(msgspec.Struct):
    image_gen: ImageUsage | None = None


class ResponsesAnswer(msgspec.Struct):
    """A ``Response`` of ``responses.create`` (non-streaming)."""

    id: str
    output: list[OutputItem]
    status: str | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    usage: ModelUsage | None = None
    tool_usage: ToolUsage | None = None
    safety_identifier: str | None = None


_IMAGES = msgspec.json.Decoder(ImagesAnswer)
_RESPONSES = msgspec.json.Decoder(ResponsesAnswer)


def decode_images(body: bytes) -> ImagesAnswer:
    return _IMAGES.decode(body)


def decode_responses(body: bytes) -> ResponsesAnswer:
    return _RESPONSES.decode(body)
