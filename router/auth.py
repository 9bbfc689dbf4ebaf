"""Who is calling: ``Authorization: Bearer KEY`` resolves to a tenant.

With no key created yet, the embedded default runs as one development tenant (and says so at
start-up); the moment a key exists, every ``/v1`` call needs a valid one.
"""

from __future__ import annotations

from litestar import Request
from litestar.di import NamedDependency

from router.errors import ApiError


async def resolve_tenant(request: Request) -> str:
    gw = request.app.state.gateway
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if key:
        tenant = await gw.store.tenant_for_key(key)
        if tenant:
            return tenant
    if await gw.store.keys_ever_created():
        if key:
            raise ApiError(401, "invalid_api_key", "The API key is not valid or has been revoked.")
        raise ApiError(401, "missing_api_key", "Send your editgate API key as 'Authorization: Bearer KEY'.")
    return gw.dev_tenant


TenantId = NamedDependency[str]
"""Annotate a handler parameter ``tenant: TenantId`` to receive the caller's tenant."""
