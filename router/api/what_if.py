"""``POST /v1/route/what-if``: what a candidate policy would have done with past edits (see
:mod:`policies.what_if` for the arithmetic and what in it is an estimate)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import anyio
from litestar import Request, post
from litestar.openapi import ResponseSpec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from router.api.openapi import body_operation, guarded
from router.auth import ADMIN_REQUIRED, CallerDep
from router.errors import ApiError
from router.intake.request import read_json_object
from router.service import Gateway
from router.storage.store import TENANT_NAME, TENANT_NAME_RULE
from router.what_if import parse_since, read_candidate, what_if

ALL_TENANTS = "*"
CONCURRENT_REPLAYS = 2
"""Replays (and policy parses) running at once per process; more wait their turn, so many requests at once
cannot multiply a replay's memory (a page of edits, the window's ledger calls) or take every CPU."""


class WhatIfIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str = Field(description="The candidate policy file's YAML text (as `editgate policy check` reads it).")
    since: str = Field("7d", description="The window's start: `Nd`, `Nh`, or an ISO-8601 time with an offset. "
                       "It ends now.")  # fmt: skip
    tenant: str | None = Field(None, description="Whose edits (default: the key's tenant). Another "
                               "tenant, or `*` for every tenant, needs an admin key.")  # fmt: skip


class WhatIfRoute(BaseModel):
    rule: str | None
    provider: str | None = Field(description="null in `to`: the candidate refuses these edits.")


WhatIfMove = create_model(
    "WhatIfMove",
    __doc__="Edits whose route the candidate changes, from the recorded rule and first candidate to the new ones.",
    **{"from": (WhatIfRoute, ...), "to": (WhatIfRoute, ...), "count": (int, ...)},  # type: ignore[call-overload]
)


class WhatIfRuleCost(BaseModel):
    rule: str = Field(description="A rule of the candidate policy (`default` when none matches).")
    edits: int
    before_usd: float
    after_usd: float


class WhatIfCost(BaseModel):
    before_usd: float = Field(description="What these edits cost: their billed ledger rows, at actual cost.")
    after_usd: float = Field(description="Unchanged edits at their recorded cost; moved ones at today's estimate "
                             "of their new first candidate; refused ones at 0.")  # fmt: skip
    delta_usd: float
    after_interval95_usd: list[float] = Field(
        min_length=2, max_length=2, description="95 % interval of the after cost (observed actual/estimate spread)."
    )
    per_rule: list[WhatIfRuleCost]


class WhatIfRefusal(BaseModel):
    code: str = Field(description="The error the candidate would answer these edits with.")
    count: int


class WhatIfCapabilityDrop(BaseModel):
    capability: str = Field(description="A capability whose lack made the candidate's route drop a provider.")
    count: int


class WhatIfObserved(BaseModel):
    edits: int = Field(description="Calls to this provider ledgered in the window.")
    p50_ms: float | None
    p95_ms: float | None
    failure_rate: float | None = Field(description="Share of those calls that returned no image.")


class WhatIfProvider(BaseModel):
    provider: str
    edits_before: int
    edits_after: int
    observed: WhatIfObserved


class WhatIfWindow(BaseModel):
    since: str = Field(description="ISO 8601, UTC.")
    until: str = Field(description="ISO 8601, UTC: when the replay ran.")


class WhatIfPolicy(BaseModel):
    version: str
    digest: str


class WhatIfReport(BaseModel):
    """The candidate policy replayed over the window's edits."""

    object: Literal["route.what_if"]
    window: WhatIfWindow
    policy: WhatIfPolicy = Field(description="The candidate's `version` and `digest`.")
    edits: int
    unchanged: int
    changed: int
    moves: list[WhatIfMove]  # type: ignore[valid-type]
    cost: WhatIfCost
    refusals: list[WhatIfRefusal]
    capability_drops: list[WhatIfCapabilityDrop] = Field(description="On edits whose route changes.")
    providers: list[WhatIfProvider]
    estimates: list[str] = Field(description="Which numbers are estimates, in words.")


_SPEC = guarded(403, 422)
_SPEC["responses"][200] = ResponseSpec(WhatIfReport, description="The replay's report.", generate_examples=False)


def _body(raw: dict[str, Any]) -> WhatIfIn:
    try:
        return WhatIfIn.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
        param = ".".join(str(p) for p in exc.errors()[0]["loc"]) or None
        raise ApiError(400, "invalid_parameter", f"Invalid request: {'; '.join(problems)}.", param) from None


def _scope(asked: str | None, tenant: str, admin: bool) -> str | None:
    """Whose edits: the caller's, another tenant's or every tenant's (None), the last two for admin keys."""
    if asked is None or asked == tenant:
        return tenant
    if not admin:
        raise ApiError(403, "admin_required", ADMIN_REQUIRED, "tenant")
    if asked == ALL_TENANTS:
        return None
    if not TENANT_NAME.match(asked):
        raise ApiError(422, "invalid_parameter", f"tenant: {TENANT_NAME_RULE}, or '*' for every tenant.", "tenant")
    return asked


DESCRIPTION = (
    "Replays the recorded features of the window's edits through the candidate policy with today's prices, "
    "calling no provider: which edits change route and from where to where, the cost before and after (total, "
    "per rule, with a 95 % interval from the observed actual/estimate spread), the refusals and capability drops "
    "it would cause, and each provider's observed latency and failure rate. The decision is exact; `estimates` "
    "says which numbers are not. A key replays its own tenant's edits; an admin key may name another tenant, or "
    "`*` for all."
)


@post("/v1/route/what-if", status_code=200, summary="Replay past edits through a candidate policy", tags=["routing"],
      description=DESCRIPTION, operation_class=body_operation({"application/json": WhatIfIn.model_json_schema()}),
      **_SPEC)  # fmt: skip
async def route_what_if(request: Request, caller: CallerDep) -> dict[str, Any]:
    """See :data:`DESCRIPTION`; the arithmetic is :mod:`policies.what_if`."""
    gw: Gateway = request.app.state.gateway
    body = _body(await read_json_object(request))
    tenant = _scope(body.tenant, caller.tenant, caller.admin)
    until = time.time()
    since = parse_since(body.since, until)
    capabilities = {name: provider.capabilities for name, provider in gw.providers.items()}
    async with request.app.state.setdefault("what_if_slots", asyncio.Semaphore(CONCURRENT_REPLAYS)):
        candidate = await anyio.to_thread.run_sync(read_candidate, body.policy)
        report = await what_if(gw.store, candidate, capabilities, gw.prices, tenant, since, until,
                               gw.forced_provider, anyio.to_thread.run_sync)  # fmt: skip
    return WhatIfReport.model_validate(report).model_dump()
