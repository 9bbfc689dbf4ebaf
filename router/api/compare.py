"""``POST /v1/compare`` (one edit, several providers, side by side), ``POST /v1/edits/{id}/feedback``
and ``GET /v1/experiments/{name}/report``."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from router.api.edits import base_url
from router.api.openapi import EditOperation, guarded
from router.auth import TenantId
from router.errors import ApiError
from router.idempotency import Answer, idempotent_batch
from router.intake.prepare import prepare
from router.intake.request import RawInputs, parse_edit_request
from router.model_params import model_taking
from router.models import EditRequest
from router.reports import Report, build_report
from router.service import EditTarget, Gateway, route, run_edit, start_session
from router.storage.store import VERSION_ID

COMPARE_EXPERIMENT = "compare"
"""Side-by-side runs are arms (one per provider) of this experiment: ``GET /v1/experiments/compare/report``
shows which provider people pick, from the winners chosen with feedback."""


async def _compare(gw: Gateway, tenant: str, req: EditRequest, raw: RawInputs, providers: str | None,
                   url: str) -> Answer:  # fmt: skip
    """Each provider's run of the same inputs, as a version of one new session."""
    p = await gw.workers.run(lambda: prepare(req, raw, gw.settings.limits, tenant))
    if providers:
        names = list(dict.fromkeys(n.strip() for n in providers.split(",") if n.strip()))
    else:  # one arm per provider, whichever of its models the policy would try first
        names = list(dict.fromkeys(c.provider for c in (await route(gw, p, tenant, None, None)).candidates))
    if not names or len(names) > 8:
        raise ApiError(422, "invalid_parameter", "Name 1 to 8 providers, or let the policy choose.", "providers")
    session_id, v0 = await start_session(gw, tenant, p.source, url, {"compare": names})

    async def one(name: str) -> dict[str, Any]:
        # recorded as arm `name` of the experiment "compare": the picks (feedback) feed its report
        target = EditTarget(tenant, session_id, v0, base_url=url, comparison=True, tag=(COMPARE_EXPERIMENT, name))
        arm = {"provider": name}  # on a model that takes the request's model-specific parameters (gif, markup)
        if req.model is None and (model := model_taking(gw.policy, name, p.features.needs)):
            arm["model"] = model
        try:
            own = RawInputs(raw.image, raw.mask, list(raw.references))  # each run releases its inputs
            response = await run_edit(gw, req.model_copy(update=arm), own, target)
        except ApiError as err:
            return {"provider": name, "status": "failed", "error": err.body()["error"]}
        body = response.model_dump(mode="json")
        keep = ("id", "provider", "model", "status", "version", "images", "cost", "latency_ms", "preservation",
                "emulated")  # fmt: skip
        return {k: body[k] for k in keep}

    results = await asyncio.gather(*(one(n) for n in names))
    return Answer({"session_id": session_id, "providers": names, "results": list(results)}, {}, v0.id)


@post("/v1/compare", status_code=200, summary="One edit sent to several providers, side by side",
      tags=["compare"], operation_class=EditOperation, **guarded(409, 413, 415, 422))  # fmt: skip
async def compare_providers(
    request: Request, tenant: TenantId, providers: FromQuery[str | None] = None
) -> Response[dict[str, Any]]:
    """Same body as `POST /v1/edits`. `?providers=gemini,openai-images` chooses who runs it; without
    it, the policy's candidates for this request do. Every result (or error) comes back side by side,
    each as a version of one new session, and the ledger marks these attempts as comparisons. Each run is
    an arm (its provider) of the experiment `compare`: feedback on the results (the winner accepted, the
    others rejected) feeds `GET /v1/experiments/compare/report`.
    `Idempotency-Key` makes a retry safe."""
    gw: Gateway = request.app.state.gateway
    req, raw = await parse_edit_request(request)
    if req.session_id:
        raise ApiError(
            422, "invalid_parameter", "A compare starts from an uploaded image, not a session.", "session_id"
        )
    url = base_url(request, gw)
    fields = {**req.model_dump(mode="json"), "providers": providers}
    return await idempotent_batch(
        request, gw, tenant, fields, raw, lambda: _compare(gw, tenant, req, raw, providers, url)
    )


class FeedbackIn(BaseModel):
    verdict: Literal["accepted", "rejected"] | None = None
    rating: int | None = Field(None, ge=1, le=5)
    reason: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _something(self) -> FeedbackIn:
        if self.verdict is None and self.rating is None:
            # Located at `verdict`, so the error's `param` names a field to send rather than nothing.
            message = "send a verdict (accepted or rejected), a rating (1-5), or both"
            error = InitErrorDetails(type=PydanticCustomError("missing", message), loc=("verdict",), input=None)
            raise ValidationError.from_exception_data(type(self).__name__, [error])
        return self


@post("/v1/edits/{edit_id:str}/feedback", status_code=201, summary="Record a verdict on an edit", tags=["compare"],
      **guarded(404, 422))  # fmt: skip
async def feedback(
    request: Request, tenant: TenantId, edit_id: FromPath[str], data: JSONBody[FeedbackIn]
) -> dict[str, Any]:
    gw: Gateway = request.app.state.gateway
    version = await gw.store.version_by_id(tenant, edit_id) if VERSION_ID.match(edit_id) else None
    if version is None or version.number == 0:
        raise ApiError(404, "not_found", f"No edit {edit_id!r}.", "edit_id")
    row = await gw.store.add_feedback(tenant, version.id, data.verdict, data.rating, data.reason)
    return {"id": row.id, "edit_id": version.id, "verdict": row.verdict, "rating": row.rating}


@get("/v1/experiments/{name:str}/report", summary="An experiment's arms compared", tags=["compare"],
     **guarded(404))  # fmt: skip
async def experiment_report(request: Request, tenant: TenantId, name: FromPath[str]) -> Report:
    """Your tenant's edits in this experiment (or shadow), per arm, with 95% intervals against the baseline."""
    gw: Gateway = request.app.state.gateway
    attempts, latest, versions = await gw.store.experiment_rows(name, tenant)
    if not attempts:
        raise ApiError(404, "not_found", f"No edits recorded for experiment {name!r}.", "name")
    return build_report(name, attempts, latest, versions)
