"""The loops that keep the lifecycle moving in one instance: the queue worker (claims queued edits
and runs them from their stored inputs), the lease keeper, recovery of expired leases, and the drain
at shutdown. The database is the queue; nothing here holds work the database does not know about.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import anyio
import structlog

from policies.model import RouteDecision
from router.errors import ApiError
from router.intake.prepare import prepare
from router.lifecycle import INTERRUPTED, recover
from router.models import Inputs
from router.service import EditRun, EditTarget, Gateway, first_call
from router.sessions import retry_version, stored_edit
from router.storage.models import Version

log = structlog.get_logger("editgate.queue")


async def resume(gw: Gateway, version: Version) -> EditRun:
    """A claimed edit's run, rebuilt from its stored inputs and settings (as a retry is)."""
    t0 = time.perf_counter()
    req, parent, raw = await stored_edit(gw, version)
    p = await gw.workers.run(lambda: prepare(req, raw, gw.settings.limits, version.tenant_id))
    record = version.result or {}
    target = EditTarget(version.tenant_id, version.session_id, parent, retry_of=version.retry_of,
                        base_url=record.get("_base_url", ""))  # fmt: skip
    return EditRun(gw, p, target, version.session_id, parent, version, Inputs.model_validate(record["inputs"]), t0)


async def run_queued(gw: Gateway, version: Version) -> None:
    """Get a queued edit ready (its stored inputs, its route), wait in ``queued`` for a slot of its first
    candidate's provider, and only then claim it: a claimed edit is working, never waiting for room.
    The slot is held for the whole run (its executor takes no second one for that provider)."""
    try:
        run = await resume(gw, version)
    except Exception as exc:  # its stored inputs are gone or unusable: it cannot run, ever
        error = exc if isinstance(exc, ApiError) else ApiError(500, "internal_error", "The queued edit cannot run.")
        record = {**(version.result or {}), "error": error.body()["error"]}
        await gw.lifecycle.fail(version, record, [])
        return
    try:
        decision: RouteDecision | None = await run.choose_route()
    except Exception:  # routed again after the claim, where its error ends the edit the usual way
        decision = None
    first = first_call(decision).get("provider")
    slot = uuid.uuid4().hex
    if first:
        await gw.resources.limits.acquire(first, slot, run.p.request.n)
    try:
        claimed = None if gw.draining else await gw.lifecycle.claim(version.id)
        if claimed is None:  # canceled meanwhile, claimed by another instance, or this one is shutting down
            return
        run.version, run.held_slot = claimed, first
        with contextlib.suppress(Exception):  # recorded on the version; nobody is waiting on this task
            await gw.shielded(run, run.run(decision))
    finally:
        if first:
            with anyio.CancelScope(shield=True):
                await gw.resources.limits.release(first, slot)


async def queue_worker(gw: Gateway) -> None:
    """Take queued edits while there is room (``queue_concurrency``): each waits, still ``queued`` and
    with its place in the queue, for its provider's ``max_concurrency`` before it is claimed (see
    :func:`run_queued`). Woken at once by an accept here, polled for other replicas' accepts. Two
    replicas may get the same edit ready; the claim's conditional UPDATE lets one run it."""
    slots = asyncio.Semaphore(gw.settings.queue_concurrency)
    lifecycle = gw.lifecycle
    taken: set[str] = set()
    """Edits this instance is getting ready or running from the queue: the next read skips them."""
    while not gw.draining:
        await slots.acquire()
        lifecycle.wakeup.clear()
        try:
            version = None if gw.draining else await lifecycle.next_queued(taken)
        except Exception:
            log.exception("queue_read_failed")
            version = None
        if version is None:
            slots.release()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lifecycle.wakeup.wait(), gw.settings.queue_poll_s)
            continue
        taken.add(version.id)
        task = asyncio.create_task(run_queued(gw, version))
        gw.background.add(task)
        task.add_done_callback(
            lambda t, vid=version.id: (gw.background.discard(t), taken.discard(vid), slots.release())
        )


async def lease_keeper(gw: Gateway) -> None:
    while True:
        await asyncio.sleep(gw.settings.lease_s / 3)
        try:
            await gw.lifecycle.renew()
        except Exception:
            log.exception("lease_renewal_failed")


async def rerun_if_opted_in(gw: Gateway, version: Version) -> None:
    """Re-run an interrupted edit (queued, as a retry) only when its rule says ``rerun_interrupted``:
    it may already have been billed once."""
    rule = next((r for r in gw.policy.rules if r.name == version.rule), None)
    if rule is None or not rule.rerun_interrupted:
        return
    base_url = (version.result or {}).get("_base_url", "")
    try:
        await retry_version(gw, version.tenant_id, version.session_id, version.number, base_url, queued=True)
    except ApiError as exc:
        log.warning("rerun_failed", edit_id=version.id, code=exc.code)


async def recover_once(gw: Gateway) -> list[str]:
    return await recover(gw.lifecycle, lambda v: rerun_if_opted_in(gw, v))


async def recovery_loop(gw: Gateway) -> None:
    while True:
        await asyncio.sleep(gw.settings.recovery_interval_s)
        try:
            await recover_once(gw)
        except Exception:
            log.exception("recovery_failed")


async def drain(gw: Gateway, started: float | None = None) -> None:
    """Stop taking edits; let the ones in flight finish until ``drain_s`` after ``started`` (the
    signal), then stop the rest as ``interrupted``. Nothing is left running."""
    gw.draining = True
    gw.lifecycle.wakeup.set()
    ends = (started or time.monotonic()) + gw.settings.drain_s
    pending = [task for task, _ in gw.runs.values()]
    if pending:
        log.info("draining", edits=len(pending), seconds_left=round(max(0.0, ends - time.monotonic()), 1))
        await asyncio.wait(pending, timeout=max(0.0, ends - time.monotonic()))
    left = [task for vid in list(gw.runs) if (task := gw.stop(vid, INTERRUPTED)) is not None]
    if left:
        log.warning("drain_interrupting", edits=len(left))
        await asyncio.wait(left, timeout=30)
