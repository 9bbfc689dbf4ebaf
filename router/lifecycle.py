"""An edit's states and the only code that moves a version between them.

```
 accept ──► queued ──claim──► running ──finish──► succeeded
    └──────(sync)───────────►   │ │ └───fail────► failed        (retryable)
                                │ └──cancel─────► canceled
                                └─lease expired─► interrupted   (retryable; ledger: ambiguous)
```

Each transition is one function and one transaction, conditional on the state it leaves, so two
instances (or a cancel racing a finish) never both win. ``running`` is held under a lease: the
instance that runs the edit renews it (one UPDATE per interval for everything it holds) while the
provider call is alive; an expired lease means that instance died, and :meth:`Lifecycle.recover`
turns the version ``interrupted`` with an ``ambiguous`` ledger row at the candidate's estimate, since
the provider may have rendered and billed. The database is the queue: a queued version is claimed
by a conditional UPDATE (queued -> running) once its provider has room (see router/queue.py).

Terminal transitions call :attr:`Lifecycle.on_terminal` hooks inside their transaction (a webhook
outbox row commits with the state it announces, or not at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from router.storage.models import Attempt, EditSession, Idempotency, Version
from router.storage.store import SessionGone, Store, new_id, take_version_number

log = structlog.get_logger("editgate.lifecycle")

QUEUED, RUNNING, SUCCEEDED, FAILED, INTERRUPTED, CANCELED = (
    "queued", "running", "succeeded", "failed", "interrupted", "canceled",
)  # fmt: skip
TERMINAL = frozenset({SUCCEEDED, FAILED, INTERRUPTED, CANCELED})
RETRYABLE = frozenset({FAILED, INTERRUPTED})
"""States ``POST .../retry`` accepts: nothing usable came back."""

TerminalHook = Callable[[AsyncSession, Version, dict[str, Any]], Awaitable[None]]
BlobUse = tuple[str, str, int]
"""(sha256, kind, size) of a file a session uses."""


class ClaimTaken(Exception):
    """Another request took the Idempotency-Key between the caller's check and the accept."""


@dataclass(slots=True)
class NewSession:
    """A standalone edit's session, made in the accept transaction: version 0 is the source."""

    id: str
    expires_at: float | None
    source_sha: str
    source_size: int
    v0_result: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class IdempotencyClaim:
    """A key checked free (or stale, held since ``stale_since``) before the accept that inserts it."""

    tenant: str
    key: str
    request_hash: str
    stale_since: float | None = None


@dataclass(slots=True)
class Finish:
    """Everything a successful edit writes, in the finish transaction."""

    fields: dict[str, Any]
    record: dict[str, Any]
    ledger: list[dict[str, Any]]
    blobs: list[BlobUse]
    session_expires_at: float | None
    answer: dict[str, Any] | None = None
    """The stored answer for the Idempotency-Key the edit was accepted with, if any."""


def _view(record: dict[str, Any], status: str) -> dict[str, Any]:
    return {**record, "status": status}


P = ParamSpec("P")
T = TypeVar("T")


