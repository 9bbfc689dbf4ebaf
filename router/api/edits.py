"""``POST /v1/edits`` (multipart or JSON) and ``GET /v1/edits/{id}``."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath

from router.api.openapi import EditOperation
from router.errors import ApiError
from router.intake.request import parse_edit_request
from router.models import EditResponse
from router.service import Gateway, run_edit


def base_url(request: Request, gw: Gateway) -> str:
    return (gw.settings.public_base_url or str(request.base_url)).rstrip("/")


@post("/v1/edits", status_code=200, summary="Edit an image", tags=["edits"], operation_class=EditOperation)
async def create_edit(request: Request) -> EditResponse:
    """Send `multipart/form-data` (file parts `image`, `mask`, `reference` repeatable, plus the
    EditRequest fields as form fields) or `application/json` (the same fields, images as base64 in
    `image`, `mask`, `references`). Returns the normalized result with cost, latency and route trace.
    """
    gw: Gateway = request.app.state.gateway
    req, raw = await parse_edit_request(request)
    return await run_edit(gw, req, raw, base_url=base_url(request, gw))


@get("/v1/edits/{edit_id:str}", summary="Fetch an edit record", tags=["edits"])
async def get_edit(request: Request, edit_id: FromPath[str]) -> dict[str, Any]:
    """The stored record of an edit, failed ones included (with their inputs and the error)."""
    gw: Gateway = request.app.state.gateway
    record = gw.records.get(edit_id)
    if record is None:
        raise ApiError(404, "not_found", f"No edit {edit_id!r}.", "edit_id")
    return record
