"""The webhook outbox and its neighbours, as queries: endpoints, the tenant's secret, delivery rows.

:func:`enqueue` runs inside the caller's transaction (the one that writes an edit's terminal state), so a
state change and its messages commit together or not at all. Workers claim due rows with a conditional
UPDATE (the lease), which is safe with any number of processes on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, event, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from router.storage.models import Version, WebhookDelivery, WebhookEndpoint, WebhookSecret
from router.storage.store import Store, new_id
from router.webhooks.signing import new_secret

TERMINAL = ("succeeded", "failed", "interrupted", "canceled")
MAX_ENDPOINTS = 10


@dataclass(slots=True)
class Wakeup:
    """Called after a transaction that enqueued commits, so workers deliver at once instead of at their next
    poll. Each worker registers a thread-safe callback (an app may run on another thread's loop)."""

    listeners: set[Callable[[], None]] = field(default_factory=set)

    def notify(self) -> None:
        for listener in list(self.listeners):
            listener()


WAKEUP = Wakeup()


def _wake(_session: Any) -> None:
    WAKEUP.notify()


def event_type(status: str) -> str:
    return f"edit.{status}"


def payload(status: str, record: dict[str, Any], now: float) -> str:
    """The Standard Webhooks envelope: ``type``, ``timestamp``, ``data`` (the record, as GET /v1/edits/{id})."""
    stamp = datetime.fromtimestamp(now, tz=UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": event_type(status), "timestamp": stamp, "data": record}, separators=(",", ":"))


async def _ensure_secret(db: AsyncSession, tenant: str) -> tuple[str, bool]:
    """The tenant's secret, made now if it has none (True: just made, to be shown once)."""
    found = await db.scalar(select(WebhookSecret.secret).where(WebhookSecret.tenant_id == tenant))
    if found:
        return found, False
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    secret = new_secret()
    row = {"tenant_id": tenant, "secret": secret, "created_at": time.time()}
    await db.execute(insert(WebhookSecret).values(row).on_conflict_do_nothing())
    stored = await db.scalar(select(WebhookSecret.secret).where(WebhookSecret.tenant_id == tenant))
    return stored or secret, stored == secret


async def enqueue(db: AsyncSession, version: Version, record: dict[str, Any]) -> int:
    """Queue the terminal-state message for the request's ``webhook_url`` and the tenant's endpoints, in
    the caller's transaction (the caller commits). Shadow traffic is the operator's: never sent."""
    status = str(record.get("status") or version.status)
    if status not in TERMINAL or version.shadow_of is not None:
        return 0
    urls: dict[str, str | None] = {}
    if request_url := (version.settings or {}).get("webhook_url"):
        urls[request_url] = None
    for endpoint in await db.scalars(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == version.tenant_id)):
        urls.setdefault(endpoint.url, endpoint.id)
    if not urls:
        return 0
    await _ensure_secret(db, version.tenant_id)
    now = time.time()
    body = payload(status, record, now)
    for url, endpoint in urls.items():
        db.add(WebhookDelivery(id=new_id("whd"), tenant_id=version.tenant_id, version_id=version.id,
                               endpoint_id=endpoint, url=url, event_type=event_type(status), payload=body,
                               webhook_id=new_id("msg"), attempts=0, status="pending", next_attempt_at=now,
                               history=[], created_at=now))  # fmt: skip
    if not db.info.get("webhook_wake"):
        db.info["webhook_wake"] = True
        event.listen(db.sync_session, "after_commit", _wake, once=True)
    return len(urls)


# --- secrets and endpoints (the CLI and request-time checks) ------------------------------------------


async def ensure_secret(store: Store, tenant: str) -> tuple[str, bool]:
    async with store.tx() as db:
        found = await _ensure_secret(db, tenant)
        await db.commit()
        return found


async def rotate_secret(store: Store, tenant: str) -> str:
    """A new secret; deliveries from now on are signed with it (receivers switch when they see it)."""
    secret = new_secret()
    async with store.tx() as db:
        await db.execute(delete(WebhookSecret).where(WebhookSecret.tenant_id == tenant))
        db.add(WebhookSecret(tenant_id=tenant, secret=secret, created_at=time.time()))
        await db.commit()
    return secret


async def add_endpoint(store: Store, tenant: str, url: str) -> tuple[str, str, bool]:
    """(endpoint id, the tenant's secret, whether the secret was just made)."""
    tenant_id = await store.ensure_tenant(tenant)
    async with store.tx() as db:
        existing = list(await db.scalars(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)))
        if any(e.url == url for e in existing):
            raise ValueError(f"{url} is already registered for tenant {tenant}")
        if len(existing) >= MAX_ENDPOINTS:
            raise ValueError(f"tenant {tenant} has {MAX_ENDPOINTS} endpoints already; remove one first")
        endpoint_id = new_id("whe")
        db.add(WebhookEndpoint(id=endpoint_id, tenant_id=tenant_id, url=url, created_at=time.time()))
        secret, made = await _ensure_secret(db, tenant_id)
        await db.commit()
    return endpoint_id, secret, made


