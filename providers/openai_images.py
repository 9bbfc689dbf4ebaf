"""``openai-images``: gpt-image-2 through the Images *edits* endpoint. Single-shot, native mask."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import httpx2
import openai
from openai import AsyncStream
from openai.types import Image, ImagesResponse

from policies.capabilities import Capabilities
from providers.base import EditJob, ProviderResult, ResultImage
from providers.catalog import snap_openai_size
from providers.errors import Unavailable
from providers.imaging import MIME
from providers.openai_common import EMULATOR_HEADER, call_timeout, image_bytes, map_error, token_usage
from providers.openai_models import Surface, accepted_tokens, image_models, surface_params
from providers.openai_wire import ImagesAnswer, decode_images
from providers.pricing import svg_usage_kinds

DEFAULT_QUALITY = {"draft": "medium", "final": "high"}
FORWARDED = ("complexity", "frame_count", "frame_duration_ms", "svg", "input_fidelity", "moderation",
             "output_compression", "user")  # fmt: skip
"""Caller parameters sent as they came, where the surface takes them (``quality`` and ``output_format`` replace
editgate's own mapping; ``output_compression`` only with jpeg or webp, as the API requires)."""


def rendered(quality: str | None, safety_identifier: str | None) -> dict[str, str]:
    """What an OpenAI answer says it did, keeping only what it said."""
    return {k: v for k, v in (("quality", quality), ("safety_identifier", safety_identifier)) if v}


_TIMEOUTS = (httpx2.TimeoutException, httpx.TimeoutException)
_TRANSPORT = (httpx2.RequestError, httpx.RequestError)


class OpenAIImagesProvider:
    name = "openai-images"
    capabilities = Capabilities(
        prompt_guided=True,
        removal=True,
        outpaint=True,
        variation=True,
        native_mask=True,
        max_refs=15,
        max_n=10,
        transparent=True,
        text_rendering=True,
        max_edge=3840,
    )

    def __init__(self, client: openai.AsyncOpenAI, quality_map: Mapping[str, str] | None = None) -> None:
        self._client = client
        self._quality = {**DEFAULT_QUALITY, **(quality_map or {})}

    @staticmethod
    def known_models() -> list[str]:
        """The GPT Image model ids this provider can be asked for (the catalog's)."""
        return list(image_models())

    @staticmethod
    def accepted_params(model: str, options: Mapping[str, Any]) -> frozenset[str]:
        """The model-specific parameters (``markup``, ``quality=xhigh``, ...) ``model`` takes (the catalog's)."""
        return accepted_tokens(model)

    def build_request(self, job: EditJob) -> dict[str, object]:
        """SDK arguments: size snapped for the model, the caller's OpenAI quality as it came (else editgate's
        mapping), the caller's other OpenAI parameters where the endpoint takes them."""
        w, h = snap_openai_size(job.model, job.out_w, job.out_h)
        request: dict[str, object] = {
            "model": job.model,
            "prompt": job.prompt,
            "n": job.n,
            "size": f"{w}x{h}",
            "quality": job.params.get("quality") or self._quality[job.quality],
            "output_format": job.params.get("output_format") or job.output_format,
            "background": job.background,
        }
        if job.mask is not None:
            request["mask"] = ("mask.png", job.mask.data, "image/png")
        request.update(forwarded(job, "generations" if job.mode == "generate" else "edits", job.model))
        if job.markup is not None and job.mode != "generate":
            request["markup"] = ("markup.png", job.markup.data, "image/png")
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}  # opened last: nothing raises after
        sources = (job.source, *job.references)
        request["image"] = [(f"image-{i}.{ext[b.mime]}", b.upload(), b.mime) for i, b in enumerate(sources)]
        return request

    async def edit(self, job: EditJob) -> ProviderResult:
        streamed = job.partial_images > 0 and job.on_partial is not None
        response: ImagesAnswer | ImagesResponse  # a streamed answer is assembled from the SDK's events
        try:
            built = self.build_request(job)
            generate = job.mode == "generate"  # text-to-image: the canvas (and any markup) is not sent
            request = {k: v for k, v in built.items() if k not in ("image", "mask", "markup")} if generate else built
            try:  # stored images are streamed from their files, not held in memory through the call
                response, raw = await self._call(request, job, streamed)
            finally:
                for _, content, _ in built["image"]:  # type: ignore[attr-defined]
                    if not isinstance(content, bytes):
                        content.close()
            mime = MIME.get(response.output_format or job.output_format, "image/png")
            images = [ResultImage(data=image_bytes(d.b64_json), mime=mime) for d in response.data or [] if d.b64_json]
        except Exception as exc:
            raise map_error(exc, self.name) from exc
        if not images:
            raise map_error(ValueError("the response carried no image"), self.name)
        usage = token_usage(response.usage)
        said = rendered(response.quality, getattr(response, "safety_identifier", None))
        if svg := getattr(response, "svg_usage", None):  # the SVG author's tokens, billed apart
            usage.update(svg_usage_kinds(svg_tokens(svg)))
            if svg.model:
                said["svg_model"] = svg.model
        return ProviderResult(
            images=images,
            usage=usage,
            request_id=raw.headers.get("x-request-id"),
            revised_prompt=next((d.revised_prompt for d in response.data or [] if d.revised_prompt), None),
            emulated=EMULATOR_HEADER in raw.headers,
            rendered=said,
        )

    async def _call(self, request: dict[str, object], job: EditJob, streamed: bool
                    ) -> tuple[ImagesAnswer | ImagesResponse, Any]:  # fmt: skip
        """The SDK sends the request and raises its errors for a non-2xx status. A whole answer is read only
        once the gateway gives it its turn (:attr:`EditJob.answer_turn`), then decoded straight from bytes."""
        images, generate = self._client.images, job.mode == "generate"
        timeout = call_timeout(job.timeout_s, job.connect_timeout_s)
        if streamed:
            send = images.with_raw_response.generate if generate else images.with_raw_response.edit
            raw = await send(**request, stream=True, partial_images=job.partial_images, timeout=timeout)  # type: ignore[call-overload]
            return await self._relay(raw.parse(), job), raw
        answer = images.with_streaming_response.generate if generate else images.with_streaming_response.edit
        async with answer(**request, timeout=timeout) as raw:  # type: ignore[call-overload]
            if job.answer_turn is not None:
                await job.answer_turn()
            try:
                body = await raw.read()
            except _TIMEOUTS as exc:  # what the SDK raises when it reads the body itself
                raise openai.APITimeoutError(request=raw.http_request) from exc
            except _TRANSPORT as exc:
                raise openai.APIConnectionError(request=raw.http_request) from exc
            return decode_images(body), raw

    async def _relay(self, stream: AsyncStream[Any], job: EditJob) -> ImagesResponse:
        """Pass each ``*.partial_image`` event on as it arrives; the ``*.completed`` events make the response."""
        assert job.on_partial is not None
        completed: list[Any] = []
        async with stream:
            async for event in stream:
                if event.type.endswith(".partial_image"):
                    mime = MIME.get(event.output_format or job.output_format, "image/png")
                    await job.on_partial(event.partial_image_index, image_bytes(event.b64_json), mime)
                elif event.type.endswith(".completed"):
                    completed.append(event)
        if not completed:  # the connection ended after the headers: the render may have finished and billed
            raise Unavailable("the stream ended before the completed image", provider=self.name, ambiguous=True)
        last = completed[-1]
        return ImagesResponse(
            created=last.created_at, data=[Image(b64_json=e.b64_json) for e in completed],
            output_format=last.output_format, size=last.size, quality=last.quality, background=last.background,
            usage=last.usage.model_dump(),
        )  # fmt: skip


