"""``GET /v1/files/{id}``: stored images (inputs after intake, and results)."""

from __future__ import annotations

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import File

from router.api.openapi import guarded
from router.auth import TenantId
from router.errors import ApiError
from router.intake.sniff import sniff
from router.service import Gateway

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@get("/v1/files/{file_id:str}", summary="Download a stored image", tags=["files"], **guarded(404))
async def get_file(request: Request, tenant: TenantId, file_id: FromPath[str]) -> File:
    gw: Gateway = request.app.state.gateway
    path = gw.blobs.path(file_id)
    if path is None or not await gw.store.owns_blob(tenant, file_id):  # path() also rejects non-sha ids
        raise ApiError(404, "not_found", f"No file {file_id!r}.", "file_id")
    with path.open("rb") as fh:
        head = fh.read(32)
    fmt = sniff(head)
    return File(
        path=path,
        media_type=_MIME.get(fmt, "application/octet-stream"),
        filename=f"{file_id}.{fmt if fmt in _MIME else 'bin'}",
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )
