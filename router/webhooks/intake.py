"""A request's ``webhook_url``, checked where the request arrives: a URL webhooks may not call is a 422
before anything is paid for, and the tenant's signing secret is made on first use (shown once)."""

from __future__ import annotations

from litestar import Response

from router.errors import ApiError
from router.settings import WebhookSettings
from router.storage.store import Store
from router.webhooks.guard import Refused, Resolver, check, system_resolver
from router.webhooks.outbox import ensure_secret

SECRET_HEADER = "x-editgate-webhook-secret"  # noqa: S105 - a name, not a secret


async def accept_webhook_url(store: Store, settings: WebhookSettings, tenant: str, url: str | None,
                             resolve: Resolver = system_resolver) -> str | None:  # fmt: skip
    """The tenant's secret when this call made it (to show once), else None; 422 for a refused URL."""
    if not url:
        return None
    try:
        await check(url, settings.allow_private, resolve)
    except Refused as exc:
        raise ApiError(422, "invalid_webhook_url", f"webhook_url: {exc}.", "webhook_url") from None
    secret, made = await ensure_secret(store, tenant)
    return secret if made else None


def show_secret(response: Response, secret: str | None) -> Response:
    """The first response that made the tenant's secret carries it, once (`editgate webhooks secret` shows it
    again to the operator)."""
    if secret:
        response.headers[SECRET_HEADER] = secret
    return response
