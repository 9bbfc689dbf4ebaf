"""Who is calling: ``Authorization: Bearer KEY`` resolves to a tenant, and to the admin scope when the key
carries it (``editgate keys create --admin``).

With no key created yet, the embedded default runs as one development tenant (and says so at
start-up), which is also the operator: everything works locally. The moment a key exists, every
``/v1`` call needs a valid one, and what is the operator's (the whole policy, its reload status,
``/metrics`` with ``EDITGATE_METRICS_AUTH``) needs an admin key.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler

from router.errors import ApiError


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    admin: bool


async def resolve_caller(connection: ASGIConnection) -> Caller:  # type: ignore[type-arg]
    """The caller of this request, resolved once and kept on the request's state."""
    cached = connection.state.get("caller")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    gw = connection.app.state.gateway
    header = connection.headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else ""
    keys = await gw.store.keys_ever_created()  # with no key ever created, a presented one cannot match
    found = await gw.store.caller_for_key(key) if key and keys else None
    if found:
        caller = Caller(tenant=found[0], admin=found[1])
    elif keys:
        if key:
            raise ApiError(401, "invalid_api_key", "The API key is not valid or has been revoked.")
        raise ApiError(401, "missing_api_key", "Send your editgate API key as 'Authorization: Bearer KEY'.")
    else:
        caller = Caller(tenant=gw.dev_tenant, admin=True)
    connection.state["caller"] = caller
    return caller


async def provide_caller(request: Request) -> Caller:
    return await resolve_caller(request)


async def provide_tenant(request: Request) -> str:
    return (await resolve_caller(request)).tenant


ADMIN_REQUIRED = (
    "This needs an admin key: send 'Authorization: Bearer KEY' with a key made by `editgate keys create --admin`."
)


async def require_admin(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Guard of operator-only endpoints: 401 without a valid key, 403 with a tenant's key."""
    if not (await resolve_caller(connection)).admin:
        raise ApiError(403, "admin_required", ADMIN_REQUIRED)


async def metrics_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """``/metrics`` is open unless ``EDITGATE_METRICS_AUTH=true``; then it is an admin endpoint."""
    if connection.app.state.gateway.settings.metrics_auth:
        await require_admin(connection, handler)


TenantId = NamedDependency[str]
"""Annotate a handler parameter ``tenant: TenantId`` to receive the caller's tenant."""

CallerDep = NamedDependency[Caller]
"""Annotate a handler parameter ``caller: CallerDep`` to receive the tenant and its scope."""
