"""The reads ``POST /v1/route/what-if`` replays: past edits with the features their policy saw and what
they cost, and what the ledger observed of each provider. Read only; ``tenant=None`` is every tenant
(the operator's view)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, exists, func, select

from router.storage.models import Attempt, Version
from router.storage.store import BILLED, Store

ENDED = ("succeeded", "failed", "interrupted", "canceled")
"""Edits whose cost is final."""


@dataclass(frozen=True, slots=True)
class RecordedEdit:
    id: str
    tenant: str
    session_id: str
    rule: str | None
    prompt: str
    chips: list[str]
    experiment_key: str | None
    route_features: dict[str, Any]
    route: dict[str, Any]
    """The recorded route (``record.route``): candidates in order, dropped, trace."""
    billed_usd: float
    unpriced_calls: int
    """Billed calls whose cost is the estimate (no actual)."""


@dataclass(frozen=True, slots=True)
class LedgerCall:
    provider: str
    outcome: str
    provider_ms: float
    estimated_usd: float | None
    actual_usd: float | None


async def recorded_edits(store: Store, tenant: str | None, since: float, until: float, limit: int
                         ) -> list[RecordedEdit]:  # fmt: skip
    """Up to ``limit`` ended edits routed in ``[since, until]`` whose features were recorded: no session
    sources, shadow traffic or comparisons (those are the operator's and the caller's experiments, not
    routed traffic)."""
    billed = Attempt.outcome.in_(BILLED)
    cost = (
        select(
            Attempt.version_id.label("vid"),
            func.sum(case((billed, func.coalesce(Attempt.actual_usd, Attempt.estimated_usd, 0.0)), else_=0.0)).label(
                "usd"
            ),
            func.sum(case((billed & Attempt.actual_usd.is_(None), 1), else_=0)).label("unpriced"),
        )
        .group_by(Attempt.version_id)
        .subquery()
    )
    compared = exists().where(Attempt.version_id == Version.id, Attempt.comparison.is_(True))
    q = (
        select(Version, cost.c.usd, cost.c.unpriced)
        .outerjoin(cost, cost.c.vid == Version.id)
        .where(
            Version.route_features.is_not(None),
            Version.number > 0,
            Version.shadow_of.is_(None),
            Version.status.in_(ENDED),
            Version.created_at >= since,
            Version.created_at <= until,
            ~compared,
        )
    )
    if tenant is not None:
        q = q.where(Version.tenant_id == tenant)
    async with store.tx() as db:
        rows = (await db.execute(q.order_by(Version.created_at.desc()).limit(limit))).all()
    return [
        RecordedEdit(
            id=v.id,
            tenant=v.tenant_id,
            session_id=v.session_id,
            rule=v.rule,
            prompt=v.prompt or "",
            chips=list(v.chips or []),
            experiment_key=(v.settings or {}).get("experiment_key"),
            route_features=v.route_features,
            route=(v.result or {}).get("route") or {},
            billed_usd=float(usd or 0.0),
            unpriced_calls=int(unpriced or 0),
        )
        for v, usd, unpriced in rows
    ]


async def ledger_calls(store: Store, tenant: str | None, since: float, until: float, limit: int) -> list[LedgerCall]:
    """The newest ``limit`` provider calls ledgered in ``[since, until]``, comparisons and shadows included
    (they are real calls: a provider that only shadow traffic reached is still observed)."""
    q = select(Attempt.provider, Attempt.outcome, Attempt.provider_ms, Attempt.estimated_usd, Attempt.actual_usd).where(
        Attempt.created_at >= since, Attempt.created_at <= until
    )
    if tenant is not None:
        q = q.where(Attempt.tenant_id == tenant)
    async with store.tx() as db:
        rows = (await db.execute(q.order_by(Attempt.id.desc()).limit(limit))).all()
    return [LedgerCall(*row) for row in rows]
