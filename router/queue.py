"""The loops that keep the lifecycle moving in one instance: the queue worker (claims queued edits
and runs them from their stored inputs), the lease keeper, recovery of expired leases, and the drain
at shutdown. The database is the queue; nothing here holds work the database does not know about.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from router.errors import ApiError
from router.intake.prepare import prepare
from router.lifecycle import INTERRUPTED, recover
from router.models import Inputs
from router.service import EditRun, EditTarget, Gateway
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
    try:
        run = await resume(gw, version)
    except Exception as exc:  # its stored inputs are gone or unusable: it cannot run, ever
        error = exc if isinstance(exc, ApiError) else ApiError(500, "internal_error", "The queued edit cannot run.")
        record = {**(version.result or {}), "error": error.body()["error"]}
        await gw.lifecycle.fail(version, record, [])
        return
    with contextlib.suppress(Exception):  # recorded on the version; nobody is waiting on this task
        await gw.shielded(run, run.run())


async def queue_worker(gw: Gateway) -> None:
    """Claim queued edits while there is room (``queue_concurrency``); providers' own limits still
    apply inside each run. Woken at once by an accept here, polled for other replicas' accepts."""
    slots = asyncio.Semaphore(gw.settings.queue_concurrency)
    lifecycle = gw.lifecycle
    while not gw.draining:
        await slots.acquire()
        lifecycle.wakeup.clear()
        try:
            version = None if gw.draining else await lifecycle.claim_next()
        except Exception:
            log.exception("queue_claim_failed")
            version = None
        if version is None:
            slots.release()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lifecycle.wakeup.wait(), gw.settings.queue_poll_s)
            continue
        task = asyncio.create_task(run_queued(gw, version))
        gw.background.add(task)
        task.add_done_callback(lambda t: (gw.background.discard(t), slots.release()))


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
