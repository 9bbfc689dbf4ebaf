"""Health, readiness and the chip list."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import structlog
from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST

from router.auth import metrics_guard
from router.chips import CHIP_SENTENCES
from router.service import Gateway

log = structlog.get_logger("editgate.meta")
SCRAPE_DB_TIMEOUT_S = 2.0
"""A scrape never waits longer than this on the database (Prometheus's own timeout is ~10 s)."""


@get("/healthz", summary="Liveness", tags=["meta"])
async def healthz() -> dict[str, Any]:
    """Alive; ``pid`` tells the worker processes of ``serve --workers N`` apart."""
    return {"status": "ok", "pid": os.getpid()}


@get("/readyz", summary="Readiness", tags=["meta"])
async def readyz(request: Request) -> Response[dict[str, Any]]:
    gw: Gateway = request.app.state.gateway
    data_dir = gw.settings.data_dir
    checks = {
        "data_dir_writable": os.access(data_dir, os.W_OK),
        "policy_loaded": bool(gw.policy.rules is not None and gw.policy.default_route),
        "providers": sorted(gw.providers),
    }
    ok = checks["data_dir_writable"] and checks["policy_loaded"] and bool(gw.providers)
    limits = gw.resources.limits
    if gw.settings.redis_url:  # without Redis this replica serves on its own limits: degraded, not down
        checks["redis"] = "up" if await limits.check() else "unreachable: limits are this replica's own"
    status = "not_ready" if not ok else "ok" if checks.get("redis", "up") == "up" else "degraded"
    return Response({"status": status, **checks}, status_code=200 if ok else 503)


@get("/metrics", summary="Prometheus metrics", tags=["meta"], media_type=CONTENT_TYPE_LATEST, guards=[metrics_guard])
async def metrics(request: Request) -> Response[bytes]:
    gw: Gateway = request.app.state.gateway
    try:
        queued: int | None = await asyncio.wait_for(gw.lifecycle.queued_count(), SCRAPE_DB_TIMEOUT_S)
    except Exception:  # the database is down or stuck: the scrape still answers, and says so
        log.warning("metrics_database_unreachable", exc_info=True)
        queued = None
    budgets = gw.policy.budgets
    caps = {**({"": budgets.default_daily_usd} if budgets.default_daily_usd is not None else {}), **budgets.tenants}
    gw.metrics.scraped(queued=queued, budgets=caps)
    return Response(gw.metrics.exposition(gw.resources.breakers.states()), media_type=CONTENT_TYPE_LATEST)


@get("/v1/chips", summary="Protection chips and their invariant sentences", tags=["edits"])
async def chips() -> dict[str, str]:
    return CHIP_SENTENCES
