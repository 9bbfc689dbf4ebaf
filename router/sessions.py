"""Session operations beyond a single edit: the version tree, branching, compare, retry, deletion, expiry."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

import cv2
import numpy as np
import structlog
from pydantic import BaseModel

from providers.base import ImageBlob
from providers.imaging import AS_MADE_FORMATS, DecodeError, decode, encode
from router.errors import ApiError
from router.intake.request import RawInputs
from router.intake.sniff import SNIFF_BYTES, stored_format
from router.lifecycle import RETRYABLE, IdempotencyClaim
from router.models import Drift, EditRequest, EditResponse
from router.normalize import drift, fit
from router.service import EditTarget, Gateway, enqueue_edit, file_ref, run_edit, store_blobs
from router.storage.db import WAIT_S
from router.storage.models import EditSession, Version
from router.storage.store import SESSION_ID

log = structlog.get_logger("editgate.sessions")


class VersionView(BaseModel):
    number: int
    id: str
    parent: int | None
    status: str
    prompt: str | None
    chips: list[str]
    settings: dict[str, Any]
    provider: str | None
    model: str | None
    rule: str | None
    image: dict[str, Any] | None
    cost: dict[str, Any] | None
    latency_ms: dict[str, Any] | None
    error: dict[str, Any] | None
    chain_response_id: str | None
    chain_note: str | None
    retry_of: int | None
    created: int


class SessionView(BaseModel):
    id: str
    created: int
    expires_at: int | None
    metadata: dict[str, Any]
    versions: list[VersionView]


class CompareView(BaseModel):
    a: int
    b: int
    drift: Drift
    heatmap: dict[str, Any]


def version_view(v: Version) -> VersionView:
    r = v.result or {}
    return VersionView(
        number=v.number, id=v.id, parent=v.parent_number, status=v.status, prompt=v.prompt, chips=v.chips or [],
        settings=v.settings or {}, provider=v.provider, model=v.model, rule=v.rule, image=r.get("image"),
        cost=r.get("cost"), latency_ms=r.get("latency_ms"), error=r.get("error"),
        chain_response_id=v.chain_response_id, chain_note=v.chain_note, retry_of=v.retry_of, created=int(v.created_at),
    )  # fmt: skip


async def session_or_404(gw: Gateway, tenant: str, session_id: str) -> EditSession:
    session = await gw.store.get_session(tenant, session_id) if SESSION_ID.match(session_id) else None
    if session is None:
        raise ApiError(404, "not_found", f"No session {session_id!r}.", "session_id")
    return session


async def session_view(gw: Gateway, tenant: str, session_id: str) -> SessionView:
    session = await session_or_404(gw, tenant, session_id)
    versions = await gw.store.versions(tenant, session_id)
    return SessionView(
        id=session.id,
        created=int(session.created_at),
        expires_at=int(session.expires_at) if session.expires_at else None,
        metadata=session.meta or {},
        versions=[version_view(v) for v in versions],
    )


async def version_or_404(gw: Gateway, tenant: str, session_id: str, number: int) -> Version:
    await session_or_404(gw, tenant, session_id)
    version = await gw.store.version(tenant, session_id, number)
    if version is None:
        raise ApiError(404, "not_found", f"No version {number} in session {session_id!r}.", "version")
    return version


async def read_blob(gw: Gateway, sha: str) -> bytes:
    data = await gw.workers.run(partial(gw.blobs.get, sha))
    if data is None:
        raise ApiError(404, "not_found", "The stored image is gone (expired or deleted).")
    return data


async def resolve_parent(gw: Gateway, tenant: str, session_id: str, number: int | None) -> tuple[Version, bytes]:
    """The version an edit branches from (default: the latest good one) and its image."""
    await session_or_404(gw, tenant, session_id)
    if number is None:
        parent = await gw.store.latest_good_version(tenant, session_id)
    else:
        parent = await version_or_404(gw, tenant, session_id, number)
    if parent is None or parent.status != "succeeded" or parent.image_sha is None:
        which = f"version {number}" if number is not None else "the session"
        raise ApiError(422, "parent_not_usable", f"{which} has no finished image to edit; pick a succeeded version.",
                       "parent_version")  # fmt: skip
    image = await read_blob(gw, parent.image_sha)
    if made := as_made_format(image):
        raise ApiError(422, "parent_not_usable", f"version {parent.number} is a {made} delivered as the model made "
                       "it, which is not edited further; name a png, jpeg or webp version as parent_version.",
                       "parent_version")  # fmt: skip
    return parent, image


def as_made_format(image: bytes) -> str | None:
    """``GIF`` or ``SVG`` for a version delivered as the model made it (never decoded to pixels), else None."""
    made = stored_format(image[:SNIFF_BYTES])
    return made.upper() if made in AS_MADE_FORMATS else None


async def session_target(gw: Gateway, tenant: str, req: EditRequest, raw: RawInputs, session_id: str,
                         base_url: str) -> EditTarget:  # fmt: skip
    """Where an edit in a session lands; its source (``raw.image``) is the parent version's image."""
    if raw.sent_image:
        raise ApiError(422, "invalid_parameter", "A session edit takes its source from a version; send no image.",
                       "image")  # fmt: skip
    parent, raw.image = await resolve_parent(gw, tenant, session_id, req.parent_version)
    return EditTarget(tenant, session_id, parent, base_url=base_url)


