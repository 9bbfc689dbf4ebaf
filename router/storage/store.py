"""Every query the gateway makes, each in its own short transaction. Every read takes the tenant, so
no call can reach another tenant's rows: a foreign id looks exactly like a missing one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, delete, exists, func, or_, select, true, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from router.storage.models import ApiKey, Attempt, Blob, EditSession, Feedback, Idempotency, Tenant, Version

DEV_TENANT = "dev"
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
TENANT_NAME_RULE = (
    "a tenant name is 1-40 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
)
SESSION_ID = re.compile(r"^ses_[0-9a-f]{32}$")
VERSION_ID = re.compile(r"^ver_[0-9a-f]{32}$")
MAX_INT32 = 2**31 - 1


class SessionGone(LookupError):
    """The session was deleted (or expired) while an edit was being added to it."""


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(slots=True)
class Claim:
    state: Literal["new", "replay", "conflict", "in_progress"]
    status_code: int | None = None
    response: dict[str, Any] | None = None
    stale_since: float | None = None
    version_id: str | None = None
    """The edit that holds the key (``in_progress``): an async repeat answers with its current record."""


@dataclass(slots=True, frozen=True)
class Spend:
    """A tenant's spend since some time: its own, and the operator's shadow traffic run on its requests."""

    tenant_usd: float = 0.0
    shadow_usd: float = 0.0


@dataclass(slots=True, frozen=True)
class SessionSummary:
    """A session in a listing: its row, how many versions it has, and its newest one."""

    session: EditSession
    version_count: int
    latest: Version | None


def _older_than(created_at: Any, row_id: Any, after: tuple[float, str] | None) -> ColumnElement[bool]:
    """Keyset condition for newest-first pages: rows strictly after ``after`` in (created_at, id) desc order."""
    if after is None:
        return true()
    return tuple_(created_at, row_id) < tuple_(*after)  # a row value: an index range on both backends


BILLED = ("ok", "ambiguous")
"""Attempt outcomes that may have cost money: an answer, or a call cut short after it was sent."""


async def take_version_number(db: AsyncSession, tenant: str, session_id: str) -> int:
    """The session's next version number, taken from its counter in the caller's transaction (row-locked on
    PostgreSQL, serialized on SQLite), so concurrent edits of one session never collide."""
    number = await db.scalar(
        update(EditSession)
        .where(EditSession.id == session_id, EditSession.tenant_id == tenant)
        .values(next_version=EditSession.next_version + 1)
        .returning(EditSession.next_version - 1)
    )
    if number is None:
        raise SessionGone(session_id)
    return int(number)


class Store:
    def __init__(self, engine: AsyncEngine, probe_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.probe_engine = probe_engine
        """A connection of its own for health reads, outside the request pool (see ``make_engine(probe=True)``)."""
        self._session = async_sessionmaker(engine, expire_on_commit=False)
        self._probe = async_sessionmaker(probe_engine or engine, expire_on_commit=False)
        self._keys_seen = False

    def tx(self) -> AsyncSession:
        return self._session()

    def probe_tx(self) -> AsyncSession:
        """A session for a health read: never queued behind the request pool when a probe engine is set."""
        return self._probe()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.probe_engine is not None:
            await self.probe_engine.dispose()

    # --- tenants and keys ----------------------------------------------------------------------

    async def ensure_tenant(self, name: str) -> str:
        async with self.tx() as db:
            found = await db.scalar(select(Tenant.id).where(Tenant.name == name))
            if found:
                return found
            tenant_id = name  # names are unique and what ops write in budgets and experiments
            db.add(Tenant(id=tenant_id, name=name, created_at=time.time()))
            try:
                await db.commit()
            except IntegrityError:  # created concurrently by another replica
                await db.rollback()
                return await db.scalar(select(Tenant.id).where(Tenant.name == name))  # type: ignore[return-value]
            return tenant_id

    async def create_key(self, tenant_name: str, admin: bool = False) -> str:
        """A new key, returned once; only its hash is stored. ``admin`` adds the operator's scope."""
        if not TENANT_NAME.match(tenant_name):
            raise ValueError(TENANT_NAME_RULE)
        tenant_id = await self.ensure_tenant(tenant_name)
        key = "eg_" + secrets.token_urlsafe(32)
        async with self.tx() as db:
            db.add(ApiKey(id=new_id("key"), tenant_id=tenant_id, key_hash=hash_key(key), prefix=key[:10],
                          admin=admin, created_at=time.time()))  # fmt: skip
            await db.commit()
        return key

    async def revoke_key(self, key_or_prefix: str) -> int:
        async with self.tx() as db:
            cond = or_(ApiKey.key_hash == hash_key(key_or_prefix), ApiKey.prefix == key_or_prefix)
            result = await db.execute(
                update(ApiKey).where(cond, ApiKey.revoked_at.is_(None)).values(revoked_at=time.time())
            )
            await db.commit()
            return result.rowcount  # type: ignore[attr-defined]

    async def list_keys(self) -> list[tuple[str, str, bool, float, float | None]]:
        """(tenant, prefix, admin, created_at, revoked_at) of every key."""
        async with self.tx() as db:
            rows = await db.execute(
                select(Tenant.name, ApiKey.prefix, ApiKey.admin, ApiKey.created_at, ApiKey.revoked_at).join(Tenant)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    async def caller_for_key(self, key: str) -> tuple[str, bool] | None:
        """The tenant an active key belongs to and whether it carries the admin scope."""
        async with self.tx() as db:
            row = (
                await db.execute(
                    select(ApiKey.tenant_id, ApiKey.admin).where(
                        ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
                    )
                )
            ).first()
            return (row[0], bool(row[1])) if row else None

    async def keys_ever_created(self) -> bool:
        """Auth is enforced from the first key on, for good: revoking the last key must not reopen the gateway.
        So once a key is seen the answer is remembered, and an authenticated request costs no query for it."""
        if self._keys_seen:
            return True
        async with self.tx() as db:
            self._keys_seen = bool(await db.scalar(select(exists().where(ApiKey.id.is_not(None)))))
        return self._keys_seen

    # --- sessions, versions, blobs -------------------------------------------------------------

    async def start_session(self, tenant: str, expires_at: float | None, meta: dict[str, Any], source_sha: str,
                            size: int, **v0: Any) -> tuple[str, Version]:  # fmt: skip
        """A session, its source file's row and version 0, in one transaction: never half made."""
        session_id, now = new_id("ses"), time.time()
        async with self.tx() as db:
            db.add(EditSession(id=session_id, tenant_id=tenant, created_at=now, expires_at=expires_at, meta=meta,
                               next_version=1))  # fmt: skip
            await db.flush()
            db.add(Blob(tenant_id=tenant, session_id=session_id, sha256=source_sha, kind="source", size=size,
                        created_at=now))  # fmt: skip
            version = Version(id=new_id("ver"), tenant_id=tenant, session_id=session_id, number=0, created_at=now,
                              source_sha=source_sha, image_sha=source_sha, **v0)  # fmt: skip
            db.add(version)
            await db.commit()
        return session_id, version

    async def create_session(self, tenant: str, expires_at: float | None, meta: dict[str, Any]) -> str:
        session_id = new_id("ses")
        async with self.tx() as db:
            db.add(
                EditSession(id=session_id, tenant_id=tenant, created_at=time.time(), expires_at=expires_at, meta=meta)
            )
            await db.commit()
        return session_id

    async def get_session(self, tenant: str, session_id: str) -> EditSession | None:
        async with self.tx() as db:
            return await db.scalar(
                select(EditSession).where(EditSession.id == session_id, EditSession.tenant_id == tenant)
            )

    async def own_blobs(self, tenant: str, session_id: str, blobs: Iterable[tuple[str, str, int]]) -> None:
        """Record that the session uses these (sha256, kind, size) files, in a transaction of its own."""
        async with self.tx() as db:
            await self.own_blobs_in(db, tenant, session_id, blobs)
            await db.commit()

    async def own_blobs_in(self, db: AsyncSession, tenant: str, session_id: str,
                           blobs: Iterable[tuple[str, str, int]]) -> None:  # fmt: skip
        """The same, inside the caller's transaction. Concurrent edits of one session claim the same
        files: the insert ignores a row that already exists instead of racing a check."""
        rows = [
            {"tenant_id": tenant, "session_id": session_id, "sha256": sha, "kind": kind, "size": size,
             "created_at": time.time()}
            for sha, kind, size in dict.fromkeys(blobs)
        ]  # fmt: skip
        if rows:
            insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
            await db.execute(insert(Blob).values(rows).on_conflict_do_nothing())

    async def referenced(self, shas: list[str]) -> set[str]:
        async with self.tx() as db:
            return set(await db.scalars(select(Blob.sha256).where(Blob.sha256.in_(shas)))) if shas else set()

    async def owns_blob(self, tenant: str, sha: str, session_id: str | None = None) -> bool:
        """The tenant uses this file (in that session, when one is named: a signed link is for one session)."""
        async with self.tx() as db:
            where = [Blob.tenant_id == tenant, Blob.sha256 == sha]
            if session_id is not None:
                where.append(Blob.session_id == session_id)
            q = select(exists().where(*where))
            return bool(await db.scalar(q))

    async def add_version(self, tenant: str, session_id: str, **fields: Any) -> Version:
        """Insert with the session's next number, taken atomically from its counter (row-locked on
        PostgreSQL, serialized on SQLite), so concurrent edits of one session never collide."""
        async with self.tx() as db:
            number = await take_version_number(db, tenant, session_id)
            version = Version(id=new_id("ver"), tenant_id=tenant, session_id=session_id, number=number,
                              created_at=time.time(), **fields)  # fmt: skip
            db.add(version)
            await db.commit()
            return version

    async def update_version(self, version_id: str, **fields: Any) -> None:
        async with self.tx() as db:
            await db.execute(update(Version).where(Version.id == version_id).values(**fields))
            await db.commit()

    async def versions(self, tenant: str, session_id: str) -> list[Version]:
        async with self.tx() as db:
            rows = await db.scalars(
                select(Version)
                .where(Version.session_id == session_id, Version.tenant_id == tenant, Version.shadow_of.is_(None))
                .order_by(Version.number)
            )
            return list(rows)

    async def version(self, tenant: str, session_id: str, number: int) -> Version | None:
        async with self.tx() as db:
            return await db.scalar(
                select(Version).where(
                    Version.session_id == session_id,
                    Version.tenant_id == tenant,
                    Version.number == number,
                    Version.shadow_of.is_(None),
                )
            )

    async def version_by_id(self, tenant: str, version_id: str) -> Version | None:
        async with self.tx() as db:
            return await db.scalar(
                select(Version).where(
                    Version.id == version_id, Version.tenant_id == tenant, Version.shadow_of.is_(None)
                )
            )

    async def latest_good_version(self, tenant: str, session_id: str) -> Version | None:
        async with self.tx() as db:
            return await db.scalar(
                select(Version)
                .where(
                    Version.session_id == session_id,
                    Version.tenant_id == tenant,
                    Version.status == "succeeded",
                    Version.shadow_of.is_(None),
                )
                .order_by(Version.number.desc())
                .limit(1)
            )

    async def delete_session(self, tenant: str, session_id: str) -> list[str] | None:
        """Delete rows; return the files no session references any more (the caller deletes them)."""
        async with self.tx() as db:
            found = await db.scalar(
                select(EditSession.id).where(EditSession.id == session_id, EditSession.tenant_id == tenant)
            )
            if found is None:
                return None
            shas = list(await db.scalars(select(Blob.sha256).where(Blob.session_id == session_id)))
            version_ids = select(Version.id).where(Version.session_id == session_id)
            await db.execute(delete(Idempotency).where(Idempotency.version_id.in_(version_ids)))
            await db.execute(delete(Blob).where(Blob.session_id == session_id))
            await db.execute(delete(Version).where(Version.session_id == session_id))
            await db.execute(delete(EditSession).where(EditSession.id == session_id))
            still_used = set(await db.scalars(select(Blob.sha256).where(Blob.sha256.in_(shas)))) if shas else set()
            await db.commit()
            return [s for s in set(shas) if s not in still_used]

    async def expired_sessions(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        async with self.tx() as db:
            rows = await db.execute(
                select(EditSession.tenant_id, EditSession.id)
                .where(EditSession.expires_at.is_not(None), EditSession.expires_at < now)
                .limit(limit)
            )
            return [(t, s) for t, s in rows]

    # --- listings (newest first, keyset-paginated on (created_at, id)) -----------------------------

    async def list_edits(self, tenant: str, *, limit: int, after: tuple[float, str] | None = None,
                         status: str | None = None, session_id: str | None = None, since: float | None = None,
                         include_shadow: bool = False) -> list[Version]:  # fmt: skip
        """Up to ``limit`` of the tenant's edits (every version but a session's source, version 0)."""
        q = select(Version).where(
            Version.tenant_id == tenant, Version.number > 0, _older_than(Version.created_at, Version.id, after)
        )
        if not include_shadow:
            q = q.where(Version.shadow_of.is_(None))
        if status is not None:
            q = q.where(Version.status == status)
        if session_id is not None:
            q = q.where(Version.session_id == session_id)
        if since is not None:
            q = q.where(Version.created_at >= since)
        async with self.tx() as db:
            rows = await db.scalars(q.order_by(Version.created_at.desc(), Version.id.desc()).limit(limit))
            return list(rows)

    async def list_sessions(self, tenant: str, *, limit: int, after: tuple[float, str] | None = None,
                            since: float | None = None) -> list[SessionSummary]:  # fmt: skip
        """Up to ``limit`` of the tenant's sessions, each with its version count and newest version
        (shadow versions are the operator's, not the caller's tree: they count in neither)."""
        q = select(EditSession).where(
            EditSession.tenant_id == tenant, _older_than(EditSession.created_at, EditSession.id, after)
        )
        if since is not None:
            q = q.where(EditSession.created_at >= since)
        q = q.order_by(EditSession.created_at.desc(), EditSession.id.desc()).limit(limit)
        async with self.tx() as db:
            sessions = list(await db.scalars(q))
            if not sessions:
                return []
            visible = (Version.session_id.in_([s.id for s in sessions]), Version.shadow_of.is_(None))
            counts = (
                select(Version.session_id, func.count().label("n"), func.max(Version.number).label("top"))
                .where(*visible)
                .group_by(Version.session_id)
                .subquery()
            )
            rows = await db.execute(
                select(counts.c.session_id, counts.c.n, Version).join(
                    Version, and_(Version.session_id == counts.c.session_id, Version.number == counts.c.top)
                )
            )
            found = {sid: (int(n), v) for sid, n, v in rows}
            return [SessionSummary(s, *found.get(s.id, (0, None))) for s in sessions]

    # --- ledger ----------------------------------------------------------------------------------

    async def add_attempts(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        async with self.tx() as db:
            db.add_all([Attempt(created_at=time.time(), **row) for row in rows])
            await db.commit()

    async def spent_since(self, tenant: str, since: float) -> Spend:
        """Spend for budgets: attempts that may have been billed, at their actual cost where known, else
        the estimate; shadow versions' attempts apart (a rejected or failed call was not billed)."""
        cost = func.coalesce(Attempt.actual_usd, Attempt.estimated_usd, 0.0)
        shadow = Version.shadow_of.is_not(None)
        async with self.tx() as db:
            row = (
                await db.execute(
                    select(
                        func.coalesce(func.sum(case((shadow, 0.0), else_=cost)), 0.0),
                        func.coalesce(func.sum(case((shadow, cost), else_=0.0)), 0.0),
                    )
                    .select_from(Attempt)
                    .outerjoin(Version, Version.id == Attempt.version_id)
                    .where(Attempt.tenant_id == tenant, Attempt.created_at >= since, Attempt.outcome.in_(BILLED))
                )
            ).one()
            return Spend(float(row[0] or 0.0), float(row[1] or 0.0))

    async def attempts_for(self, tenant: str, version_id: str | None = None) -> list[Attempt]:
        async with self.tx() as db:
            q = select(Attempt).where(Attempt.tenant_id == tenant)
            if version_id:
                q = q.where(Attempt.version_id == version_id)
            return list(await db.scalars(q.order_by(Attempt.id)))

    # --- feedback and experiment reports -------------------------------------------------------

    async def add_feedback(self, tenant: str, version_id: str, verdict: str | None, rating: int | None,
                           reason: str | None) -> Feedback:  # fmt: skip
        async with self.tx() as db:
            row = Feedback(tenant_id=tenant, version_id=version_id, verdict=verdict, rating=rating, reason=reason,
                           created_at=time.time())  # fmt: skip
            db.add(row)
            await db.commit()
            return row

    async def experiment_rows(
        self, experiment: str, tenant: str | None
    ) -> tuple[list[Attempt], dict[str, Feedback], dict[str, Version]]:
        """Ledger rows of an experiment, the latest feedback per version, and the versions (for preservation)."""
        async with self.tx() as db:
            q = select(Attempt).where(Attempt.experiment == experiment)
            if tenant is not None:
                q = q.where(Attempt.tenant_id == tenant)
            attempts = list(await db.scalars(q.order_by(Attempt.id)))
            ids = list({a.version_id for a in attempts if a.version_id})
            latest: dict[str, Feedback] = {}
            versions: dict[str, Version] = {}
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                for fb in await db.scalars(
                    select(Feedback).where(Feedback.version_id.in_(chunk)).order_by(Feedback.id)
                ):
                    latest[fb.version_id] = fb
                for v in await db.scalars(select(Version).where(Version.id.in_(chunk))):
                    versions[v.id] = v
            return attempts, latest, versions

    # --- idempotency -----------------------------------------------------------------------------

    async def peek_idempotency(self, tenant: str, key: str, request_hash: str, stale_after_s: float) -> Claim:
        """What holds the key, read only: ``new`` (free, or a claim left running past ``stale_after_s``
        by a process that died: ``stale_since`` says which, for a conditional take-over)."""
        async with self.tx() as db:
            row = await db.scalar(select(Idempotency).where(Idempotency.tenant_id == tenant, Idempotency.key == key))
        if row is None:
            return Claim("new")
        if row.request_hash != request_hash:
            return Claim("conflict")
        if row.response is not None:
            return Claim("replay", row.status_code, row.response)
        if row.created_at < time.time() - stale_after_s:
            return Claim("new", stale_since=row.created_at)
        return Claim("in_progress", version_id=row.version_id)

    async def claim_idempotency(self, tenant: str, key: str, request_hash: str, stale_after_s: float) -> Claim:
        """Insert the claim, or report what holds the key. A claim left running past ``stale_after_s``
        (its process died) is taken over; a claim released meanwhile is inserted again."""
        mine = (Idempotency.tenant_id == tenant, Idempotency.key == key)
        for _ in range(3):
            async with self.tx() as db:
                db.add(Idempotency(tenant_id=tenant, key=key, request_hash=request_hash, created_at=time.time()))
                try:
                    await db.commit()
                    return Claim("new")
                except IntegrityError:
                    await db.rollback()
                row = await db.scalar(select(Idempotency).where(*mine))
                if row is None:
                    continue
                if row.request_hash != request_hash:
                    return Claim("conflict")
                if row.response is not None:
                    return Claim("replay", row.status_code, row.response)
                if row.created_at < time.time() - stale_after_s:
                    taken = await db.execute(
                        update(Idempotency)
                        .where(*mine, Idempotency.created_at == row.created_at, Idempotency.response.is_(None))
                        .values(created_at=time.time())
                    )
                    await db.commit()
                    if taken.rowcount:  # type: ignore[attr-defined]
                        return Claim("new")
                return Claim("in_progress")
        return Claim("in_progress")

    async def complete_idempotency(self, tenant: str, key: str, version_id: str, status_code: int,
                                   response: dict[str, Any]) -> None:  # fmt: skip
        async with self.tx() as db:
            await db.execute(
                update(Idempotency)
                .where(Idempotency.tenant_id == tenant, Idempotency.key == key)
                .values(version_id=version_id, status_code=status_code, response=response)
            )
            await db.commit()

    async def release_idempotency(self, tenant: str, key: str) -> None:
        """A failed edit frees its key, so the caller can retry with the same key."""
        async with self.tx() as db:
            await db.execute(delete(Idempotency).where(Idempotency.tenant_id == tenant, Idempotency.key == key))
            await db.commit()
