"""The reads ``POST /v1/route/what-if`` replays: past edits with the features their policy saw and what
they cost, and what the ledger observed of each provider. Read only; ``tenant=None`` is every tenant
(the operator's view)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, select, true, tuple_

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
    route_features: dict[str, Any]
    """What the policy saw and what the estimates price (see ``Version.route_features``)."""
    billed_usd: float
    unpriced_calls: int
    """Billed calls whose cost is the estimate (no actual)."""
    created_at: float


@dataclass(frozen=True, slots=True)
class LedgerCall:
    provider: str
    outcome: str
    provider_ms: float
    estimated_usd: float | None
    actual_usd: float | None


def _replayable(tenant: str | None, since: float, until: float) -> list[ColumnElement[bool]]:
    """Ended edits routed in ``[since, until]`` whose features were recorded: no session sources, shadow
    traffic or comparisons (the operator's and the caller's experiments, not routed traffic)."""
    compared = exists().where(Attempt.version_id == Version.id, Attempt.comparison.is_(True))
    where = [
        Version.route_features.is_not(None),
        Version.number > 0,
        Version.shadow_of.is_(None),
        Version.status.in_(ENDED),
        Version.created_at >= since,
        Version.created_at <= until,
        ~compared,
    ]
    return where if tenant is None else [Version.tenant_id == tenant, *where]


def _after(key: tuple[float, str] | None) -> ColumnElement[bool]:
    """Keyset condition of newest-first pages: rows strictly older than ``key`` in (created_at, id)."""
    return true() if key is None else tuple_(Version.created_at, Version.id) < tuple_(*key)


async def count_recorded(store: Store, tenant: str | None, since: float, until: float) -> int:
    async with store.tx() as db:
        return int(
            await db.scalar(select(func.count()).select_from(Version).where(*_replayable(tenant, since, until))) or 0
        )


async def recorded_edits(store: Store, tenant: str | None, since: float, until: float, limit: int,
                         after: tuple[float, str] | None = None) -> list[RecordedEdit]:  # fmt: skip
    """One page (newest first, after the keyset ``after``) of the edits :func:`_replayable` selects, each with
    what the ledger billed for it."""
    billed = Attempt.outcome.in_(BILLED)
    usd = func.coalesce(Attempt.actual_usd, Attempt.estimated_usd, 0.0)
    cost = (
        select(
            Attempt.version_id.label("vid"),
            func.sum(case((billed, usd), else_=0.0)).label("usd"),
            func.sum(case((billed & Attempt.actual_usd.is_(None), 1), else_=0)).label("unpriced"),
        )
        .group_by(Attempt.version_id)
        .subquery()
    )
    columns = (Version.id, Version.tenant_id, Version.session_id, Version.rule, Version.route_features,
               cost.c.usd, cost.c.unpriced, Version.created_at)  # fmt: skip
    q = (
        select(*columns)
        .outerjoin(cost, cost.c.vid == Version.id)
        .where(*_replayable(tenant, since, until), _after(after))
        .order_by(Version.created_at.desc(), Version.id.desc())
        .limit(limit)
    )
    async with store.tx() as db:
        rows = (await db.execute(q)).all()
    return [
        RecordedEdit(
            id=vid,
            tenant=tenant_id,
            session_id=sid,
            rule=rule,
            route_features=features,
            billed_usd=float(usd or 0.0),
            unpriced_calls=int(unpriced or 0),
            created_at=created,
        )
        for vid, tenant_id, sid, rule, features, usd, unpriced, created in rows
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