async def list_endpoints(store: Store, tenant: str | None = None) -> list[WebhookEndpoint]:
    async with store.tx() as db:
        q = select(WebhookEndpoint).order_by(WebhookEndpoint.tenant_id, WebhookEndpoint.created_at)
        if tenant is not None:
            q = q.where(WebhookEndpoint.tenant_id == tenant)
        return list(await db.scalars(q))


async def remove_endpoint(store: Store, endpoint_id: str, tenant: str | None = None) -> int:
    """Remove an endpoint; deliveries already queued for it still run (they were promised)."""
    async with store.tx() as db:
        q = delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        if tenant is not None:
            q = q.where(WebhookEndpoint.tenant_id == tenant)
        result = await db.execute(q)
        await db.commit()
        return result.rowcount  # type: ignore[attr-defined]


# --- the worker's side ------------------------------------------------------------------------------------


async def claim(store: Store, owner: str, lease_s: float, limit: int) -> list[WebhookDelivery]:
    """Due rows this process now holds: each taken by an UPDATE that succeeds only if nobody holds it."""
    now = time.time()
    free = or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
    due = (WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now, free)
    async with store.tx() as db:
        ids = list(
            await db.scalars(
                select(WebhookDelivery.id).where(*due).order_by(WebhookDelivery.next_attempt_at).limit(limit)
            )
        )
        mine: list[str] = []
        for delivery_id in ids:
            taken = await db.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, *due)
                .values(lease_owner=owner, lease_until=now + lease_s)
            )
            if taken.rowcount:  # type: ignore[attr-defined]
                mine.append(delivery_id)
        await db.commit()
        if not mine:
            return []
        return list(await db.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(mine))))


async def record_attempt(store: Store, delivery: WebhookDelivery, owner: str, entry: dict[str, Any],
                         status: str, next_at: float | None) -> bool:  # fmt: skip
    """Write one attempt's outcome and release the lease; False if the lease was lost meanwhile."""
    now = time.time()
    values: dict[str, Any] = {
        "attempts": delivery.attempts + 1,
        "status": status,
        "next_attempt_at": next_at,
        "last_status_code": entry.get("status_code"),
        "last_error": (entry.get("error") or None) and str(entry["error"])[:300],
        "lease_owner": None,
        "lease_until": None,
        "history": [*(delivery.history or []), entry],
        "finished_at": now if status != "pending" else None,
    }
    async with store.tx() as db:
        done = await db.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id, WebhookDelivery.lease_owner == owner)
            .values(**values)
        )
        await db.commit()
        return bool(done.rowcount)  # type: ignore[attr-defined]


async def release(store: Store, owner: str) -> None:
    """Give back what this process holds (shutdown), so another process takes it now, not after the lease."""
    async with store.tx() as db:
        await db.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.lease_owner == owner, WebhookDelivery.status == "pending")
            .values(lease_owner=None, lease_until=None)
        )
        await db.commit()


async def deliveries_for(store: Store, tenant: str, version_id: str) -> list[WebhookDelivery]:
    async with store.tx() as db:
        q = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant, WebhookDelivery.version_id == version_id)
        return list(await db.scalars(q.order_by(WebhookDelivery.created_at, WebhookDelivery.id)))


async def prune(store: Store, older_than: float) -> int:
    """Forget finished deliveries past retention (their payload holds the edit's record)."""
    async with store.tx() as db:
        result = await db.execute(
            delete(WebhookDelivery).where(WebhookDelivery.status != "pending", WebhookDelivery.finished_at < older_than)
        )
        await db.commit()
        return result.rowcount  # type: ignore[attr-defined]
