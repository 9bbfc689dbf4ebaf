"""``openai-images``: gpt-image-2 through the Images *edits* endpoint. Single-shot, native mask."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import openai

from policies.capabilities import Capabilities
from providers.base import EditJob, ProviderResult, ResultImage
from providers.catalog import snap_openai_size
from providers.imaging import MIME
from providers.openai_common import EMULATOR_HEADER, image_bytes, map_error, token_usage

DEFAULT_QUALITY = {"draft": "medium", "final": "high"}


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

    def build_request(self, job: EditJob) -> dict[str, object]:
        """SDK arguments: size snapped for the model, quality mapped, no ``input_fidelity``."""
        w, h = snap_openai_size(job.model, job.out_w, job.out_h)
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
        images = [(f"image-{i}.{ext[b.mime]}", b.upload(), b.mime) for i, b in enumerate((job.source, *job.references))]
        request: dict[str, object] = {
            "model": job.model,
            "prompt": job.prompt,
            "image": images,
            "n": job.n,
            "size": f"{w}x{h}",
            "quality": self._quality[job.quality],
            "output_format": job.output_format,
            "background": job.background,
        }
        if job.mask is not None:
            request["mask"] = ("mask.png", job.mask.data, "image/png")
        return request

    async def edit(self, job: EditJob) -> ProviderResult:
        try:
            timeout = httpx.Timeout(job.timeout_s, connect=job.connect_timeout_s)
            if job.mode == "generate":  # text-to-image: the canvas is not sent
                request = {k: v for k, v in self.build_request(job).items() if k not in ("image", "mask")}
                raw = await self._client.images.with_raw_response.generate(**request, timeout=timeout)  # type: ignore[call-overload]
            else:
                request = self.build_request(job)
                try:  # stored images are streamed from their files, not held in memory through the call
                    raw = await self._client.images.with_raw_response.edit(**request, timeout=timeout)  # type: ignore[call-overload]
                finally:
                    for _, content, _ in request["image"]:  # type: ignore[attr-defined]
                        if not isinstance(content, bytes):
                            content.close()
            response = raw.parse()
            mime = MIME.get(response.output_format or job.output_format, "image/png")
            images = [ResultImage(data=image_bytes(d.b64_json), mime=mime) for d in response.data or [] if d.b64_json]
        except Exception as exc:
            raise map_error(exc, self.name) from exc
        if not images:
            raise map_error(ValueError("the response carried no image"), self.name)
        return ProviderResult(
            images=images,
            usage=token_usage(response.usage),
            request_id=raw.headers.get("x-request-id"),
            revised_prompt=next((d.revised_prompt for d in response.data or [] if d.revised_prompt), None),
            emulated=EMULATOR_HEADER in raw.headers,
        )
