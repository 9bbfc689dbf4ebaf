"""``POST /v1/edits`` (multipart or JSON) and ``GET /v1/edits/{id}``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath

from router.api.edit_events import stream_native_edit, wants_events
from router.api.openapi import EDIT_ERRORS, EditOperation, guarded
from router.auth import TenantId
from router.errors import ApiError
from router.idempotency import Answer, idempotent
from router.intake.request import parse_edit_request
from router.models import EditResponse
from router.service import EditTarget, Gateway, run_edit
from router.sessions import edit_in_session
from router.storage.store import VERSION_ID


def base_url(request: Request, gw: Gateway) -> str:
    return (gw.settings.public_base_url or str(request.base_url)).rstrip("/")


@post("/v1/edits", status_code=200, summary="Edit an image", tags=["edits"], operation_class=EditOperation,
      **guarded(*EDIT_ERRORS))  # fmt: skip
async def create_edit(request: Request, tenant: TenantId) -> Response[EditResponse]:
    """Send `multipart/form-data` (file parts `image`, `mask`, `reference` repeatable, plus the
    EditRequest fields as form fields) or `application/json` (the same fields, images as base64 in
    `image`, `mask`, `references`). With `session_id` (and no image) the edit continues that session
    from `parent_version` (default: the latest). Returns the normalized result with cost, latency and
    route trace. `Idempotency-Key` makes a retry safe.
    """
    gw: Gateway = request.app.state.gateway
    req, raw = await parse_edit_request(request)
    url = base_url(request, gw)

    async def run() -> Answer:
        if req.session_id:
            return Answer.of_edit(await edit_in_session(gw, tenant, req, raw, req.session_id, url))
        return Answer.of_edit(await run_edit(gw, req, raw, EditTarget(tenant, base_url=url)))

    fields = req.model_dump(mode="json")
    if wants_events(request):  # the run's events as SSE; the run itself is not tied to this connection
        return await stream_native_edit(gw, tenant, lambda: idempotent(request, gw, tenant, fields, raw, run))
    return await idempotent(request, gw, tenant, fields, raw, run)


@get("/v1/edits/{edit_id:str}", summary="Fetch an edit", tags=["edits"], **guarded(404))
async def get_edit(request: Request, tenant: TenantId, edit_id: FromPath[str]) -> dict[str, Any]:
    """An edit as it was returned, or as it failed (with its stored inputs, settings and the error)."""
    gw: Gateway = request.app.state.gateway
    version = await gw.store.version_by_id(tenant, edit_id) if VERSION_ID.match(edit_id) else None
    if version is None or version.number == 0:
        raise ApiError(404, "not_found", f"No edit {edit_id!r}.", "edit_id")
    return version.result or {"id": version.id, "status": version.status, "session_id": version.session_id}
