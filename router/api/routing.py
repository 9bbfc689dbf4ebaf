"""``POST /v1/route/explain`` (the decision a request would get, nothing called or stored) and
``GET /v1/policy`` (what is running)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post

from policies import RouteDecision
from policies.view import tenant_view
from router.api.openapi import EditOperation, guarded
from router.auth import CallerDep, TenantId
from router.costs import over_cap
from router.intake.prepare import prepare
from router.intake.request import parse_edit_request
from router.service import Gateway, route, usage_inputs
from router.sessions import resolve_parent


@post("/v1/route/explain", status_code=200, summary="Explain the routing decision for a request",
      tags=["routing"], operation_class=EditOperation, **guarded(404, 413, 415, 422))  # fmt: skip
async def explain_route(request: Request, tenant: TenantId) -> dict[str, Any]:
    """Takes exactly what `POST /v1/edits` takes and runs the same intake and decision, with the live
    breaker states and today's spend, but calls no provider and stores nothing."""
    gw: Gateway = request.app.state.gateway
    req, raw = await parse_edit_request(request)
    session_provider = parent = None
    if req.session_id:
        parent, raw.image = await resolve_parent(gw, tenant, req.session_id, req.parent_version)
        session_provider = parent.provider
    p = await gw.workers.run(lambda: prepare(req, raw, gw.settings.limits, tenant))
    decision = await route(gw, p, tenant, req.session_id, session_provider, parent=parent)
    return {
        "decision": decision.model_dump(),
        "cost_cap": _cap_view(decision, req.max_cost_usd),
        "features": p.features.model_copy(update={"session_provider": session_provider, "tenant": tenant}).model_dump(),
        "usage_inputs": {"out_w": usage_inputs(p).out_w, "out_h": usage_inputs(p).out_h, "quality": req.quality},
        "breakers": gw.resources.breakers.states(),
    }


def _cap_view(decision: RouteDecision, cap: float | None) -> dict[str, Any] | None:
    """What the request's ``max_cost_usd`` would do to this route: refuse it, or keep fallbacks from being called."""
    if cap is None:
        return None
    first, *rest = decision.candidates or [None]
    return {"max_cost_usd": cap, "refused": first is not None and over_cap(first, cap),
            "fallbacks_not_taken": [c.provider for c in rest if c is not None and over_cap(c, cap)]}  # fmt: skip


@get("/v1/policy", summary="The running routing policy", tags=["routing"], **guarded(403))
async def get_policy(request: Request, caller: CallerDep) -> dict[str, Any]:
    """An admin key sees the whole policy and its reload status; a tenant's key sees what applies to it."""
    gw: Gateway = request.app.state.gateway
    policy = gw.policy
    reloader = getattr(request.app.state, "reloader", None)
    if not caller.admin:
        view = tenant_view(policy, caller.tenant, gw.providers)
        breakers = gw.resources.breakers.states()
        details = gw.resources.breakers.details()
        return {**view, "forced_provider": gw.forced_provider,
                "breakers": {name: state for name, state in breakers.items() if name in view["providers"]},
                "breaker_details": {n: d for n, d in details.items() if n in view["providers"]}}  # fmt: skip
    return {
        "version": policy.version,
        "digest": policy.digest,
        "source": str(gw.settings.policy_file) if gw.settings.policy_file else "packaged default.yaml",
        "loaded_at": int(reloader.loaded_at) if reloader else None,
        "forced_provider": gw.forced_provider,
        "providers": {n: p.model_dump() for n, p in policy.providers.items()},
        "configured": sorted(gw.providers),
        "rules": [r.model_dump() for r in policy.rules],
        "default_route": [policy.default_route, *policy.default_fallbacks],
        "experiments": [e.model_dump() for e in policy.experiments],
        "budgets": policy.budgets.model_dump(),
        "breakers": gw.resources.breakers.states(),
        "breaker_details": gw.resources.breakers.details(),
        "pricing_version": gw.prices.version,
        "reload": reloader.status() if reloader else None,
    }
