"""``openai-responses``: the Responses API with the ``image_generation`` tool, for multi-round chains.

Each round returns the response id as chain state; the next round of the same session passes it as
``previous_response_id`` and sends only the new instruction, instead of re-uploading the image.
The tool is forced (``tool_choice``); an answer without an image is classified by
:mod:`providers.responses_outcome`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import openai
from openai import AsyncStream
from openai.types.responses import Response

from policies.capabilities import Capabilities
from providers.base import EditJob, ProviderResult, ResultImage
from providers.catalog import snap_openai_size
from providers.errors import Unavailable
from providers.imaging import MIME
from providers.openai_common import (
    EMULATOR_HEADER,
    call_timeout,
    data_url,
    image_bytes,
    map_error,
    stream_error,
    token_usage,
)
from providers.openai_images import DEFAULT_QUALITY, forwarded, rendered
from providers.openai_models import accepted_tokens, responses_image_model
from providers.openai_wire import ResponsesAnswer, decode_responses
from providers.responses_outcome import failure


class OpenAIResponsesProvider:
    name = "openai-responses"
    capabilities = Capabilities(
        prompt_guided=True,
        removal=True,
        outpaint=True,
        variation=True,
        native_mask=True,
        max_refs=8,
        max_n=1,
        transparent=True,
        multi_turn=True,
        text_rendering=True,
        max_edge=3840,
    )

    def __init__(self, client: openai.AsyncOpenAI, image_model: str | None = None,
                 quality_map: dict[str, str] | None = None) -> None:  # fmt: skip
        self._client = client
        self._image_model = image_model or responses_image_model()
        self._quality = {**DEFAULT_QUALITY, **(quality_map or {})}

    @staticmethod
    def accepted_params(model: str, options: Mapping[str, Any]) -> frozenset[str]:
        """What the tool's image model takes of the model-specific parameters (the tool has no ``markup``)."""
        return accepted_tokens(options.get("image_model") or responses_image_model()) - {"markup"}

    def build_request(self, job: EditJob) -> dict[str, Any]:
        w, h = snap_openai_size(self._image_model, job.out_w, job.out_h)
        tool: dict[str, Any] = {
            "type": "image_generation",
            "model": self._image_model,
            "quality": job.params.get("quality") or self._quality[job.quality],
            "size": f"{w}x{h}",
            "output_format": job.params.get("output_format") or job.output_format,
            "background": job.background,
            **forwarded(job, "responses_tool", self._image_model),
        }
        content: list[dict[str, Any]] = [{"type": "input_text", "text": job.prompt}]
        if job.previous_response_id is None and job.mode != "generate":
            content += [
                {"type": "input_image", "image_url": data_url(b.data, b.mime)} for b in (job.source, *job.references)
            ]
            if job.mask is not None:
                tool["input_image_mask"] = {"image_url": data_url(job.mask.data, "image/png")}
        request: dict[str, Any] = {
            "model": job.model,
            "input": [{"role": "user", "content": content}],
            "tools": [tool],
            "tool_choice": {"type": "image_generation"},  # else the model may answer in words only
        }
        if job.previous_response_id:
            request["previous_response_id"] = job.previous_response_id
        if job.safety_identifier:
            request["safety_identifier"] = job.safety_identifier
        if job.params.get("user"):
            request["user"] = job.params["user"]
        return request

    async def edit(self, job: EditJob) -> ProviderResult:
        streamed = job.partial_images > 0 and job.on_partial is not None
        response: ResponsesAnswer | Response  # a streamed answer is the SDK's ``response.completed`` model
        request = self.build_request(job)
        if streamed:
            request["tools"][0]["partial_images"] = job.partial_images
            request["stream"] = True
        try:
            raw = await self._client.responses.with_raw_response.create(
                **request, timeout=call_timeout(job.timeout_s, job.connect_timeout_s)
            )
            response = await self._relay(raw.parse(), job) if streamed else decode_responses(raw.content)
        except Exception as exc:
            raise map_error(exc, self.name) from exc
        request_id = raw.headers.get("x-request-id")
        if (error := failure(response, self.name, request_id)) is not None:
            raise error
        calls = [c for c in response.output if c.type == "image_generation_call" and c.result and c.error is None]
        try:
            images = [
                ResultImage(data=image_bytes(c.result or ""), mime=MIME.get(c.output_format or "png", "image/png"))
                for c in calls
            ]
        except ValueError as exc:
            raise map_error(exc, self.name) from exc
        usage = token_usage(response.tool_usage.image_gen if response.tool_usage else None)
        if response.usage:
            usage["model_input_tokens"] = response.usage.input_tokens
            usage["model_output_tokens"] = response.usage.output_tokens
        return ProviderResult(
            images=images,
            usage=usage,
            request_id=request_id,
            chain_state=response.id,
            revised_prompt=calls[0].revised_prompt,
            emulated=EMULATOR_HEADER in raw.headers,
            rendered=rendered(calls[0].quality, response.safety_identifier),
        )

    async def _relay(self, stream: AsyncStream[Any], job: EditJob) -> Response:
        """Pass each partial image on as it arrives; the ``response.completed`` event carries the whole response."""
        assert job.on_partial is not None
        async with stream:
            async for event in stream:
                if event.type == "response.image_generation_call.partial_image":
                    mime = MIME.get(event.output_format or job.output_format, "image/png")
                    await job.on_partial(event.partial_image_index, image_bytes(event.partial_image_b64), mime)
                elif event.type in ("response.completed", "response.failed", "response.incomplete"):
                    return event.response  # a failed or incomplete one is classified like a non-streamed one
                elif event.type == "error":
                    raise stream_error(event.model_dump(), event.message, self.name)
        raise Unavailable("the stream ended before the response completed", provider=self.name, ambiguous=True)
