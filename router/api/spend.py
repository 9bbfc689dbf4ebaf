"""``GET /v1/spend``: cost over time from the ledger, grouped by provider, model, rule or tenant, with the
daily budget that applies, and provider latency percentiles over the same buckets.

What counts is what the budgets count: attempts that may have been billed (``ok`` and ``ambiguous``), at
their actual cost where known, else the estimate. Rows are read as a stream and folded into fixed buckets,
so memory is bounded by buckets x groups; latency percentiles come from a bounded, seeded reservoir per
provider and bucket (exact while a bucket has at most ``RESERVOIR`` successful calls).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import defaultdict
from typing import Annotated, Literal

import numpy as np
from litestar import Request, get
from litestar.params import Parameter, QueryParameter
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from router.api.openapi import guarded
from router.auth import CallerDep
from router.errors import ApiError
from router.service import Gateway
from router.storage.models import Attempt, Tenant
from router.storage.store import BILLED

BUCKET_S = {"hour": 3600, "day": 86400}
MAX_BUCKETS = 2000
MAX_WINDOW_S = 366 * 86400
RESERVOIR = 1024
_SINCE = re.compile(r"^([1-9]\d{0,4})([hd])$")
GROUPS = {"provider": Attempt.provider, "model": Attempt.model, "rule": Attempt.rule, "tenant": Attempt.tenant_id}

SinceQuery = Annotated[
    str, Parameter(description="How far back: `24h`, `7d`, `30d` (hours or days, at most 366 days).")
]
BucketQuery = Annotated[Literal["hour", "day"], Parameter(description="Bucket width; buckets start on UTC hours/days.")]
GroupQuery = Annotated[Literal["provider", "model", "rule", "tenant"], Parameter(description="One series per value.")]
TenantQuery = Annotated[
    str | None,
    QueryParameter(
        name="tenant", description="Admin only: one tenant's spend (its id). Without it an admin sees every tenant."
    ),
]


class SpendSeries(BaseModel):
    key: str = Field(description="The group's value (provider, model, rule or tenant); `(none)` when unrecorded.")
    label: str = Field(description="What to show: the tenant's name for `group_by=tenant`, else the key.")
    usd: list[float] = Field(description="Cost per bucket, aligned with `buckets`.")
    attempts: list[int] = Field(description="Billed attempts per bucket.")
    total_usd: float


class LatencySeries(BaseModel):
    provider: str
    p50_ms: list[float | None] = Field(description="Provider latency of successful calls per bucket (null: none).")
    p95_ms: list[float | None]
    calls: list[int]


class SpendBudget(BaseModel):
    daily_usd: float | None = Field(description="The daily cap that applies to the tenant shown (null: none).")
    on_exceed: str
    tenants: dict[str, float] = Field(default_factory=dict, description="Admin view of every tenant: per-tenant caps.")


class SpendView(BaseModel):
    object: Literal["spend.series"] = "spend.series"
    since: int = Field(description="Start of the first bucket (epoch seconds, UTC-aligned).")
    until: int
    bucket: str
    bucket_s: int
    group_by: str
    tenant: str | None = Field(description="The tenant shown; null when an admin sees all.")
    buckets: list[int] = Field(description="Start of each bucket (epoch seconds).")
    series: list[SpendSeries]
    total_usd: float
    budget: SpendBudget
    latency: list[LatencySeries]


def parse_window(since: str, bucket: str, now: float) -> tuple[int, int]:
    """``(first bucket start, bucket count)`` for ``since`` back from ``now``; 400 naming the parameter."""
    match = _SINCE.match(since.strip())
    if not match:
        raise ApiError(400, "invalid_parameter", "since must be hours or days such as '24h' or '7d'.", "since")
    seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else 86400)
    if seconds > MAX_WINDOW_S:
        raise ApiError(400, "invalid_parameter", "since may reach back at most 366 days.", "since")
    size = BUCKET_S[bucket]
    start = int((now - seconds) // size * size)
    count = int(math.floor(now / size) - start // size) + 1
    if count > MAX_BUCKETS:
        raise ApiError(400, "invalid_parameter", f"That is {count} {bucket} buckets (at most {MAX_BUCKETS}); "
                       "use bucket=day or a shorter since.", "bucket")  # fmt: skip
    return start, count


def _percentiles(samples: list[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    p50, p95 = np.percentile(samples, [50, 95])
    return round(float(p50), 1), round(float(p95), 1)


@get("/v1/spend", summary="Cost over time from the ledger, with budgets and provider latency", tags=["spend"],
     **guarded(403))  # fmt: skip
async def get_spend(
    request: Request,
    caller: CallerDep,
    since: SinceQuery = "7d",
    bucket: BucketQuery = "day",
    group_by: GroupQuery = "provider",
    of_tenant: TenantQuery = None,
) -> SpendView:
    """Your tenant's spend per `bucket` since `since`, one series per `group_by` value, counted as budgets
    count it (billed and possibly-billed attempts, actual cost else estimate; comparisons and shadow traffic
    included). `budget` is the daily cap that applies. `latency`: p50/p95 provider latency of successful
    calls per provider and bucket. An admin key sees every tenant, or one with `tenant`; a tenant's key
    asking for another tenant gets 403."""
    gw: Gateway = request.app.state.gateway
    if of_tenant is not None and not caller.admin and of_tenant != caller.tenant:
        raise ApiError(403, "admin_required", "Only an admin key may see another tenant's spend.", "tenant")
    scope = of_tenant if of_tenant is not None else (None if caller.admin else caller.tenant)
    now = time.time()
    start, count = parse_window(since, bucket, now)
    size = BUCKET_S[bucket]
    group_col = GROUPS[group_by]
    cost = func.coalesce(Attempt.actual_usd, Attempt.estimated_usd, 0.0)
    query = select(Attempt.created_at, group_col, cost, Attempt.provider, Attempt.provider_ms, Attempt.outcome).where(
        Attempt.created_at >= start, Attempt.outcome.in_(BILLED)
    )
    if scope is not None:
        query = query.where(Attempt.tenant_id == scope)
    usd: dict[str, list[float]] = defaultdict(lambda: [0.0] * count)
    calls: dict[str, list[int]] = defaultdict(lambda: [0] * count)
    samples: dict[tuple[str, int], list[float]] = defaultdict(list)
    seen: dict[tuple[str, int], int] = defaultdict(int)
    ok_calls: dict[str, list[int]] = defaultdict(lambda: [0] * count)
    rng = random.Random(0)
    async with gw.store.tx() as db:
        rows = await db.stream(query.execution_options(yield_per=1000))
        async for created, key, usd_value, provider, provider_ms, outcome in rows:
            i = min(count - 1, max(0, int((created - start) // size)))
            if outcome in BILLED:
                name = key if key is not None else "(none)"
                usd[name][i] += float(usd_value or 0.0)
                calls[name][i] += 1
            if outcome == "ok" and provider_ms is not None:
                cell = (provider, i)
                seen[cell] += 1
                ok_calls[provider][i] += 1
                if len(samples[cell]) < RESERVOIR:
                    samples[cell].append(float(provider_ms))
                elif (j := rng.randrange(seen[cell])) < RESERVOIR:
                    samples[cell][j] = float(provider_ms)
        labels = {r[0]: r[1] for r in await db.execute(select(Tenant.id, Tenant.name))} if group_by == "tenant" else {}
    series = [
        SpendSeries(key=k, label=labels.get(k, k), usd=[round(v, 6) for v in usd[k]], attempts=calls[k],
                    total_usd=round(sum(usd[k]), 6))
        for k in sorted(usd, key=lambda k: -sum(usd[k]))
    ]  # fmt: skip
    latency = []
    for provider in sorted(ok_calls):
        pairs = [_percentiles(samples.get((provider, i), [])) for i in range(count)]
        latency.append(LatencySeries(provider=provider, p50_ms=[p[0] for p in pairs], p95_ms=[p[1] for p in pairs],
                                     calls=ok_calls[provider]))  # fmt: skip
    budgets = gw.policy.budgets
    budget = SpendBudget(
        daily_usd=budgets.limit_for(scope) if scope is not None else budgets.default_daily_usd,
        on_exceed=budgets.on_exceed,
        tenants=dict(budgets.tenants) if caller.admin and scope is None else {},
    )
    return SpendView(
        since=start, until=int(now), bucket=bucket, bucket_s=size, group_by=group_by, tenant=scope,
        buckets=[start + i * size for i in range(count)], series=series,
        total_usd=round(sum(s.total_usd for s in series), 6), budget=budget, latency=latency,
    )  # fmt: skip