async def stored_edit(gw: Gateway, version: Version) -> tuple[EditRequest, Version, RawInputs]:
    """A version's request, parent and inputs, rebuilt from what was stored: how a retry and a queued
    edit run from the database alone."""
    settings = dict(version.settings)
    if settings.get("mode") != "outpaint":
        settings["mask_convention"] = "alpha"  # the stored mask is already in the alpha convention
    req = EditRequest.model_validate(settings)
    parent, image = await resolve_parent(gw, version.tenant_id, version.session_id, version.parent_number)
    mask = await read_blob(gw, version.mask_sha) if version.mask_sha and req.mode != "outpaint" else None
    refs = [await read_blob(gw, sha) for sha in version.reference_shas or []]
    markup = await read_blob(gw, version.markup_sha) if version.markup_sha else None
    return req, parent, RawInputs(image=image, mask=mask, references=refs, markup=markup)


async def retry_version(gw: Gateway, tenant: str, session_id: str, number: int, base_url: str,
                        claim: IdempotencyClaim | None = None,
                        queued: bool = False) -> EditResponse | Version:  # fmt: skip
    """Run a failed or interrupted version again with its stored inputs and settings, as a new version
    (``queued``: accepted now, run by the queue)."""
    ended = await version_or_404(gw, tenant, session_id, number)
    if ended.status not in RETRYABLE:
        raise ApiError(409, "not_failed", f"Version {number} is {ended.status}; only failed or interrupted "
                       "versions are retried.")  # fmt: skip
    req, parent, raw = await stored_edit(gw, ended)
    target = EditTarget(tenant, session_id, parent, retry_of=number, base_url=base_url, claim=claim)
    if queued:
        return await enqueue_edit(gw, req, raw, target)
    return await run_edit(gw, req, raw, target)


def _heatmap(a: bytes, b: bytes) -> tuple[bytes, Drift, int, int]:
    try:
        pa, pb = decode(a), decode(b)
    except DecodeError as exc:  # a version 0 that passed intake on structure alone
        raise ApiError(422, "invalid_image", f"A version's image cannot be decoded ({exc}).", "a") from exc
    pb = fit(pb, (pa.shape[1], pa.shape[0]))
    diff = cv2.absdiff(pa[..., :3], pb[..., :3]).max(axis=2)
    scaled = np.clip(diff.astype(np.float32) * 4.0, 0, 255).astype(np.uint8)  # x4: small drift stays visible
    heat = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    return encode(heat, "png"), drift(pb, pa, None), pa.shape[1], pa.shape[0]


async def compare(gw: Gateway, tenant: str, session_id: str, a: int, b: int, base_url: str) -> CompareView:
    va, vb = [await version_or_404(gw, tenant, session_id, n) for n in (a, b)]
    for v in (va, vb):
        if v.image_sha is None:
            raise ApiError(422, "parent_not_usable", f"Version {v.number} has no image to compare.", "a")
    image_a, image_b = await read_blob(gw, va.image_sha), await read_blob(gw, vb.image_sha)  # type: ignore[arg-type]
    for v, image in ((va, image_a), (vb, image_b)):
        if made := as_made_format(image):
            raise ApiError(422, "not_comparable", f"Version {v.number} is a {made} delivered as the model made it; "
                           "the heat-map compares png, jpeg and webp versions.", "a" if v is va else "b")  # fmt: skip
    png, d, w, h = await gw.workers.run(lambda: _heatmap(image_a, image_b))
    (sha,) = await store_blobs(gw, tenant, session_id, [(png, "heatmap", None)])
    ref = file_ref(base_url, sha, ImageBlob(png, "image/png", w, h), "png")
    return CompareView(a=a, b=b, drift=d, heatmap=ref.model_dump())


BLOB_GRACE_S = 2 * WAIT_S + 60
"""A file written or reused this recently may be being claimed right now: an edit stores its inputs before
its accept transaction, which may wait for a pooled connection and then for SQLite's writer (``WAIT_S``
each) before anything references them. A delete leaves such a file to a later garbage collection, which
removes it once it is older than this and nothing references it."""


async def delete_session(gw: Gateway, tenant: str, session_id: str) -> bool:
    orphans = await gw.store.delete_session(tenant, session_id)
    if orphans is None:
        return False
    await gw.workers.run(lambda: [gw.blobs.delete(sha, BLOB_GRACE_S) for sha in orphans])
    return True


async def collect_garbage(gw: Gateway, batch: int = 1000) -> int:
    """Delete files no session references (left by a delete's grace, or a write whose claim failed)."""
    idle = await gw.workers.run(lambda: gw.blobs.idle(BLOB_GRACE_S, batch))
    orphans = set(idle) - await gw.store.referenced(idle)
    await gw.workers.run(lambda: [gw.blobs.delete(sha, BLOB_GRACE_S) for sha in orphans])
    return len(orphans)


async def sweep_expired(gw: Gateway) -> int:
    """Remove sessions past their retention (rows and files), then unreferenced files; returns sessions removed."""
    removed = 0
    while batch := await gw.store.expired_sessions(time.time()):
        for tenant, session_id in batch:
            removed += await delete_session(gw, tenant, session_id)
    await collect_garbage(gw)
    return removed


async def sweeper(gw: Gateway) -> None:
    while True:
        try:
            if removed := await sweep_expired(gw):
                log.info("retention_sweep", sessions_removed=removed)
        except Exception:
            log.exception("retention_sweep_failed")
        await asyncio.sleep(gw.settings.sweep_interval_s)
