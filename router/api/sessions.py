"""Sessions: upload once, edit in rounds, branch, compare, retry, delete."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, PathParameter, QueryParameter
from litestar.response import File

from router.api.edits import accepted, base_url, prefers_async, start_edit
from router.api.files import blob_response
from router.api.openapi import EDIT_ERRORS, EditOperation, guarded
from router.auth import TenantId
from router.errors import ApiError
from router.idempotency import Answer, idempotent
from router.intake.form import read_form
from router.intake.images import load_image
from router.intake.request import decode_b64, json_object_field, parse_edit_request, read_json_object
from router.lifecycle import IdempotencyClaim
from router.models import EditResponse
from router.service import Gateway, start_session
from router.sessions import (
    CompareView,
    SessionView,
    VersionView,
    compare,
    delete_session,
    retry_version,
    session_target,
    session_view,
    version_or_404,
    version_view,
)
from router.storage.store import MAX_INT32
from router.webhooks.intake import accept_webhook_url, show_secret

VersionNumber = Annotated[int, PathParameter(ge=0, le=MAX_INT32)]
VersionQuery = Annotated[int, QueryParameter(ge=0, le=MAX_INT32)]


async def _upload(request: Request) -> tuple[bytes, dict[str, Any]]:
    if request.content_type[0] == "application/json":
        body = await read_json_object(request)
        if "image" not in body:
            raise ApiError(422, "missing_image", "Send the source photo as base64 in 'image'.", "image")
        return decode_b64(body["image"], "image"), json_object_field(body.get("metadata") or {}, "metadata")
    form = await read_form(request)
    image = form.get("image")
    if not isinstance(image, UploadFile):
        raise ApiError(422, "missing_image", "Send the source photo as the file part 'image'.", "image")
    data = await image.read()
    await image.close()
    return data, json_object_field(form.get("metadata") or "{}", "metadata")


@post(
    "/v1/sessions",
    status_code=201,
    summary="Start a session (upload the source: version 0)",
    tags=["sessions"],
    **guarded(413, 422),
)
async def create_session(request: Request, tenant: TenantId) -> SessionView:
    gw: Gateway = request.app.state.gateway
    data, meta = await _upload(request)
    loaded = await gw.workers.run(lambda: load_image(data, "image", gw.settings.limits))
    session_id, _ = await start_session(gw, tenant, loaded, base_url(request, gw), meta)
    return await session_view(gw, tenant, session_id)


@post("/v1/sessions/{session_id:str}/edits", status_code=200, summary="Edit in a session", tags=["sessions"],
      operation_class=EditOperation, **guarded(*EDIT_ERRORS))  # fmt: skip
async def session_edit(request: Request, tenant: TenantId, session_id: FromPath[str]) -> Response[EditResponse]:
    """Same fields as `POST /v1/edits` without `image`: the source is `parent_version` (default: the
    latest succeeded version). When that version was made by `openai-responses` and the route stays
    there, the provider's chain is continued instead of re-uploading."""
    gw: Gateway = request.app.state.gateway
    req, raw = await parse_edit_request(request, image_required=False)
    if req.session_id not in (None, session_id):
        raise ApiError(422, "invalid_parameter", "session_id in the body differs from the path.", "session_id")
    secret = await accept_webhook_url(gw.store, gw.settings.webhooks, tenant, req.webhook_url)

    async def run(claim: IdempotencyClaim | None) -> Answer:
        target = await session_target(gw, tenant, req, raw, session_id, base_url(request, gw))
        target.claim = claim
        return await start_edit(gw, request, tenant, req, raw, target)

    return show_secret(await idempotent(request, gw, tenant, req.model_dump(mode="json"), raw, run), secret)


@get("/v1/sessions/{session_id:str}", summary="The version tree", tags=["sessions"], **guarded(404))
async def get_session(request: Request, tenant: TenantId, session_id: FromPath[str]) -> SessionView:
    return await session_view(request.app.state.gateway, tenant, session_id)


@get("/v1/sessions/{session_id:str}/versions/{number:int}", summary="One version", tags=["sessions"],
     **guarded(404))  # fmt: skip
async def get_version(
    request: Request, tenant: TenantId, session_id: FromPath[str], number: VersionNumber
) -> VersionView:
    return version_view(await version_or_404(request.app.state.gateway, tenant, session_id, number))


@get(
    "/v1/sessions/{session_id:str}/versions/{number:int}/image",
    summary="A version's image",
    tags=["sessions"],
    **guarded(404),
)
async def get_version_image(
    request: Request, tenant: TenantId, session_id: FromPath[str], number: VersionNumber
) -> File | Response[bytes]:
    gw: Gateway = request.app.state.gateway
    version = await version_or_404(gw, tenant, session_id, number)
    found = await blob_response(gw, version.image_sha or "", f"{session_id}-v{number}", "private, max-age=3600")
    if found is None:
        raise ApiError(404, "not_found", f"Version {number} has no image.", "version")
    return found


@post("/v1/sessions/{session_id:str}/versions/{number:int}/retry", status_code=200, tags=["sessions"],
      summary="Run a failed or interrupted version again",
      **guarded(402, 404, 409, 422, 429, 502, 503, 504))  # fmt: skip
async def retry(
    request: Request, tenant: TenantId, session_id: FromPath[str], number: VersionNumber
) -> Response[EditResponse]:
    """The failed (or interrupted) version's stored inputs and settings, run again as a new version.
    `Idempotency-Key` makes a retry of the retry safe; `Prefer: respond-async` queues it (202)."""
    gw: Gateway = request.app.state.gateway

    async def run(claim: IdempotencyClaim | None) -> Answer:
        url = base_url(request, gw)
        if prefers_async(request, None):
            queued = await retry_version(gw, tenant, session_id, number, url, claim, queued=True)
            return await accepted(gw, queued)  # type: ignore[arg-type]
        return Answer.of_edit(await retry_version(gw, tenant, session_id, number, url, claim))  # type: ignore[arg-type]

    return await idempotent(request, gw, tenant, {}, None, run)


@get("/v1/sessions/{session_id:str}/compare", summary="Difference heat-map and drift between two versions",
     tags=["sessions"], **guarded(404, 422))  # fmt: skip
async def compare_versions(
    request: Request, tenant: TenantId, session_id: FromPath[str], a: VersionQuery, b: VersionQuery
) -> CompareView:
    gw: Gateway = request.app.state.gateway
    return await compare(gw, tenant, session_id, a, b, base_url(request, gw))


@delete("/v1/sessions/{session_id:str}", status_code=204, summary="Delete a session, its rows and images",
        tags=["sessions"], **guarded(404))  # fmt: skip
async def remove_session(request: Request, tenant: TenantId, session_id: FromPath[str]) -> None:
    if not await delete_session(request.app.state.gateway, tenant, session_id):
        raise ApiError(404, "not_found", f"No session {session_id!r}.", "session_id")


SESSION_HANDLERS = [
    create_session, session_edit, get_session, get_version, get_version_image, retry, compare_versions, remove_session,
]  # fmt: skip