def svg_tokens(svg: Any) -> dict[str, int]:
    """``svg_usage``'s counts with the reasoning inside the output, as OpenAI counts it; an answer whose total
    shows the reasoning outside the output has it added, so no billed token goes unpriced."""
    output, reasoning = svg.output_tokens, svg.reasoning_tokens
    if reasoning and svg.total_tokens == svg.input_tokens + output + reasoning:
        output += reasoning
    return {"input_tokens": svg.input_tokens, "output_tokens": output, "reasoning_tokens": reasoning}


def forwarded(job: EditJob, surface: Surface, image_model: str) -> dict[str, Any]:
    """The caller's OpenAI parameters ``surface`` takes, and the safety identifier the job carries.

    ``input_fidelity`` goes only to a model that takes it (gpt-image-2 refuses it; a routed request has
    always had it left out there, as OpenAI documents: "omit this parameter")."""
    takes = surface_params(surface)
    out = {name: job.params[name] for name in FORWARDED if job.params.get(name) not in (None, "") and name in takes}
    facts = image_models().get(image_model)
    if "input_fidelity" in out and (facts is None or out["input_fidelity"] not in facts.input_fidelity):
        del out["input_fidelity"]
    fmt = job.params.get("output_format") or job.output_format
    if fmt not in ("jpeg", "webp"):
        out.pop("output_compression", None)
    if job.safety_identifier and surface != "responses_tool":
        out["safety_identifier"] = job.safety_identifier
    return out
