"""Server-sent events of an edit: ``GET /v1/edits/{id}/events``, and the run behind a streamed request.

A streamed request (``POST /v1/edits`` with ``Accept: text/event-stream``, or ``stream=true`` on the
drop-in) runs its edit as a background task: the paid render is never cancelled by a client that
disconnects, and with an ``Idempotency-Key`` it is picked up again by repeating the request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import Stream

from router.api.openapi import guarded
from router.auth import TenantId
from router.errors import ApiError, error_response
from router.events import TERMINAL, Event, stored_terminal, watch_accepted
from router.service import Gateway
from router.storage.store import VERSION_ID

EVENT_STREAM = "text/event-stream"
KEEP_ALIVE = b": keep-alive\n\n"


def wants_events(request: Request) -> bool:
    return EVENT_STREAM in request.headers.get("accept", "")


def sse(event: str, data: dict[str, Any], event_id: int | str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def event_stream(chunks: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> Stream:
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})}
    return Stream(chunks, status_code=200, media_type=EVENT_STREAM, headers=headers)


async def start_in_background(gw: Gateway, work: Callable[[], Awaitable[Response]]
                              ) -> tuple[str | None, asyncio.Future[Response]]:  # fmt: skip
    """Run ``work`` (an edit) as a task of its own and wait until its version exists (its id) or it ends first.

    What fails before the edit exists (validation, an ``Idempotency-Key`` conflict) is raised here, so the
    caller answers it as a plain 4xx; an idempotent replay returns ``(None, its stored answer)``."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[str] = loop.create_future()
    outcome: asyncio.Future[Response] = loop.create_future()
    outcome.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if nobody awaits it

    async def run() -> None:
        with watch_accepted(lambda edit_id: accepted.done() or accepted.set_result(edit_id)):
            try:
                outcome.set_result(await work())
            except asyncio.CancelledError:
                outcome.cancel()
                raise
            except Exception as exc:
                outcome.set_exception(exc)

    gw.spawn(run(), "streamed edit")
    await asyncio.wait({accepted, outcome}, return_when=asyncio.FIRST_COMPLETED)
    if accepted.done():
        return accepted.result(), outcome
    outcome.result()
    return None, outcome


async def edit_events(gw: Gateway, tenant: str, edit_id: str, after: int = 0) -> AsyncIterator[Event | None]:
    """The edit's events after ``after``: live from the bus while it has them, else the terminal event from
    storage (the buffer was dropped, or the edit runs on another instance: polled). ``None``: send a keep-alive."""
    heartbeat = gw.settings.events_heartbeat_s
    async for event in gw.events.subscribe(edit_id, after, heartbeat):
        yield event
        if event is not None and event.type in TERMINAL:
            return
    if gw.events.relay is not None and not gw.events.knows(edit_id):  # it runs (or ran) on another replica
        async for event in gw.events.relay.read(edit_id, after, heartbeat):  # Redis away: nothing
            yield event
            if event is not None and event.type in TERMINAL:
                return
    waited = 0.0
    while True:
        version = await gw.store.version_by_id(tenant, edit_id)
        if version is None:
            return
        if (terminal := stored_terminal(version.result, version.status)) is not None:
            yield terminal
            return
        if gw.events.knows(edit_id):  # it started on this instance meanwhile
            async for event in gw.events.subscribe(edit_id, after, heartbeat):
                yield event
            return
        poll = min(1.0, heartbeat)
        await asyncio.sleep(poll)
        waited += poll
        if waited >= heartbeat:
            waited = 0.0
            yield None


async def native_sse(gw: Gateway, tenant: str, edit_id: str, after: int = 0) -> AsyncIterator[bytes]:
    async for event in edit_events(gw, tenant, edit_id, after):
        yield KEEP_ALIVE if event is None else sse(event.type, event.data, event.id)


