"""``GET /v1/files/{id}``: stored images (inputs after intake, and results), with the API key or a signed link."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from litestar import Request, Response, get
from litestar.params import FromPath, QueryParameter
from litestar.response import File

from providers.imaging import MIME
from router.api.openapi import guarded
from router.auth import resolve_caller
from router.errors import ApiError
from router.intake.sniff import SNIFF_BYTES, stored_format
from router.service import Gateway

_DOCUMENT_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                     "X-Content-Type-Options": "nosniff"}  # fmt: skip
"""An SVG is a document that may carry script: opened from editgate's origin, it runs sandboxed, with nothing
allowed but its own inline styles (in an ``<img>``, as the console shows it, script never runs)."""


async def blob_response(gw: Gateway, sha: str, filename_stem: str, cache: str) -> File | Response[bytes] | None:
    """A stored image as an inline download: the file itself from disk (no copy in memory), the bytes from an
    object store. None when it is gone."""
    path = gw.blobs.path(sha)
    if path is not None:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
        data = None
    else:
        data = await gw.workers.run(partial(gw.blobs.get, sha))
        if data is None:
            return None
        head = data[:SNIFF_BYTES]
    fmt = stored_format(head)
    media_type = MIME[fmt] if fmt else "application/octet-stream"
    filename = f"{filename_stem}.{fmt or 'bin'}"
    headers = {"Cache-Control": cache, **(_DOCUMENT_HEADERS if fmt == "svg" else {})}
    if path is not None:
        return File(path=path, media_type=media_type, filename=filename, content_disposition_type="inline",
                    headers=headers)  # fmt: skip
    return Response(
        data, media_type=media_type, headers={**headers, "Content-Disposition": f'inline; filename="{filename}"'}
    )


@get("/v1/files/{file_id:str}", summary="Download a stored image", tags=["files"], **guarded(403, 404))
async def get_file(
    request: Request,
    file_id: FromPath[str],
    link_tenant: Annotated[
        str | None, QueryParameter(name="tenant", description="Signed links only: the tenant the link is for.")
    ] = None,
    session: Annotated[str | None, QueryParameter(description="Signed links only: the session it shows.")] = None,
    expires: Annotated[int | None, QueryParameter(description="Signed links only: expiry, Unix seconds.")] = None,
    signature: Annotated[str | None, QueryParameter(description="Signed links only: `KID.MAC`.")] = None,
) -> File | Response[bytes]:
    """With the API key, or without it through a signed link (`?url_style=signed` on any endpoint returns
    them): `tenant`, `expires` and `signature` as given. A tampered or expired link is 403; a link to an image
    whose session was deleted is 404."""
    gw: Gateway = request.app.state.gateway
    if signature is not None or expires is not None:
        if signature is None or expires is None or link_tenant is None or session is None:
            raise ApiError(403, "invalid_signature", "A signed link needs tenant, expires and signature.", "signature")
        gw.links.verify(link_tenant, session, file_id, expires, signature)  # type: ignore[union-attr]
        owner, in_session, cache = link_tenant, session, "private, max-age=60"
    else:
        owner, in_session, cache = (await resolve_caller(request)).tenant, None, "private, max-age=31536000, immutable"
    if (
        not await gw.store.owns_blob(owner, file_id, in_session)
        or (found := await blob_response(gw, file_id, file_id, cache)) is None
    ):
        raise ApiError(404, "not_found", f"No file {file_id!r}.", "file_id")
    return found
