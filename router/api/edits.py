"""``POST /v1/edits`` (multipart or JSON; sync, or async with ``Prefer: respond-async``),
``GET /v1/edits/{id}`` (``?wait=`` long-polls) and ``POST /v1/edits/{id}/cancel``."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, QueryParameter

from router.api.edit_events import stream_native_edit, wants_events
from router.api.openapi import EDIT_ERRORS, EditOperation, guarded
from router.auth import TenantId
from router.errors import ApiError
from router.idempotency import Answer, idempotent
from router.intake.request import RawInputs, parse_edit_request
from router.lifecycle import CANCELED, QUEUED, RUNNING, TERMINAL, IdempotencyClaim, ambiguous_row, estimate_of
from router.models import EditRequest, EditResponse
from router.service import EditTarget, Gateway, enqueue_edit, run_edit
from router.sessions import session_target
from router.storage.models import Version
from router.storage.store import VERSION_ID
from router.webhooks.intake import accept_webhook_url, show_secret

MAX_WAIT_S = 60
WaitSeconds = Annotated[float, QueryParameter(ge=0, le=MAX_WAIT_S, description="Long-poll up to this many seconds.")]


def base_url(request: Request, gw: Gateway) -> str:
    return (gw.settings.public_base_url or str(request.base_url)).rstrip("/")


def prefers_async(request: Request, req: EditRequest | None) -> bool:
    """``"async": true`` or RFC 7240's ``Prefer: respond-async``."""
    prefer = ",".join(request.headers.getall("prefer", []))
    tokens = {part.split(";")[0].split("=")[0].strip().lower() for part in prefer.split(",")}
    return (req is not None and req.async_) or "respond-async" in tokens


async def edit_view(gw: Gateway, version: Version) -> dict[str, Any]:
    """The edit's record as the API shows it: its current state, and its place in the queue."""
    view = {k: v for k, v in (version.result or {}).items() if not k.startswith("_")}
    view.setdefault("id", version.id)
    view.setdefault("session_id", version.session_id)
    view["status"] = version.status
    if version.status == QUEUED and version.queued_at is not None:
        view["queue_position"] = await gw.lifecycle.queue_position(version)
    return view


async def accepted(gw: Gateway, version: Version) -> Answer:
    """202 with the queued record; ``Location`` is where to poll."""
    body = await edit_view(gw, version)
    headers = {"Location": f"/v1/edits/{version.id}", "Preference-Applied": "respond-async"}
    return Answer(body, headers, version.id, status=202)


async def start_edit(gw: Gateway, request: Request, tenant: str, req: EditRequest, raw: RawInputs,
                     target: EditTarget) -> Answer:  # fmt: skip
    """Run the edit now (200 with the result), or queue it when the caller prefers async (202)."""
    if prefers_async(request, req):
        return await accepted(gw, await enqueue_edit(gw, req, raw, target))
    await run_edit(gw, req, raw, target)
    return target.answer  # type: ignore[no-any-return]


@post("/v1/edits", status_code=200, summary="Edit an image", tags=["edits"], operation_class=EditOperation,
      **guarded(*EDIT_ERRORS))  # fmt: skip