def _last_event_id(request: Request) -> int | None:
    """``None``: the client already has the terminal event (a stored one, id ``final``)."""
    value = request.headers.get("last-event-id", "").strip()
    if value == "final":
        return None
    if not value:
        return 0
    if not value.isdigit() or len(value) > 9:
        raise ApiError(422, "invalid_parameter", "Last-Event-ID must be an event id this stream sent.", "Last-Event-ID")
    return int(value)


@get("/v1/edits/{edit_id:str}/events", summary="Stream an edit's events (SSE)", tags=["edits"],
     media_type=EVENT_STREAM, **guarded(404, 422))  # fmt: skip
async def get_edit_events(request: Request, tenant: TenantId, edit_id: FromPath[str]) -> Stream:
    """`text/event-stream`: `queued`, `routed`, `attempt`, `partial_image` (base64 preview), then `completed`
    (the EditResponse) or `failed` (the error). Each event has an `id`; send `Last-Event-ID` to resume.
    A finished edit answers its terminal event at once. Comment lines keep idle connections open."""
    gw: Gateway = request.app.state.gateway
    version = await gw.store.version_by_id(tenant, edit_id) if VERSION_ID.match(edit_id) else None
    if version is None or version.number == 0:
        raise ApiError(404, "not_found", f"No edit {edit_id!r}.", "edit_id")
    after = _last_event_id(request)

    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    return event_stream(nothing() if after is None else native_sse(gw, tenant, edit_id, after))


async def stream_native_edit(gw: Gateway, tenant: str, work: Callable[[], Awaitable[Response]]) -> Stream:
    """``POST /v1/edits`` with ``Accept: text/event-stream``: start the edit, then stream its events."""
    edit_id, outcome = await start_in_background(gw, work)
    if edit_id is None:  # an idempotent replay: the stored edit's terminal event
        edit_id = str(outcome.result().content["id"])  # type: ignore[index]
    return event_stream(native_sse(gw, tenant, edit_id), {"x-editgate-edit-id": edit_id})


async def stream_drop_in(gw: Gateway, kind: str, work: Callable[[], Awaitable[Response]],
                         background: str, quality: str) -> Stream:  # fmt: skip
    """``stream=true`` on the drop-in: OpenAI's ``{kind}.partial_image`` events as the provider sends them, then
    ``{kind}.completed`` with the normalized image and the usage, or an ``error`` event the SDK raises.
    ``kind``: ``image_edit`` or ``image_generation``."""
    edit_id, outcome = await start_in_background(gw, work)

    async def chunks() -> AsyncIterator[bytes]:
        if edit_id is not None:
            async for event in gw.events.subscribe(edit_id, 0, gw.settings.events_heartbeat_s):
                if event is None:
                    yield KEEP_ALIVE
                elif event.type == "partial_image" and "b64_json" in event.data:
                    p = event.data
                    yield sse(f"{kind}.partial_image", {
                        "type": f"{kind}.partial_image", "b64_json": p["b64_json"], "partial_image_index": p["index"],
                        "created_at": int(time.time()), "output_format": p["format"], "quality": quality,
                        "size": f"{p['width']}x{p['height']}", "background": background,
                    })  # fmt: skip
        try:
            answer = await asyncio.shield(outcome)  # a client that goes away cancels this stream, never the edit
        except ApiError as exc:
            yield sse("error", {"type": "error", **error_response(exc, openai_shape=True).content})
            return
        except Exception:
            error = ApiError(500, "internal_error", "The edit failed inside the gateway.", edit_id=edit_id)
            yield sse("error", {"type": "error", **error_response(error, openai_shape=True).content})
            return
        body: dict[str, Any] = answer.content  # type: ignore[assignment]
        for item in body["data"]:
            yield sse(f"{kind}.completed", {
                "type": f"{kind}.completed", "b64_json": item["b64_json"], "created_at": body["created"],
                "background": body["background"], "output_format": body["output_format"], "quality": body["quality"],
                "size": body["size"], "usage": body["usage"],
            })  # fmt: skip

    return event_stream(chunks(), {"x-editgate-edit-id": edit_id} if edit_id else None)
