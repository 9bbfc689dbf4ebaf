"""``GET /v1/edits/{id}/deliveries``: the webhook delivery log of one edit (the caller's own)."""

from __future__ import annotations

from litestar import Request, get
from litestar.params import FromPath
from pydantic import BaseModel, Field

from router.api.openapi import guarded
from router.auth import TenantId
from router.errors import ApiError
from router.service import Gateway
from router.storage.models import WebhookDelivery
from router.storage.store import VERSION_ID
from router.webhooks.outbox import deliveries_for


class DeliveryAttempt(BaseModel):
    at: float = Field(description="When the attempt started (epoch seconds).")
    status_code: int | None = Field(description="The receiver's HTTP status; null when no answer came.")
    error: str | None = Field(description="Why it did not count as delivered (non-2xx, timeout, refused).")
    duration_ms: float
    next_attempt_at: float | None = Field(description="When the next attempt is due; null when none follows.")


class DeliveryView(BaseModel):
    id: str
    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt of this message.")
    url: str
    endpoint_id: str | None = Field(description="The registered endpoint; null for the request's `webhook_url`.")
    event_type: str
    status: str = Field(description="pending, delivered, or failed (the retry window closed).")
    attempts: int
    next_attempt_at: float | None
    created: float
    finished_at: float | None
    history: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    data: list[DeliveryView]


def delivery_view(d: WebhookDelivery) -> DeliveryView:
    return DeliveryView(
        id=d.id, webhook_id=d.webhook_id, url=d.url, endpoint_id=d.endpoint_id, event_type=d.event_type,
        status=d.status, attempts=d.attempts, next_attempt_at=d.next_attempt_at, created=d.created_at,
        finished_at=d.finished_at, history=[DeliveryAttempt(**h) for h in d.history or []],
    )  # fmt: skip


@get("/v1/edits/{edit_id:str}/deliveries", summary="Webhook deliveries of an edit", tags=["edits"], **guarded(404))
async def edit_deliveries(request: Request, tenant: TenantId, edit_id: FromPath[str]) -> DeliveryList:
    """Every webhook message sent for this edit, with each attempt's time, status code, error and the next
    attempt's time."""
    gw: Gateway = request.app.state.gateway
    version = await gw.store.version_by_id(tenant, edit_id) if VERSION_ID.match(edit_id) else None
    if version is None or version.number == 0:
        raise ApiError(404, "not_found", f"No edit {edit_id!r}.", "edit_id")
    return DeliveryList(data=[delivery_view(d) for d in await deliveries_for(gw.store, tenant, edit_id)])
