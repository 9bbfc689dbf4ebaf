"""``GET /v1/edits`` and ``GET /v1/sessions``: what a tenant has, newest first, a page at a time.

Both are tenant-scoped (an admin key lists its own tenant's rows too) and keyset-paginated on
``(created_at, id)`` with an opaque cursor, so a walk sees every row that existed when it started
exactly once even while new edits arrive: they are newer than the first page and never shift the
pages after it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.params import QueryParameter
from pydantic import BaseModel, Field

from router.api.openapi import guarded
from router.auth import TenantId
from router.cursor import decode_cursor, encode_cursor
from router.errors import ApiError
from router.models import FileRef
from router.storage.models import Version
from router.storage.store import SESSION_ID, VERSION_ID, SessionSummary

EditStatus = Literal["queued", "running", "succeeded", "failed", "interrupted", "canceled"]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Items per page, 1-100.")]
Since = Annotated[
    str | None,
    QueryParameter(description="Only what was created at or after this: epoch seconds or RFC 3339 (with an offset)."),
]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page, unchanged.")]
StatusFilter = Annotated[EditStatus | None, QueryParameter(description="Only edits in this state.")]
SessionFilter = Annotated[str | None, QueryParameter(description="Only the edits of this session.")]
ShadowFilter = Annotated[bool, QueryParameter(description="Also list the operator's shadow traffic on your edits.")]


class CostSummary(BaseModel):
    estimated_usd: float | None = None
    actual_usd: float | None = None


class EditItem(BaseModel):
    id: str
    session_id: str
    version: int
    parent_version: int | None
    status: str = Field(description="queued, running, succeeded, failed, interrupted or canceled.")
    created: int
    finished: int | None
    provider: str | None
    model: str | None
    rule: str | None
    cost: CostSummary | None = Field(description="Null until the edit has a result.")
    image: FileRef | None = Field(description="The first result image (fetch it by `url`); no base64 here.")
    error_code: str | None = Field(description="Why a failed edit failed (`GET /v1/edits/{id}` has the whole error).")
    retry_of: int | None
    shadow_of: int | None = Field(description="Set only on shadow traffic (listed with `include_shadow=true`).")


class EditPage(BaseModel):
    data: list[EditItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    has_more: bool


class SessionItem(BaseModel):
    id: str
    created: int
    expires_at: int | None
    metadata: dict[str, Any]
    version_count: int = Field(description="Versions in the tree, the uploaded source (version 0) included.")
    latest_version: int | None
    latest_status: str | None


class SessionPage(BaseModel):
    data: list[SessionItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    has_more: bool


def parse_since(value: str | None) -> float | None:
    """``since`` as epoch seconds (``1735689600``, ``1735689600.5``) or RFC 3339 (``2025-01-01T00:00:00Z``)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ApiError(400, "invalid_parameter", "since must be epoch seconds or an RFC 3339 time with an "
                           "offset, such as 2025-01-01T00:00:00Z.", "since") from None  # fmt: skip
        return moment.timestamp()
    if not math.isfinite(seconds):
        raise ApiError(400, "invalid_parameter", "since must be a finite number of epoch seconds.", "since")
    return seconds


def edit_item(v: Version) -> EditItem:
    r = v.result or {}
    error = r.get("error") if v.status != "succeeded" else None
    cost, image = r.get("cost"), r.get("image")
    return EditItem(
        id=v.id, session_id=v.session_id, version=v.number, parent_version=v.parent_number, status=v.status,
        created=int(v.created_at), finished=int(v.finished_at) if v.finished_at else None,
        provider=v.provider or (error or {}).get("provider"), model=v.model, rule=v.rule,
        cost=CostSummary.model_validate(cost) if cost else None,
        image=FileRef.model_validate(image) if image else None,
        error_code=error.get("code") if isinstance(error, dict) else None, retry_of=v.retry_of, shadow_of=v.shadow_of,
    )  # fmt: skip


def session_item(s: SessionSummary) -> SessionItem:
    row, latest = s.session, s.latest
    return SessionItem(
        id=row.id, created=int(row.created_at), expires_at=int(row.expires_at) if row.expires_at else None,
        metadata=row.meta or {}, version_count=s.version_count, latest_version=latest.number if latest else None,
        latest_status=latest.status if latest else None,
    )  # fmt: skip


@get("/v1/edits", summary="List edits, newest first", tags=["edits"], **guarded())
async def list_edits(
    request: Request,
    tenant: TenantId,
    status: StatusFilter = None,
    session_id: SessionFilter = None,
    since: Since = None,
    limit: Limit = 20,
    cursor: Cursor = None,
    include_shadow: ShadowFilter = False,
) -> EditPage:
    """Your tenant's edits (a session's uploaded source, version 0, is not an edit), filtered by
    `status`, `session_id` and `since`. Page with `cursor` = the previous page's `next_cursor`;
    a cursor that was altered is a 400 naming `cursor`. Shadow traffic only with `include_shadow=true`."""
    if session_id is not None and not SESSION_ID.fullmatch(session_id):
        raise ApiError(400, "invalid_parameter", "session_id must be a session id (ses_…).", "session_id")
    after = decode_cursor("edits", tenant, cursor, VERSION_ID) if cursor is not None else None
    rows = await request.app.state.gateway.store.list_edits(
        tenant, limit=limit + 1, after=after, status=status, session_id=session_id, since=parse_since(since),
        include_shadow=include_shadow,
    )  # fmt: skip
    page, has_more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor("edits", tenant, (page[-1].created_at, page[-1].id)) if has_more else None
    return EditPage(data=[edit_item(v) for v in page], next_cursor=next_cursor, has_more=has_more)


@get("/v1/sessions", summary="List sessions, newest first", tags=["sessions"], **guarded())
async def list_sessions(
    request: Request, tenant: TenantId, since: Since = None, limit: Limit = 20, cursor: Cursor = None
) -> SessionPage:
    """Your tenant's sessions with their version count and newest version. Page with `cursor` = the
    previous page's `next_cursor`; a cursor that was altered is a 400 naming `cursor`."""
    after = decode_cursor("sessions", tenant, cursor, SESSION_ID) if cursor is not None else None
    rows = await request.app.state.gateway.store.list_sessions(
        tenant, limit=limit + 1, after=after, since=parse_since(since)
    )
    page, has_more = rows[:limit], len(rows) > limit
    last = page[-1].session if page else None
    next_cursor = encode_cursor("sessions", tenant, (last.created_at, last.id)) if has_more and last else None
    return SessionPage(data=[session_item(s) for s in page], next_cursor=next_cursor, has_more=has_more)


LISTING_HANDLERS = [list_edits, list_sessions]
