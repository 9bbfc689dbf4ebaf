"""One edit, end to end: intake -> decide -> execute -> normalize -> store -> response.

Each step is one call into its own module; this file only sequences them, times them and keeps the
record, so a failure anywhere still leaves the caller's inputs stored and findable.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from policies import Candidate, Policy, decide
from providers.base import EditJob, ImageBlob, Provider
from router.blobs import BlobStore
from router.errors import ApiError
from router.executor import ExecutionFailed, execute
from router.intake.images import LoadedImage
from router.intake.prepare import PreparedEdit, prepare
from router.intake.request import RawInputs
from router.models import (
    Cost,
    EditRequest,
    EditResponse,
    FileRef,
    Inputs,
    Latency,
    MaskReport,
    OutputImage,
    RouteInfo,
)
from router.normalize import NormalizedImage, normalize
from router.records import EditRecords
from router.settings import Settings
from router.workers import ImageWorkers

log = structlog.get_logger("editgate.edit")


@dataclass(slots=True)
class Gateway:
    """Everything an edit needs, built once at start-up."""

    settings: Settings
    policy: Policy
    providers: Mapping[str, Provider]
    blobs: BlobStore
    records: EditRecords
    workers: ImageWorkers
    forced_provider: str | None = None


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)


def _ref(base_url: str, sha: str, blob: ImageBlob, fmt: str) -> FileRef:
    return FileRef(
        id=sha,
        url=f"{base_url}/v1/files/{sha}",
        width=blob.width,
        height=blob.height,
        format=fmt,
        sha256=sha,
        bytes=len(blob.data),
    )


def _store_inputs(gw: Gateway, p: PreparedEdit, base_url: str) -> Inputs:
    def ref(img: LoadedImage) -> FileRef:
        return _ref(base_url, gw.blobs.put(img.blob.data), img.blob, img.format)

    mask = None
    if p.mask is not None:
        mask = _ref(base_url, gw.blobs.put(p.mask.blob.data), p.mask.blob, "png")
    return Inputs(source=ref(p.source), mask=mask, references=[ref(r) for r in p.references])


def _job(p: PreparedEdit, candidate: Candidate, timeout_s: float) -> EditJob:
    req = p.request
    out_w, out_h = p.out_size or (p.work.width, p.work.height)
    return EditJob(
        prompt=p.prompt,
        model=candidate.model,
        source=p.work,
        mode=req.mode,
        mask=p.mask.blob if p.mask else None,
        references=tuple(r.blob for r in p.references),
        out_w=out_w,
        out_h=out_h,
        quality=req.quality,
        output_format=req.output_format,
        background=req.background,
        n=req.n,
        timeout_s=timeout_s,
    )


def _settings_of(req: EditRequest) -> dict[str, Any]:
    return req.model_dump(exclude={"include_base64"})


async def run_edit(gw: Gateway, req: EditRequest, raw: RawInputs, *, base_url: str) -> EditResponse:
    t0 = time.perf_counter()
    limits = gw.settings.limits
    p = await gw.workers.run(lambda: prepare(req, raw, limits))
    inputs = await gw.workers.run(lambda: _store_inputs(gw, p, base_url))
    edit_id = f"edit_{uuid.uuid4().hex}"
    created = int(time.time())
    record: dict[str, Any] = {
        "id": edit_id,
        "created": created,
        "settings": _settings_of(req),
        "chips": p.chips,
        "inputs": inputs.model_dump(),
    }
    caps = {name: prov.capabilities for name, prov in gw.providers.items()}
    decision = decide(p.features, gw.policy, forced_provider=gw.forced_provider, capabilities=caps)
    route = RouteInfo(
        rule=decision.rule,
        policy_version=decision.policy_version,
        candidates=[c.provider for c in decision.candidates],
        dropped=[d.model_dump() for d in decision.dropped],
        trace=[t.model_dump() for t in decision.trace],
    )
    t_intake = time.perf_counter()
    log.info("edit_routed", edit_id=edit_id, rule=decision.rule, candidates=route.candidates)

    def fail(error: ApiError) -> ApiError:
        record.update(status="failed", route=route.model_dump(), error=error.body()["error"])
        gw.records.put(edit_id, record)
        error.extra["edit_id"] = edit_id
        log.info("edit_failed", edit_id=edit_id, code=error.code)
        return error

    if decision.refused:
        reasons = "; ".join(f"{d.provider}: {', '.join(d.reasons)}" for d in decision.dropped)
        raise fail(
            ApiError(
                422, "no_capable_provider", f"No configured provider can serve this request ({reasons})."
            )
        )
    try:
        outcome = await execute(
            decision,
            gw.providers,
            lambda c: _job(p, c, min(c.timeout_s, gw.settings.request_timeout_s)),
            gw.settings.request_timeout_s,
        )
    except ExecutionFailed as failed:
        route.attempts = failed.attempts
        raise fail(failed.error) from None
    route.attempts = outcome.attempts
    route.fallbacks_taken = len(outcome.attempts) - 1
    t_provider = time.perf_counter()

    provider = gw.providers[outcome.candidate.provider]
    edit = p.mask.blob.pixels if p.mask else None
    lock = edit is not None and ("only_mask" in p.chips or not provider.capabilities.native_mask)
    assert p.work.pixels is not None
    work_pixels = p.work.pixels

    def finish() -> list[tuple[NormalizedImage, Any]]:
        out = []
        for image in outcome.result.images:
            norm, pres = normalize(
                image,
                source=work_pixels,
                edit=edit,
                lock=lock,
                out_size=p.out_size,
                fmt=req.output_format,
                quality=req.output_compression,
                opaque=req.background == "opaque",
                feather_px=gw.settings.feather_px,
            )
            gw.blobs.put(norm.data)
            out.append((norm, pres))
        return out

    normalized = await gw.workers.run(finish)
    t_end = time.perf_counter()
    images = [
        OutputImage(
            id=n.sha256,
            url=f"{base_url}/v1/files/{n.sha256}",
            width=n.width,
            height=n.height,
            format=n.format,
            sha256=n.sha256,
            bytes=len(n.data),
            b64_json=base64.b64encode(n.data).decode() if req.include_base64 else None,
        )
        for n, _ in normalized
    ]
    provider_ms = round(outcome.provider_ms, 2)
    total_ms = _ms(t0, t_end)
    response = EditResponse(
        id=edit_id,
        status="succeeded",
        created=created,
        images=images,
        provider=outcome.candidate.provider,
        model=outcome.candidate.model,
        route=route,
        cost=Cost(estimated_usd=None, actual_usd=None, usage=outcome.result.usage),
        latency_ms=Latency(
            total=total_ms,
            intake=_ms(t0, t_intake),
            provider=provider_ms,
            normalize=_ms(t_provider, t_end),
            gateway=round(total_ms - provider_ms, 2),
        ),
        preservation=normalized[0][1] if normalized else None,
        mask=MaskReport(convention=p.mask_convention, coverage=round(p.mask.coverage, 6))  # type: ignore[arg-type]
        if p.mask and p.mask_convention
        else None,
        inputs=inputs,
        revised_prompt=outcome.result.revised_prompt,
        warnings=p.warnings,
        emulated=outcome.result.emulated,
        metadata=req.metadata,
    )
    record.update(response.model_dump(exclude={"images": {"__all__": {"b64_json"}}}))
    record["settings"] = _settings_of(req)
    await gw.workers.run(lambda: gw.records.put(edit_id, record))
    log.info("edit_succeeded", edit_id=edit_id, provider=response.provider, total_ms=total_ms)
    return response