def _runs_to_completion(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A transaction, once begun, commits or rolls back whole even when its caller is cancelled (a
    caller's cancel, a drain, a disconnect): a task cancelled inside a database transaction can leave its
    pooled connection checked out for good, and then every later query waits for the pool."""

    @functools.wraps(method)
    async def whole(*args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(method(*args, **kwargs))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved if the caller left
        return await asyncio.shield(task)

    return whole


class Lifecycle:
    def __init__(self, store: Store, owner: str, lease_s: float) -> None:
        self.store, self.owner, self.lease_s = store, owner, lease_s
        self.on_terminal: list[TerminalHook] = []
        self.held: set[str] = set()
        """Running versions whose work is alive in this process: the lease renewal covers them."""
        self._ended: dict[str, asyncio.Event] = {}
        self.wakeup = asyncio.Event()
        """Set when an edit is queued here, so the queue worker claims it without waiting for its poll."""

    # --- accept ----------------------------------------------------------------------------------

    @_runs_to_completion
    async def accept(self, tenant: str, session_id: str, parent_number: int, new_session: NewSession | None,
                     blobs: list[BlobUse], fields: dict[str, Any], record: dict[str, Any], queued: bool,
                     claim: IdempotencyClaim | None) -> Version:  # fmt: skip
        """queued | running: the session (if new), the inputs' ownership, the version and the key's claim."""
        now = time.time()
        status = QUEUED if queued else RUNNING
        lease = {} if queued else {"lease_owner": self.owner, "lease_expires_at": now + self.lease_s, "started_at": now}
        async with self.store.tx() as db:
            if new_session is not None:
                s = new_session
                db.add(EditSession(id=s.id, tenant_id=tenant, created_at=now, expires_at=s.expires_at, meta=s.meta,
                                   next_version=2))  # fmt: skip
                await db.flush()
                db.add(Version(id=new_id("ver"), tenant_id=tenant, session_id=s.id, number=0, created_at=now,
                               status=SUCCEEDED, source_sha=s.source_sha, image_sha=s.source_sha, result=s.v0_result,
                               finished_at=now))  # fmt: skip
                number = 1
            else:
                number = await take_version_number(db, tenant, session_id)
            try:
                await self.store.own_blobs_in(db, tenant, session_id, blobs)
            except IntegrityError:  # the session was deleted meanwhile
                raise SessionGone(session_id) from None
            version = Version(id=new_id("ver"), tenant_id=tenant, session_id=session_id, number=number,
                              parent_number=parent_number, status=status, created_at=now,
                              queued_at=now if queued else None, **lease, **fields)  # fmt: skip
            version.result = _view(
                {"id": version.id, "session_id": session_id, "version": number, "parent_version": parent_number,
                 "created": int(now), **record}, status,
            )  # fmt: skip
            db.add(version)
            if claim is not None:
                await self._claim(db, claim, version.id)
            try:
                await db.commit()
            except IntegrityError:  # the session was deleted meanwhile (its row, under the version)
                await db.rollback()
                raise SessionGone(session_id) from None
        if queued:
            self.wakeup.set()
        else:
            self.held.add(version.id)
        return version

    async def _claim(self, db: AsyncSession, claim: IdempotencyClaim, version_id: str) -> None:
        if claim.stale_since is None:
            db.add(Idempotency(tenant_id=claim.tenant, key=claim.key, request_hash=claim.request_hash,
                               version_id=version_id, created_at=time.time()))  # fmt: skip
            try:
                await db.flush()
            except IntegrityError:
                raise ClaimTaken(claim.key) from None
            return
        taken = await db.execute(
            update(Idempotency)
            .where(Idempotency.tenant_id == claim.tenant, Idempotency.key == claim.key,
                   Idempotency.created_at == claim.stale_since, Idempotency.response.is_(None))
            .values(created_at=time.time(), version_id=version_id, request_hash=claim.request_hash)
        )  # fmt: skip
        if not taken.rowcount:  # type: ignore[attr-defined]
            raise ClaimTaken(claim.key)

    # --- queue -----------------------------------------------------------------------------------

    async def next_queued(self, skip: set[str]) -> Version | None:
        """The oldest queued edit not in ``skip`` (those this instance is already getting ready), read only:
        :meth:`claim` decides who runs it."""
        async with self.store.tx() as db:
            return await db.scalar(
                select(Version)
                .where(Version.status == QUEUED, Version.id.notin_(skip))
                .order_by(Version.queued_at)
                .limit(1)
            )

    @_runs_to_completion
    async def claim(self, version_id: str) -> Version | None:
        """queued -> running under this instance's lease, if it is still queued (a conditional UPDATE:
        of two instances, or a claim racing a cancel, one wins)."""
        now = time.time()
        async with self.store.tx() as db:
            version = await db.scalar(
                update(Version)
                .where(Version.id == version_id, Version.status == QUEUED)
                .values(status=RUNNING, lease_owner=self.owner, lease_expires_at=now + self.lease_s, started_at=now)
                .returning(Version)
            )
            await db.commit()
        if version is not None:
            self.held.add(version.id)
        return version

    async def queued_count(self) -> int:
        """Edits waiting in the queue, across every instance (the queue is the versions table). Read on the
        probe connection: the scrape asks it, and must not queue behind a burst of edits."""
        async with self.store.probe_tx() as db:
            return int(await db.scalar(select(func.count()).select_from(Version).where(Version.status == QUEUED)) or 0)

    async def queue_position(self, version: Version) -> int:
        """1 for the next edit to be claimed."""
        async with self.store.tx() as db:
            ahead = await db.scalar(
                select(func.count())
                .select_from(Version)
                .where(Version.status == QUEUED, Version.queued_at < version.queued_at)
            )
        return int(ahead or 0) + 1

    @_runs_to_completion
    async def routed(self, version: Version, provider: str, model: str, rule: str, record: dict[str, Any],
                     route_features: dict[str, Any] | None = None) -> None:  # fmt: skip
        """A queued edit's route, once known: what recovery needs to ledger a call cut short, and what the
        policy saw (``route_features``, replayed by what-if)."""
        async with self.store.tx() as db:
            await db.execute(
                update(Version)
                .where(Version.id == version.id, Version.status == RUNNING, Version.lease_owner == self.owner)
                .values(
                    provider=provider,
                    model=model,
                    rule=rule,
                    route_features=route_features,
                    result=_view(record, RUNNING),
                )
            )
            await db.commit()

    @_runs_to_completion
    async def calling(self, version: Version, provider: str, model: str, record: dict[str, Any]) -> None:
        """A running edit moved to a fallback: the call recovery must ledger if this instance dies now."""
        async with self.store.tx() as db:
            await db.execute(
                update(Version)
                .where(Version.id == version.id, Version.status == RUNNING, Version.lease_owner == self.owner)
                .values(provider=provider, model=model, result=_view(record, RUNNING))
            )
            await db.commit()

    @_runs_to_completion
    async def scored(self, version_id: str, preservation: dict[str, Any]) -> bool:
        """A succeeded edit's preservation score, measured after its answer: a record update after the
        terminal state, not a transition. One transaction; nothing is written unless the edit succeeded."""
        async with self.store.tx() as db:
            record = await db.scalar(
                select(Version.result).where(Version.id == version_id, Version.status == SUCCEEDED).with_for_update()
            )
            if record is None:
                await db.rollback()
                return False
            await db.execute(
                update(Version)
                .where(Version.id == version_id, Version.status == SUCCEEDED)
                .values(result={**record, "preservation": preservation})
            )
            await db.commit()
        return True

    # --- leases ----------------------------------------------------------------------------------

    @_runs_to_completion
    async def renew(self) -> None:
        """Extend the lease of every edit this instance is running: one UPDATE, whatever their number."""
        held = list(self.held)
        if not held:
            return
        async with self.store.tx() as db:
            await db.execute(
                update(Version)
                .where(Version.id.in_(held), Version.status == RUNNING, Version.lease_owner == self.owner)
                .values(lease_expires_at=time.time() + self.lease_s)
            )
            await db.commit()

    async def expired(self, now: float) -> list[Version]:
        async with self.store.tx() as db:
            rows = await db.scalars(
                select(Version).where(
                    Version.status == RUNNING,
                    (Version.lease_expires_at.is_(None)) | (Version.lease_expires_at < now),
                )
            )
            return [v for v in rows if v.id not in self.held]

    # --- terminal transitions --------------------------------------------------------------------

    async def finish(self, version: Version, done: Finish) -> bool:
        """running -> succeeded: result, ledger, result files, session expiry, the key's stored answer."""

        async def also(db: AsyncSession, _: Version) -> None:
            await self.store.own_blobs_in(db, version.tenant_id, version.session_id, done.blobs)
            if done.session_expires_at is not None:
                await db.execute(
                    update(EditSession)
                    .where(EditSession.id == version.session_id)
                    .values(expires_at=done.session_expires_at)
                )
            if done.answer is not None:
                await db.execute(
                    update(Idempotency)
                    .where(Idempotency.version_id == version.id, Idempotency.response.is_(None))
                    .values(status_code=200, response=done.answer)
                )

        return await self._end(version, SUCCEEDED, done.record, done.ledger, done.fields, also)

    async def fail(self, version: Version, record: dict[str, Any], ledger: list[dict[str, Any]],
                   fields: dict[str, Any] | None = None) -> bool:  # fmt: skip
        """running | queued -> failed: the error, the calls made, and the key freed for a retry."""
        return await self._end(version, FAILED, record, ledger, fields or {}, self._release)

    async def interrupt(self, version: Version, record: dict[str, Any], ledger: list[dict[str, Any]]) -> bool:
        """running -> interrupted: the work stopped without an answer (a crash, a drain that ran out)."""
        return await self._end(version, INTERRUPTED, record, ledger, {}, self._release)

    async def cancel(self, version: Version, record: dict[str, Any], ledger: list[dict[str, Any]],
                     only_queued: bool = False) -> bool:  # fmt: skip
        """queued | running -> canceled, at the caller's request. ``only_queued``: a cancel that found the edit
        queued must not end it once a worker has claimed it (that run would go on and pay without a ledger row)."""
        return await self._end(version, CANCELED, record, ledger, {}, self._release,
                               (QUEUED,) if only_queued else (QUEUED, RUNNING))  # fmt: skip

    async def _release(self, db: AsyncSession, version: Version) -> None:
        await db.execute(
            delete(Idempotency).where(Idempotency.version_id == version.id, Idempotency.response.is_(None))
        )

    @_runs_to_completion
    async def _end(self, version: Version, status: str, record: dict[str, Any], ledger: list[dict[str, Any]],
                   fields: dict[str, Any], also: Callable[..., Awaitable[None]],
                   open_states: tuple[str, ...] = (QUEUED, RUNNING)) -> bool:  # fmt: skip
        """One terminal transaction, conditional on the version still being open. The loser of a race
        (a cancel against a finish, recovery against a slow renewal) writes nothing: one ledger per edit."""
        now = time.time()
        final = _view(record, status)
        async with self.store.tx() as db:
            ended = await db.scalar(
                update(Version)
                .where(Version.id == version.id, Version.status.in_(open_states))
                .values(status=status, result=final, finished_at=now, lease_owner=None, lease_expires_at=None,
                        **fields)
                .returning(Version)
            )  # fmt: skip
            if ended is None:
                await db.rollback()
                log.warning("transition_lost", edit_id=version.id, to=status)
                self._forget(version.id)
                return False
            if ledger:
                db.add_all([Attempt(created_at=now, **row) for row in ledger])
            await also(db, version)
            for hook in self.on_terminal:
                await hook(db, ended, final)
            await db.commit()
        self._forget(version.id)
        return True

    def _forget(self, version_id: str) -> None:
        self.held.discard(version_id)
        if (event := self._ended.pop(version_id, None)) is not None:
            event.set()

    async def wait_ended(self, version_id: str, timeout_s: float, poll_s: float = 1.0) -> None:
        """Return when the version reaches a terminal state here, or at each ``poll_s`` (another
        instance may end it), or at the timeout; the caller re-reads the row."""
        event = self._ended.setdefault(version_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=min(timeout_s, poll_s))


def ambiguous_row(version: Version, estimated_usd: float | None, why: str) -> list[dict[str, Any]]:
    """The ledger row of a call that may have been billed though its answer was lost."""
    if not version.provider:
        return []  # never routed: no call was made
    return [
        {"tenant_id": version.tenant_id, "session_id": version.session_id, "version_id": version.id,
         "provider": version.provider, "model": version.model or "", "rule": version.rule,
         "estimated_usd": estimated_usd, "provider_ms": 0.0, "outcome": "ambiguous", "error_code": why,
         "comparison": version.shadow_of is not None, "usage": {}},
    ]  # fmt: skip


def estimate_of(record: dict[str, Any]) -> float | None:
    return ((record or {}).get("cost") or {}).get("estimated_usd")


async def recover(lifecycle: Lifecycle, rerun: Callable[[Version], Awaitable[None]] | None = None) -> list[str]:
    """Every running version whose lease expired (its instance died) becomes ``interrupted``, one
    transaction each: an ambiguous ledger row at the candidate's estimate, the key released. ``rerun``
    is called for the ones whose rule opts into re-running."""
    ended: list[str] = []
    for version in await lifecycle.expired(time.time()):
        record = dict(version.result or {})
        record["error"] = {
            "code": "interrupted", "param": None,
            "message": "The instance running this edit stopped before it finished; the provider may have "
            "rendered and billed. Retry it with POST .../retry.",
        }  # fmt: skip
        rows = ambiguous_row(version, estimate_of(record), "interrupted")
        if await lifecycle.interrupt(version, record, rows):
            ended.append(version.id)
            log.warning("edit_interrupted", edit_id=version.id, provider=version.provider)
            if rerun is not None:
                await rerun(version)
    return ended
