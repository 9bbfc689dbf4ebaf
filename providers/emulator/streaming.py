"""Server-sent events as the OpenAI APIs stream them: ``stream=true`` on the Images and Responses endpoints.

Event names and payloads are those of the SDK's own types (``ImageEditStreamEvent``,
``ImageGenStreamEvent``, ``ResponseStreamEvent``). Partial images are coarse previews of the final
render (pixelated, then sharper), spaced by the plan's ``partial_interval_ms``. The ``mid_stream``
fault ends the stream with an ``error`` event after the partials, as a real stream can fail after
its 200 headers were sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import cv2
import pybase64
from litestar.response import Stream

from providers.emulator.common import b64_image, decode_any

MID_STREAM_ERROR = {
    "message": "The server had an error while processing your request. (emulated, mid-stream)",
    "type": "server_error",
    "param": None,
    "code": "server_error",
}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def partial_previews(final_b64: str, count: int, fmt: str) -> list[str]:
    """``count`` previews of the final image, each sharper than the last (block size halves)."""
    final = decode_any(pybase64.b64decode(final_b64))
    h, w = final.shape[:2]
    previews = []
    for i in range(count):
        block = 2 ** (count - i + 2)
        small = cv2.resize(final, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
        previews.append(b64_image(cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST), fmt))
    return previews


def event_stream(events: AsyncIterator[bytes], headers: dict[str, str]) -> Stream:
    headers = {"cache-control": "no-cache", **headers}
    return Stream(events, status_code=200, media_type="text/event-stream", headers=headers)


async def image_events(
    kind: str,
    body: dict[str, Any],
    partials: int,
    interval_s: float,
    failing: bool,
    previews: Callable[[str, int, str], list[str]] = partial_previews,
) -> AsyncIterator[bytes]:
    """``kind``: ``image_edit`` or ``image_generation``. Partials of the first image, then one completed per image."""
    fmt = body["output_format"]
    meta = {k: body[k] for k in ("background", "output_format", "quality", "size")}
    frames = await asyncio.to_thread(previews, body["data"][0]["b64_json"], partials, fmt) if partials else []
    for index, frame in enumerate(frames):
        if index:
            await asyncio.sleep(interval_s)
        payload = {"type": f"{kind}.partial_image", "b64_json": frame, "created_at": int(time.time()),
                   "partial_image_index": index, **meta}  # fmt: skip
        yield sse(payload["type"], payload)
    await asyncio.sleep(interval_s)
    if failing:
        yield sse("error", {"type": "error", "error": MID_STREAM_ERROR})
        return
    for item in body["data"]:
        payload = {"type": f"{kind}.completed", "b64_json": item["b64_json"], "created_at": int(time.time()),
                   "usage": body["usage"], **meta}  # fmt: skip
        yield sse(payload["type"], payload)


async def response_events(
    response: dict[str, Any], partials: int, interval_s: float, failing: bool
) -> AsyncIterator[bytes]:
    """The Responses stream of one turn with an ``image_generation_call`` (and a short message)."""
    seq = iter(range(1_000_000))

    def event(type_: str, **fields: Any) -> bytes:
        return sse(type_, {"type": type_, "sequence_number": next(seq), **fields})

    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    pending.pop("tool_usage", None)
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for index, item in enumerate(response["output"]):
        started = {**item, "status": "in_progress"}
        if item["type"] == "image_generation_call":
            started["result"] = None
        elif item["type"] == "message":
            started["content"] = []
        yield event("response.output_item.added", output_index=index, item=started)
        if item["type"] != "image_generation_call":
            yield event("response.output_item.done", output_index=index, item=item)
            continue
        ids = {"item_id": item["id"], "output_index": index}
        yield event("response.image_generation_call.in_progress", **ids)
        yield event("response.image_generation_call.generating", **ids)
        if item.get("result") and partials:
            fmt = item.get("output_format") or "png"
            frames = await asyncio.to_thread(partial_previews, item["result"], partials, fmt)
            for n, frame in enumerate(frames):
                if n:
                    await asyncio.sleep(interval_s)
                meta = {k: item.get(k) for k in ("background", "output_format", "quality", "size")}
                yield event("response.image_generation_call.partial_image", partial_image_b64=frame,
                            partial_image_index=n, **ids, **meta)  # fmt: skip
        await asyncio.sleep(interval_s)
        if failing:
            yield event("error", code="server_error", message=MID_STREAM_ERROR["message"], param=None)
            return
        yield event("response.image_generation_call.completed", **ids)
        yield event("response.output_item.done", output_index=index, item=item)
    ending = {"failed": "response.failed", "incomplete": "response.incomplete"}.get(response.get("status") or "")
    yield event(ending or "response.completed", response=response)