async def create_edit(request: Request, tenant: TenantId) -> Response[EditResponse]:
    """Send `multipart/form-data` (file parts `image`, `mask`, `reference` repeatable, plus the
    EditRequest fields as form fields) or `application/json` (the same fields, images as base64 in
    `image`, `mask`, `references`). With `session_id` (and no image) the edit continues that session
    from `parent_version` (default: the latest). Returns the normalized result with cost, latency and
    route trace. `Idempotency-Key` makes a retry safe. With `Prefer: respond-async` (or `"async": true`)
    the answer is `202 Accepted` at once, the record in state `queued` and `Location: /v1/edits/{id}`.
    """
    gw: Gateway = request.app.state.gateway
    req, raw = await parse_edit_request(request)
    url = base_url(request, gw)
    secret = await accept_webhook_url(gw.store, gw.settings.webhooks, tenant, req.webhook_url)

    async def run(claim: IdempotencyClaim | None) -> Answer:
        if req.session_id:
            target = await session_target(gw, tenant, req, raw, req.session_id, url)
        else:
            target = EditTarget(tenant, base_url=url)
        target.claim = claim
        return await start_edit(gw, request, tenant, req, raw, target)

    async def pending(version_id: str) -> Answer | None:
        """An async repeat while the key's edit is open: the same 202, with its current state."""
        version = await gw.store.version_by_id(tenant, version_id)
        return None if version is None or version.status in TERMINAL else await accepted(gw, version)

    fields = req.model_dump(mode="json")
    if wants_events(request):  # the run's events as SSE; the run itself is not tied to this connection
        return await stream_native_edit(gw, tenant, lambda: idempotent(request, gw, tenant, fields, raw, run))
    repeat = pending if prefers_async(request, req) else None
    return show_secret(await idempotent(request, gw, tenant, fields, raw, run, repeat), secret)


async def edit_or_404(gw: Gateway, tenant: str, edit_id: str) -> Version:
    version = await gw.store.version_by_id(tenant, edit_id) if VERSION_ID.match(edit_id) else None
    if version is None or version.number == 0:
        raise ApiError(404, "not_found", f"No edit {edit_id!r}.", "edit_id")
    return version


@get("/v1/edits/{edit_id:str}", summary="Fetch an edit", tags=["edits"], **guarded(404))
async def get_edit(request: Request, tenant: TenantId, edit_id: FromPath[str], wait: WaitSeconds = 0) -> dict[str, Any]:
    """An edit as it was returned, or as it failed (with its stored inputs, settings and the error);
    while `queued` or `running`, its state (and `queue_position`). `?wait=30` answers as soon as the
    edit ends, or after 30 s with its current state."""
    gw: Gateway = request.app.state.gateway
    version = await edit_or_404(gw, tenant, edit_id)
    ends = time.monotonic() + wait
    while version.status not in TERMINAL and (left := ends - time.monotonic()) > 0:
        await gw.lifecycle.wait_ended(version.id, left)
        version = await edit_or_404(gw, tenant, edit_id)
    return await edit_view(gw, version)


@post("/v1/edits/{edit_id:str}/cancel", status_code=200, summary="Cancel an edit", tags=["edits"],
      **guarded(404, 409))  # fmt: skip
async def cancel_edit(request: Request, tenant: TenantId, edit_id: FromPath[str]) -> dict[str, Any]:
    """A queued edit is canceled before any call; a running one is stopped, and its ledger keeps an
    `ambiguous` row for the call in flight (the provider may still render and bill it)."""
    gw: Gateway = request.app.state.gateway
    version = await edit_or_404(gw, tenant, edit_id)
    if version.status in TERMINAL:
        raise ApiError(409, "not_cancelable", f"Edit {edit_id} already ended ({version.status}).", "edit_id")
    record = {**(version.result or {}), "error": {"code": "canceled", "param": None,
              "message": "Canceled by the caller; a provider call in flight may still be billed."}}  # fmt: skip
    if version.status == QUEUED and await gw.lifecycle.cancel(version, record, [], only_queued=True):
        return await edit_view(gw, await edit_or_404(gw, tenant, edit_id))
    version = await edit_or_404(gw, tenant, edit_id)  # it may have been claimed meanwhile
    if version.status == RUNNING:
        task = gw.stop(version.id, CANCELED)
        if task is not None:
            await asyncio.wait([task], timeout=30)
        else:  # run by another instance, or by none (recovery will not reach it first)
            rows = ambiguous_row(version, estimate_of(version.result), "canceled")
            await gw.lifecycle.cancel(version, record, rows)
    return await edit_view(gw, await edit_or_404(gw, tenant, edit_id))
