"""One edit, end to end: intake -> accept -> route -> execute -> normalize -> finish.

Each step is one call into its own module; this file sequences and times them. The version's state
changes only through :mod:`router.lifecycle` (a synchronous edit writes two transactions: accept and
finish), so a failure anywhere still leaves the caller's inputs and settings stored and findable
(``GET /v1/edits/{id}``, ``POST .../versions/{v}/retry``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import pybase64
import structlog

from policies import Candidate, Features, Policy, RouteDecision, decide, shadow_for
from policies.model import Refusal, Shadow, split_target
from providers.base import EditJob, ImageBlob, OnPartial, Provider
from providers.catalog import svg_author_of
from providers.imaging import AS_MADE_FORMATS
from providers.pricing import PriceTable, UsageInputs, actual_usd, chain_tokens_after, estimate_usd
from router.answers import AnswerTurns, Turn
from router.blobs import BlobStore
from router.chains import CHAIN_KIND, HISTORY_PROVIDER, History, carried_input, parent_history, store_history
from router.costs import SKIPPED_OVER_CAP, check_cap, check_svg_author, cost_section
from router.deferred import DeferredScores
from router.errors import ApiError
from router.events import EventBus, attempt_publisher, partial_publisher, routed_data
from router.executor import ExecutionFailed, Outcome, Resources, execute
from router.intake.images import LoadedImage
from router.intake.prepare import PreparedEdit, prepare
from router.intake.request import RawInputs
from router.lifecycle import CANCELED, INTERRUPTED, Finish, IdempotencyClaim, Lifecycle, NewSession
from router.limits import BudgetHold, limits_from_policy
from router.limits.base import utc_day
from router.links import LinkSigner
from router.metrics import Metrics
from router.model_params import accepts_for, model_targets, safety_identifier_for
from router.models import (
    Attempt,
    Chain,
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
from router.normalize import NormalizedImage, as_made, normalize, score
from router.provenance import load_config
from router.registry import in_use
from router.settings import Settings
from router.storage.models import Version
from router.storage.store import BILLED, SessionGone, Spend, Store, new_id
from router.tracing import traced
from router.workers import ImageWorkers

log = structlog.get_logger("editgate.edit")
CHAIN_PROVIDER = "openai-responses"
SETTINGS_EXCLUDED = {"include_base64", "async_"}
"""Request fields that say how to answer, not what to edit: not stored with the version."""


@dataclass(slots=True)
class Gateway:
    """Everything an edit needs, built once at start-up."""

    settings: Settings
    policy: Policy
    providers: Mapping[str, Provider]
    blobs: BlobStore
    store: Store
    workers: ImageWorkers
    resources: Resources
    prices: PriceTable
    metrics: Metrics
    lifecycle: Lifecycle
    forced_provider: str | None = None
    dev_tenant: str | None = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    runs: dict[str, tuple[asyncio.Task[Any], EditRun]] = field(default_factory=dict)
    """Edits running in this process, by version id: what cancel stops and a drain waits for."""
    draining: bool = False
    events: EventBus = field(default_factory=EventBus)
    """Each edit's live events (queued, routed, attempt, partial_image, completed | failed) for SSE."""
    scores: DeferredScores | None = None
    """Preservation scores measured after the answer (answers that do not show them); None: none are."""
    links: LinkSigner | None = None
    """Signs and checks the expiring file links of ``?url_style=signed`` (router/links.py)."""
    answers: AnswerTurns = field(default_factory=lambda: AnswerTurns(8))
    """How many provider answers are read, decoded and stored at once (memory, with many edits in flight)."""

    async def shielded(self, run: EditRun, work: Coroutine[Any, Any, EditResponse]) -> EditResponse:
        """Run ``work`` as a task of its own: cancelling the caller (a disconnect) leaves it running."""
        task = asyncio.create_task(work)
        version_id = run.version.id
        self.runs[version_id] = (task, run)

        def done(t: asyncio.Task[Any]) -> None:
            self.runs.pop(version_id, None)
            if not t.cancelled():
                t.exception()  # retrieved: a caller that went away must not leave it "never retrieved"
            elif version_id in self.lifecycle.held:  # cancelled before its first step: its body never ran
                self.spawn(run.stop(), "end a run stopped before it started")

        task.add_done_callback(done)
        return await asyncio.shield(task)

    def stop(self, version_id: str, as_status: str) -> asyncio.Task[Any] | None:
        """Cancel a run of this process (``as_status``: canceled or interrupted); its task, to await."""
        found = self.runs.get(version_id)
        if found is None:
            return None
        task, run = found
        run.stop_as = as_status
        task.cancel()
        return task

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``work`` after the response (shadow traffic); failures are logged, never raised."""

        async def guarded() -> None:
            try:
                await work
            except Exception as exc:  # the caller already has its answer
                log.info("background_failed", what=what, error=getattr(exc, "code", type(exc).__name__))

        task = asyncio.create_task(guarded())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def set_policy(self, policy: Policy) -> None:
        """Swap the running policy (reload); execution limits follow it."""
        self.policy = policy
        self.resources.limits.configure(limits_from_policy(policy))
        self.resources.retries = {n: p.retries for n, p in policy.providers.items()}
        self.resources.breakers.configure(policy.breaker)

    def options(self, provider: str) -> dict[str, Any]:
        settings = self.policy.providers.get(provider)
        return settings.options if settings else {}


@dataclass(slots=True)
class EditTarget:
    """Where an edit lands: a new session (standalone edit) or a version tree's branch point."""

    tenant: str
    session_id: str | None = None
    parent: Version | None = None
    retry_of: int | None = None
    base_url: str = ""
    extra_warnings: list[str] = field(default_factory=list)
    comparison: bool = False
    """Part of a side-by-side compare: ledger rows are marked so reports and budgets can tell."""
    shadow_of: int | None = None
    tag: tuple[str, str] | None = None
    """(experiment, arm) to record instead of the decision's: shadow traffic and its primary."""
    claim: IdempotencyClaim | None = None
    """The Idempotency-Key this edit holds: claimed in its accept, answered or freed in its end."""
    shape: Callable[[EditResponse], Awaitable[Any]] | None = None
    """The endpoint's answer for a result (stored for the key's replays); default the native one."""
    answer: Any = None
    score_after_response: bool = False
    """The answer cannot show the preservation score (the drop-in): it is measured after the answer and
    lands in the record only, so the request path does no pixel work whose result the caller never sees."""


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)


def file_ref(base_url: str, sha: str, blob: ImageBlob, fmt: str) -> FileRef:
    return FileRef(
        id=sha,
        url=f"{base_url}/v1/files/{sha}",
        width=blob.width,
        height=blob.height,
        format=fmt,
        sha256=sha,
        bytes=blob.nbytes,
    )


def expiry(settings: Settings) -> float:
    return time.time() + settings.retention_days * 86400


StoredFile = tuple[bytes, str, str | None]
"""Bytes, kind (source, mask, result, ...), and their sha256 when something already computed it."""


BlobUse = tuple[str, str, int]
"""A stored file as a session uses it: sha256, kind, size."""


def put_files(blobs: BlobStore, items: list[StoredFile]) -> list[BlobUse]:
    """Write files, content-addressed (blocking: call from a worker)."""
    return [(blobs.put(data, sha), kind, len(data)) for data, kind, sha in items]


async def store_blobs(gw: Gateway, tenant: str, session_id: str, items: list[StoredFile]) -> list[str]:
    """Write files (content-addressed, off the loop) and record that the session uses them."""
    uses = await gw.workers.run(lambda: put_files(gw.blobs, items))
    await gw.store.own_blobs(tenant, session_id, uses)
    return [sha for sha, _, _ in uses]


async def start_session(
    gw: Gateway, tenant: str, source: LoadedImage, base_url: str, meta: dict[str, Any]
) -> tuple[str, Version]:
    """A new session whose version 0 is the uploaded (oriented, stripped) source."""
    data = source.blob.data
    sha = source.blob.sha256 = await gw.workers.run(lambda: gw.blobs.put(data, source.blob.sha256))
    ref = file_ref(base_url, sha, source.blob, source.format)
    result = {"image": ref.model_dump(), "warnings": source.notes}
    return await gw.store.start_session(
        tenant, expiry(gw.settings), meta, sha, len(data), status="succeeded", result=result, finished_at=time.time()
    )


def _job(p: PreparedEdit, candidate: Candidate, timeout_s: float, previous_response_id: str | None,
         on_partial: OnPartial | None = None, history: History | None = None, tenant: str = "",
         turn: Turn | None = None) -> EditJob:  # fmt: skip
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
        previous_response_id=previous_response_id if candidate.provider == CHAIN_PROVIDER else None,
        chain_history=history.for_candidate(candidate) if history else None,
        timeout_s=timeout_s,
        connect_timeout_s=min(candidate.connect_timeout_s, timeout_s),
        partial_images=req.partial_images,
        on_partial=on_partial,
        params=req.provider_params,
        markup=p.markup,
        safety_identifier=safety_identifier_for(req.provider_params, tenant),
        answer_turn=turn.take if turn is not None else None,
    )


def _ledger_rows(target: EditTarget, session_id: str, version_id: str, decision: RouteDecision,
                 attempts: list[Attempt], usage: dict[str, int], actual: float | None,
                 total_ms: float | None) -> list[dict[str, Any]]:  # fmt: skip
    estimates = {(c.provider, c.model): c.estimate_usd for c in decision.candidates}  # a provider may serve two
    experiment, arm = target.tag or (decision.experiment, decision.arm)
    return [
        {
            "tenant_id": target.tenant,
            "session_id": session_id,
            "version_id": version_id,
            "provider": a.provider,
            "model": a.model,
            "rule": decision.rule,
            "experiment": experiment,
            "arm": arm,
            "comparison": target.comparison or target.shadow_of is not None,
            "estimated_usd": estimates.get((a.provider, a.model)),
            "actual_usd": actual if a.outcome == "ok" else None,
            "provider_ms": a.latency_ms,
            "total_ms": total_ms if a.outcome == "ok" else None,
            "outcome": a.outcome,
            "error_code": None if a.outcome == "ok" else a.outcome,
            "usage": usage if a.outcome == "ok" else {},
        }
        for a in attempts
        if a.outcome not in ("skipped_circuit_open", SKIPPED_OVER_CAP)
    ]


def usage_inputs(p: PreparedEdit, chain_tokens: int = 0) -> UsageInputs:
    out_w, out_h = p.out_size or (p.work.width, p.work.height)
    refs = tuple((r.blob.width, r.blob.height) for r in p.references)
    sizes = refs if p.request.mode == "generate" else ((p.work.width, p.work.height), *refs)
    return UsageInputs(p.prompt, sizes, out_w, out_h, p.request.quality, p.request.n, p.mask is not None,
                       partial_images=p.request.partial_images, chain_tokens=chain_tokens,
                       openai_quality=p.request.provider_params.get("quality"),
                       svg_author=svg_author(p.request))  # fmt: skip


def svg_author(req: EditRequest) -> tuple[str, str] | None:
    """SVG output's author (model, effort), whose tokens are billed apart; None for any other format."""
    return svg_author_of(req.provider_params.get("svg")) if req.output_format == "svg" else None


def continues_chain(parent: Version | None, p: PreparedEdit) -> bool:
    """The parent's Responses chain is continued when nothing but the prompt changes."""
    return (
        parent is not None and parent.provider == CHAIN_PROVIDER and bool(parent.chain_response_id)
        and p.mask is None and not p.references
    )  # fmt: skip


def chain_tokens(parent: Version | None, p: PreparedEdit) -> int:
    """The tokens a continued chain re-bills for its earlier rounds, from the parent round's reported usage."""
    if parent is None or not continues_chain(parent, p):
        return 0
    return chain_tokens_after(((parent.result or {}).get("cost") or {}).get("usage") or {})


def estimates_for(policy: Policy, names: list[str], p: PreparedEdit, prices: PriceTable,
                  parent: Version | None = None) -> dict[str, float | None]:  # fmt: skip
    """By provider (its configured model) and by each ``provider/model`` target a route or the caller names.
    The provider that would continue the parent's chain includes what continuing re-bills: the Responses
    chain's earlier rounds, or the Gemini conversation's history."""
    u = usage_inputs(p)
    continued = {CHAIN_PROVIDER: usage_inputs(p, chain_tokens(parent, p))}
    if parent is not None and (carried := carried_input(parent, p.mask is None and not p.references)):
        continued[HISTORY_PROVIDER] = replace(u, image_sizes=(), carried=tuple(carried.items()))
    out: dict[str, float | None] = {}
    for target in [*names, *model_targets(policy, requested_target(p))]:
        name, model = split_target(target)
        if name in policy.providers:
            settings = policy.providers[name]
            out[target] = estimate_usd(name, model or settings.model, settings.options, continued.get(name, u), prices)
    return out


def requested_target(p: PreparedEdit) -> str | None:
    req = p.request
    return f"{req.provider}/{req.model}" if req.provider and req.model else None


def start_of_utc_day(now: float) -> float:
    return now - now % 86400


def policy_features(p: PreparedEdit, tenant: str, session_provider: str | None) -> Features:
    """What the policy sees of an edit: intake's features, the parent's provider and the tenant."""
    return p.features.model_copy(update={"session_provider": session_provider, "tenant": tenant})


HOLD_TRIES = 5
"""Routes tried when other edits' budget holds take the room between reading them and holding (a race)."""


@traced("editgate.decide")
async def route(gw: Gateway, p: PreparedEdit, tenant: str, session_id: str | None, session_provider: str | None,
                shadow: bool = False, parent: Version | None = None, hold: BudgetHold | None = None
                ) -> RouteDecision:  # fmt: skip
    """Everything that varies, gathered for the pure engine: health, spend, estimates, sticky keys.
    ``shadow``: the operator's shadow traffic, which no tenant budget limits. ``parent``: the version this
    edit continues (a continued chain or conversation re-bills its history: see :func:`estimates_for`).
    ``hold``: reserve the chosen call's estimate against the tenant's cap (see :func:`hold_budget`)."""
    features = policy_features(p, tenant, session_provider)
    names = list(gw.providers)
    estimates = estimates_for(gw.policy, names, p, gw.prices, parent)
    accepts = accepts_for(gw.policy, gw.providers, model_targets(gw.policy, requested_target(p)))
    limit = None if shadow else gw.policy.budgets.limit_for(tenant)
    now, since = time.time(), await gw.resources.limits.mark() if limit is not None else 0.0
    spent = await gw.store.spent_since(tenant, start_of_utc_day(now)) if limit is not None else Spend()
    for _ in range(HOLD_TRIES):
        held = await held_by_others(gw, tenant, utc_day(now), since, hold) if limit is not None else 0.0
        decision = decide(
            features,
            gw.policy,
            forced_provider=gw.forced_provider,
            capabilities={name: prov.capabilities for name, prov in gw.providers.items()},
            health=gw.resources.breakers.health(names),
            estimates=estimates,
            spent_today_usd=spent.tenant_usd + held,
            shadow_today_usd=spent.shadow_usd,
            keys={"tenant": tenant, "session": session_id, "key": p.request.experiment_key},
            shadow=shadow,
            accepts=accepts,
        )
        if limit is None or hold is None or await hold_budget(gw, decision, hold, tenant, utc_day(now),
                                                              limit - spent.tenant_usd, since):  # fmt: skip
            return decision
    decision.candidates = []
    why = f"Tenant {tenant}'s daily budget of ${limit:.2f} is held by edits running now; it resets at 00:00 UTC."
    decision.refusal = Refusal(status=402, code="budget_exceeded", message=why)
    return decision


async def held_by_others(gw: Gateway, tenant: str, day: str, since: float, hold: BudgetHold | None) -> float:
    """The tenant's budget holds today that the ledger read at ``since`` does not show, other than
    ``hold`` (an edit routed again keeps its own)."""
    own = hold.amount if hold is not None and hold.held else 0.0
    return max(0.0, await gw.resources.limits.held_usd(tenant, day, since) - own)


async def hold_budget(gw: Gateway, decision: RouteDecision, hold: BudgetHold, tenant: str, day: str,
                      room: float, since: float) -> bool:  # fmt: skip
    """Hold the first call's estimate, so concurrent edits (on any replica) cannot together pass the cap
    that each alone fits; False: others took the room meanwhile (route again). A refusal holds nothing."""
    if decision.refusal is not None or not decision.candidates:
        return True
    hold.tenant, hold.day = tenant, day
    estimate = decision.candidates[0].estimate_usd or 0.0
    return await gw.resources.limits.hold(hold, estimate, room, since) is None


def route_info(decision: RouteDecision) -> RouteInfo:
    return RouteInfo(
        rule=decision.rule,
        policy_version=decision.policy_version,
        policy_digest=decision.policy_digest,
        experiment=decision.experiment,
        arm=decision.arm,
        budget=decision.budget.model_dump() if decision.budget else None,
        candidates=[c.target or c.provider for c in decision.candidates],
        dropped=[d.model_dump() for d in decision.dropped],
        trace=[t.model_dump() for t in decision.trace],
    )


def first_call(decision: RouteDecision | None) -> dict[str, Any]:
    """Version columns naming the call about to be made: what recovery ledgers if this process dies."""
    if decision is None or decision.refusal is not None or not decision.candidates:
        return {}
    first = decision.candidates[0]
    return {"provider": first.provider, "model": first.model, "rule": decision.rule}


def route_columns(decision: RouteDecision | None, p: PreparedEdit, tenant: str,
                  session_provider: str | None) -> dict[str, Any]:  # fmt: skip
    """The version columns written with its route: the call about to be made (:func:`first_call`) and, for
    ``POST /v1/route/what-if`` to replay, what the policy saw (features, experiment key), the first candidate it
    chose, and what its estimates price (input sizes, the prompt's UTF-8 length: its token count)."""
    first = first_call(decision)
    if not first:
        return {}
    recorded = {
        "features": policy_features(p, tenant, session_provider).model_dump(mode="json"),
        "experiment_key": p.request.experiment_key,
        "provider": first["provider"],
        "image_sizes": usage_inputs(p).image_sizes,
        "prompt_bytes": len(p.prompt.encode()),
    }
    return {**first, "route_features": recorded}


def _open_record(inputs: Inputs, settings: dict[str, Any], decision: RouteDecision | None, base_url: str,
                 p: PreparedEdit) -> dict[str, Any]:  # fmt: skip
    """What ``GET /v1/edits/{id}`` shows while the edit is queued or running."""
    record: dict[str, Any] = {"inputs": inputs.model_dump(), "settings": settings, "_base_url": base_url,
                              "metadata": p.request.metadata}  # fmt: skip
    if decision is not None:
        record["route"] = route_info(decision).model_dump()
        if decision.candidates:
            record["cost"] = {"estimated_usd": decision.candidates[0].estimate_usd}
    return record


class EditRun:
    """One edit after its version row exists: :meth:`run` routes, executes, normalizes and finishes;
    every way out other than success ends the version in one terminal transition (failed, or
    interrupted / canceled when the run is stopped), so nothing stays running."""

    def __init__(self, gw: Gateway, p: PreparedEdit, target: EditTarget, session_id: str, parent: Version,
                 version: Version, inputs: Inputs, started: float) -> None:  # fmt: skip
        self.gw, self.p, self.target, self.session_id = gw, p, target, session_id
        self.parent, self.version, self.inputs, self.t0 = parent, version, inputs, started
        self.settings = p.request.model_dump(exclude=SETTINGS_EXCLUDED)
        self.decision: RouteDecision | None = None
        self.route_info = RouteInfo(
            rule="", policy_version=gw.policy.version, policy_digest=gw.policy.digest, candidates=[]
        )
        self.t_routed = started
        self.shadow: Shadow | None = None
        self.outcome: Outcome | None = None
        self.actual: float | None = None
        self.upload_bytes = 0
        self.raw: RawInputs | None = None
        self.stop_as = INTERRUPTED
        """What a cancellation of this run means: the caller's cancel, or a drain that ran out."""
        self.held_slot: str | None = None
        self.budget_hold = BudgetHold()
        """This edit's reservation of its estimate against the tenant's cap, settled when the run ends."""
        """The provider whose concurrency slot this run holds from its claim (a queued edit's first candidate)."""
        self.deferred_score: Callable[[], Any] | None = None
        """The preservation score left for after the answer (see :attr:`EditTarget.score_after_response`)."""
        self.history: History | None = None
        """The parent's Gemini conversation, continued by a Gemini candidate of the same model."""
        self.turn = gw.answers.turn()
        """This edit's turn to read, decode and store its provider's answer: held from the answer's arrival until
        its result is in the blob store, so answers that arrive together wait unread instead of piling up."""

    @property
    def header(self) -> dict[str, Any]:
        v = self.version
        return {"id": v.id, "session_id": self.session_id, "version": v.number, "parent_version": self.parent.number}

    async def run(self, decision: RouteDecision | None = None) -> EditResponse:
        """``decision``: the route a synchronous edit took before its accept; a queued one routes here."""
        self.gw.metrics.in_flight.inc()
        try:
            decision = await self.routed(decision)
            outcome = await self.execute(decision)
            lock, normalized = await self.normalize(outcome)
            return await self.finish(outcome, lock, normalized)
        except ApiError as error:
            raise await self.fail(error) from None
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                with anyio.CancelScope(shield=True):
                    await self.stop()
                raise
            log.exception("edit_internal_error", edit_id=self.version.id, error_type=type(exc).__name__)
            error = ApiError(500, "internal_error", "The edit failed inside the gateway; its inputs are kept.")
            with anyio.CancelScope(shield=True):
                await self.fail(error)
            if not isinstance(exc, Exception):
                raise
            raise error from exc
        finally:
            self.turn.release()
            self.gw.metrics.in_flight.dec()
            with anyio.CancelScope(shield=True):
                await self.settle_budget()

    async def settle_budget(self) -> None:
        """The run ended: its budget hold now counts what its calls may have cost (as the ledger counts
        them), until every replica reads that from the ledger."""
        if self.budget_hold.held:
            billed = sum(r["actual_usd"] if r["actual_usd"] is not None else r["estimated_usd"] or 0.0
                         for r in self.ledger() if r["outcome"] in BILLED)  # fmt: skip
            await self.gw.resources.limits.settle(self.budget_hold, billed)

    async def choose_route(self) -> RouteDecision:
        return await route(self.gw, self.p, self.target.tenant, self.session_id, self.parent.provider,
                           shadow=self.target.shadow_of is not None, parent=self.parent,
                           hold=self.budget_hold)  # fmt: skip

    async def routed(self, decision: RouteDecision | None) -> RouteDecision:
        """Take the route; a queued edit (routed when claimed, or just before) records the call it is
        about to make, which its accept could not."""
        gw = self.gw
        if decision is None:
            decision = await self.choose_route()
        if self.version.queued_at is not None and (
            columns := route_columns(decision, self.p, self.target.tenant, self.parent.provider)
        ):
            record = {**self.version.result, "route": route_info(decision).model_dump(),
                      "cost": {"estimated_usd": decision.candidates[0].estimate_usd}}  # fmt: skip
            await gw.lifecycle.routed(self.version, record=record, **columns)
            self.version.result = record
        self.decision = decision
        self.route_info = route_info(decision)
        self.t_routed = time.perf_counter()
        gw.events.publish(self.version.id, "routed", routed_data(decision))
        self.shadow = self._sample_shadow(decision)
        gw.metrics.decided(decision.rule, decision.experiment, decision.arm)
        log.info("edit_routed", edit_id=self.version.id, rule=decision.rule, candidates=self.route_info.candidates,
                 experiment=decision.experiment, arm=decision.arm)  # fmt: skip
        if decision.refusal is not None:
            refusal = decision.refusal
            raise ApiError(refusal.status, refusal.code, refusal.message, refusal.param)
        check_cap(decision.candidates, self.p.request.max_cost_usd)
        return decision

    async def calling(self, candidate: Candidate) -> None:
        """The run moves to a fallback: the version names that call (and its estimate), so a crash
        during it is ledgered against the provider actually called."""
        record = dict(self.version.result or {})
        record["cost"] = {**(record.get("cost") or {}), "estimated_usd": candidate.estimate_usd}
        self.version.result = record
        await self.gw.lifecycle.calling(self.version, candidate.provider, candidate.model, record)

    @property
    def chainable(self) -> bool:
        """A provider's chain continues when nothing but the prompt changes."""
        return self.p.mask is None and not self.p.references

    @property
    def previous_response_id(self) -> str | None:
        """The parent's Responses chain, continued when nothing but the prompt changes."""
        return self.parent.chain_response_id if continues_chain(self.parent, self.p) else None

    async def execute(self, decision: RouteDecision) -> Outcome:
        """The provider calls, under the route's deadline; every attempt stays in the trace."""
        gw, p, previous = self.gw, self.p, self.previous_response_id
        deadline = decision.deadline_s or gw.settings.request_timeout_s
        if self.chainable:
            self.history = history = await parent_history(self.parent, gw.blobs, gw.workers)
        else:
            history = None
        partials = partial_publisher(gw.events, self.version.id, p.request.output_format, gw.workers.run)
        turn = self.turn
        try:
            async with in_use(gw.providers) as providers:  # a reload closes replaced clients only after this
                outcome = await execute(
                    decision, providers,
                    lambda c: _job(p, c, min(c.timeout_s, deadline), previous, partials, history, self.target.tenant,
                                   turn),
                    deadline, gw.resources, attempts=self.route_info.attempts,  # kept if this run is cancelled
                    on_attempt=attempt_publisher(gw.events, self.version.id), held=self.held_slot,
                    on_call=self.calling, max_cost_usd=p.request.max_cost_usd,
                )  # fmt: skip
        except ExecutionFailed as failed:
            self.route_info.attempts = failed.attempts
            raise failed.error from None
        self.outcome = outcome
        self.route_info.attempts = outcome.attempts
        self.route_info.fallbacks_taken = len(outcome.attempts) - 1
        served_by = outcome.candidate.provider
        self.actual = actual_usd(served_by, outcome.candidate.model, gw.options(served_by), outcome.result.usage,
                                 gw.prices, self._svg_author(outcome))  # fmt: skip
        if self.actual is None:
            log.warning("cost_unknown", provider=served_by, model=outcome.candidate.model)
        gw.metrics.attempted(outcome.attempts)
        gw.metrics.billed(served_by, outcome.candidate.model, outcome.result.usage, self.actual, self.target.tenant)
        return outcome

    def ledger(self, total_ms: float | None = None) -> list[dict[str, Any]]:
        """One row per call made so far (the paid one with its usage and cost)."""
        if self.decision is None:
            return []
        usage = self.outcome.result.usage if self.outcome else {}
        return _ledger_rows(self.target, self.session_id, self.version.id, self.decision, self.route_info.attempts,
                            usage, self.actual, total_ms)  # fmt: skip

    @traced("editgate.store")
    async def finish(self, outcome: Outcome, lock: bool, normalized: list[tuple[NormalizedImage, Any]]) -> EditResponse:
        """succeeded, in one transaction: the result, the ledger, the files, the session's expiry, the key."""
        gw, p = self.gw, self.p
        served_by, model = outcome.candidate.provider, outcome.candidate.model
        shas = await gw.workers.run(lambda: [gw.blobs.put(n.data, n.sha256) for n, _ in normalized])
        # a mask-locked result is no longer the provider's own output: its chain cannot continue from it
        history = None if lock else await store_history(outcome.result.chain_blob, gw.blobs, gw.workers)
        outcome.result.images = []  # stored: this run holds no copy of the provider's answer any longer
        self.turn.release()
        t_end = time.perf_counter()
        previous = self.previous_response_id
        chain = self._chain(served_by, previous, model, outcome.result.raw.get("chain_restarted"))
        self.history = None
        expires_at = expiry(gw.settings)
        total_ms = _ms(self.t0, t_end)
        provider_ms = round(outcome.provider_ms, 2)
        response = EditResponse(
            **self.header,
            status="succeeded",
            created=int(self.version.created_at),
            expires_at=int(expires_at),
            images=[self._image(n) for n, _ in normalized],
            provider=served_by,
            model=model,
            route=self.route_info,
            cost=self._cost(outcome),
            latency_ms=Latency(
                total=total_ms,
                intake=_ms(self.t0, self.t_routed),
                queueing=round(outcome.queue_ms, 2),
                provider=provider_ms,
                normalize=_ms(self.t_routed + (outcome.provider_ms + outcome.queue_ms) / 1000, t_end),
                gateway=round(total_ms - provider_ms, 2),
            ),
            preservation=normalized[0][1] if normalized else None,
            mask=MaskReport(convention=p.mask_convention, coverage=round(p.mask.coverage, 6))  # type: ignore[arg-type]
            if p.mask and p.mask_convention
            else None,
            inputs=self.inputs,
            revised_prompt=outcome.result.revised_prompt,
            rendered=outcome.result.rendered,
            chain=chain,
            warnings=[*p.warnings, *self.target.extra_warnings],
            emulated=outcome.result.emulated,
            metadata=p.request.metadata,
        )
        first = response.images[0] if response.images else None
        record = response.model_dump(exclude={"images": {"__all__": {"b64_json"}}})
        record.update(settings=self.settings, image=first.model_dump(exclude={"b64_json"}) if first else None)
        shape = self.target.shape or default_shape
        self.target.answer = await shape(response)
        done = Finish(
            fields={
                "provider": served_by,
                "model": model,
                "rule": self.route_info.rule,
                "image_sha": first.sha256 if first else None,
                "chain_response_id": history[0] if history else (None if lock else outcome.result.chain_state),
                "chain_note": chain.note if chain else None,
            },
            record=record,
            ledger=self.ledger(total_ms),
            blobs=[(sha, "result", len(n.data)) for sha, (n, _) in zip(shas, normalized, strict=True)]
            + ([(history[0], CHAIN_KIND, history[1])] if history else []),
            session_expires_at=expires_at,
            # a queued edit's key (if it has one) was claimed by its accept: matched by version id
            answer=self.target.answer.stored() if self.target.claim is not None or self.version.queued_at else None,
        )
        if not await gw.lifecycle.finish(self.version, done):
            raise ApiError(409, "edit_ended", "The edit was canceled or interrupted before it finished.")
        gw.events.publish(self.version.id, "completed", response.model_dump(mode="json"))
        gw.metrics.finished(provider=served_by, model=model, rule=self.route_info.rule, outcome="ok",
                            total_s=total_ms / 1000, tenant=self.target.tenant)  # fmt: skip
        gw.metrics.images(
            self.upload_bytes, p.work.width * p.work.height / 1e6, [n.width * n.height / 1e6 for n, _ in normalized]
        )
        log.info("edit_succeeded", edit_id=self.version.id, provider=served_by, total_ms=total_ms)
        self._spawn_shadow()
        if self.deferred_score is not None and gw.scores is not None:
            gw.spawn(gw.scores.score(self.version.id, self.deferred_score), "preservation score")
        return response

    def _closing_record(self, error: dict[str, Any]) -> dict[str, Any]:
        return {**self.header, "created": int(self.version.created_at), "error": error,
                "inputs": self.inputs.model_dump(), "settings": self.settings, "route": self.route_info.model_dump(),
                "metadata": self.p.request.metadata}  # fmt: skip

    async def fail(self, error: ApiError) -> ApiError:
        """failed, in one transaction (the calls made are ledgered, the key freed); returns the error
        for the caller, with the edit's ids."""
        error.extra.update(edit_id=self.version.id, session_id=self.session_id, version=self.version.number)
        record = self._closing_record(error.body()["error"])
        # a failed version names no provider: its parent's chain and provider stickiness must not follow it
        await self.gw.lifecycle.fail(
            self.version,
            record,
            self.ledger(),
            fields={"provider": None, "model": None, "rule": self.route_info.rule or None},
        )
        self.gw.events.publish(self.version.id, "failed", error.body()["error"])
        attempts = self.route_info.attempts
        tried = [a for a in attempts if a.outcome not in ("skipped_circuit_open", SKIPPED_OVER_CAP)]
        if self.outcome is None:
            self.gw.metrics.attempted(attempts)
        self.gw.metrics.finished(
            provider=tried[-1].provider if tried else "none", model=tried[-1].model if tried else "none",
            rule=self.route_info.rule or "none", outcome=error.code, total_s=time.perf_counter() - self.t0,
            tenant=self.target.tenant,
        )  # fmt: skip
        log.info("edit_failed", edit_id=self.version.id, code=error.code)
        return error

    async def stop(self) -> None:
        """interrupted or canceled: the run was stopped; a call in flight is ledgered as ambiguous
        (the executor records it so), as the provider may still render and bill it."""
        code = "canceled" if self.stop_as == CANCELED else "interrupted"
        message = ("The edit was canceled; a provider call in flight may still be billed." if code == "canceled"
                   else "The gateway stopped before the edit finished; retry it with POST .../retry.")  # fmt: skip
        record = self._closing_record({"code": code, "message": message, "param": None})
        end = self.gw.lifecycle.cancel if code == "canceled" else self.gw.lifecycle.interrupt
        await end(self.version, record, self.ledger())
        await self.settle_budget()  # a run stopped before its first step never reaches run()'s own
        self.gw.events.publish(self.version.id, "failed", record["error"])
        log.info(f"edit_{code}", edit_id=self.version.id)

    def _spawn_shadow(self) -> None:
        shadow = self.shadow
        if shadow is None or self.raw is None:
            return
        req = self.p.request.model_copy(update={"provider": shadow.provider, "include_base64": False})
        target = EditTarget(self.target.tenant, self.session_id, self.parent, base_url=self.target.base_url,
                            shadow_of=self.version.number, tag=(shadow.name, shadow.provider))  # fmt: skip
        self.gw.spawn(run_edit(self.gw, req, self.raw, target), f"shadow:{shadow.name}")

    def _sample_shadow(self, decision: RouteDecision) -> Shadow | None:
        """Shadow traffic for plain routed edits (not experiments, compares or shadows themselves)."""
        if (
            self.target.shadow_of is not None
            or self.target.comparison
            or decision.experiment
            or not decision.candidates
        ):
            return None
        shadow = shadow_for(self.p.features, self.gw.policy, self.version.id)
        if shadow is None or shadow.provider == decision.candidates[0].provider:
            return None
        self.target.tag = (shadow.name, "primary")
        return shadow

    @traced("editgate.normalize")
    async def normalize(self, outcome: Outcome) -> tuple[bool, list[tuple[NormalizedImage, Any]]]:
        """Size, format and mask lock of what the provider returned; whether the mask lock applied."""
        try:
            return await self._normalize(outcome)
        except (OSError, ValueError, SyntaxError) as exc:  # the provider's bytes are not a usable image
            served_by = outcome.candidate.provider
            message = f"{served_by} returned an image that cannot be decoded ({type(exc).__name__})."
            raise ApiError(502, "provider_bad_output", message, provider=served_by) from None

    async def _normalize(self, outcome: Outcome) -> tuple[bool, list[tuple[NormalizedImage, Any]]]:
        p, gw = self.p, self.gw
        fmt = p.request.output_format
        if fmt in AS_MADE_FORMATS:  # checked and sized, never decoded: nothing to lock or score
            images = outcome.result.images
            return False, await gw.workers.run(lambda: [(as_made(image, fmt), None) for image in images])
        provider = gw.providers[outcome.candidate.provider]
        mask = p.mask.blob if p.mask else None
        lock = mask is not None and ("only_mask" in p.chips or not provider.capabilities.native_mask)
        canvas, req = p.work, p.request
        score_wanted = req.preservation and req.mode != "generate" and bool(outcome.result.images)
        # a mask lock measures as it composites; otherwise an answer that cannot show the score leaves it for later
        later = score_wanted and not lock and self.target.score_after_response and gw.scores is not None
        now = score_wanted and not later
        region = p.mask.region if p.mask else None  # kept from intake: the mask is never decoded again
        if later:
            first = outcome.result.images[0]
            self.deferred_score = lambda: score(first, source=canvas, edit=region.unpack() if region else None)

        c2pa = load_config(gw.settings.c2pa_cert, gw.settings.c2pa_key, gw.settings.c2pa_verify)

        def work() -> list[tuple[NormalizedImage, Any]]:
            edit = region.unpack() if region is not None and (lock or now) else None
            return [
                normalize(
                    image,
                    source=canvas,
                    edit=edit,
                    lock=lock,
                    score=now,
                    out_size=p.out_size,
                    fmt=req.output_format,
                    quality=req.output_compression,
                    opaque=req.background == "opaque",
                    feather_px=gw.settings.feather_px,
                    c2pa=c2pa,
                )
                for image in outcome.result.images
            ]

        return lock, await gw.workers.run(work)

    def _svg_author(self, outcome: Outcome) -> str | None:
        """The SVG author whose prices apply: the one the provider reports, else the one asked for."""
        asked = svg_author(self.p.request)
        return outcome.result.rendered.get("svg_model") or (asked[0] if asked else None)

    def _cost(self, outcome: Outcome) -> Cost:
        served_by, p = outcome.candidate.provider, self.p
        inputs = usage_inputs(p, chain_tokens(self.parent, p) if served_by == CHAIN_PROVIDER else 0)
        if inputs.svg_author is not None and (author := self._svg_author(outcome)) != inputs.svg_author_model:
            inputs = replace(inputs, svg_author=(author, inputs.svg_author[1]))  # priced as served
        return cost_section(self.gw.prices, outcome.candidate, self.gw.options(served_by), inputs,
                            outcome.result.usage, self.actual, p.request.max_cost_usd)  # fmt: skip

    def _image(self, n: NormalizedImage) -> OutputImage:
        return OutputImage(
            id=n.sha256,
            url=f"{self.target.base_url}/v1/files/{n.sha256}",
            width=n.width,
            height=n.height,
            format=n.format,
            sha256=n.sha256,
            bytes=len(n.data),
            b64_json=pybase64.b64encode(n.data).decode() if self.p.request.include_base64 else None,
            provenance=n.provenance,
        )

    def _chain(self, served_by: str, previous: str | None, model: str, restarted: str | None = None) -> Chain | None:
        chained_on = self.parent.provider
        if chained_on not in (CHAIN_PROVIDER, HISTORY_PROVIDER):
            return None
        if chained_on == HISTORY_PROVIDER and not self.parent.chain_response_id:
            return None  # a mask-locked or outgrown conversation: nothing to continue
        if served_by != chained_on:
            note = f"chain moved from {chained_on} to {served_by}: replayed from version {self.parent.number}"
            return Chain(continued=False, note=note)
        if chained_on == HISTORY_PROVIDER:
            if restarted:
                note = f"gemini refused the conversation ({restarted[:80]}): replayed from version {self.parent.number}"
                return Chain(continued=False, note=note[:200])
            return Chain(continued=self.history is not None and self.history.model == model)
        return Chain(continued=previous is not None, previous_response_id=previous)


@dataclass
class Intake:
    """What intake leaves an edit: the prepared inputs (their bytes already in the blob store and out of
    memory) and the stored files' digests, kinds and sizes."""

    p: PreparedEdit
    uses: list[BlobUse]
    """The stored files: the source, then the mask (if any), then the references, then the markup (if any)."""
    upload_bytes: int

    @property
    def shas(self) -> list[str]:
        return [sha for sha, _, _ in self.uses]

    @property
    def mask_sha(self) -> str | None:
        return self.shas[1] if self.p.mask is not None else None

    @property
    def ref_shas(self) -> list[str]:
        first = 2 if self.p.mask is not None else 1
        return self.shas[first : first + len(self.p.references)]

    @property
    def markup_sha(self) -> str | None:
        return self.shas[-1] if self.p.markup is not None else None


def intake_and_store(gw: Gateway, req: EditRequest, raw: RawInputs, tenant: str, keep_raw: bool) -> Intake:
    """Read the upload, prepare it and store it, in one worker hop (blocking): between the upload read and
    the stored file, the bytes never wait in a queue. A thousand uploads arriving at once hold at most one
    copy per worker, not one per edit waiting for its next turn. ``keep_raw``: shadow traffic will need the
    upload again."""
    p = prepare(req, raw, gw.settings.limits, tenant)
    upload_bytes = len(raw.image) + len(raw.mask or b"") + sum(len(r) for r in raw.references)
    if not keep_raw:  # intake holds what it needs; release the upload (other frames still reference `raw`)
        raw.image, raw.mask, raw.references = b"", None, []
    files: list[StoredFile] = [(p.source.blob.data, "source", p.source.blob.sha256)]
    if p.mask is not None:
        files.append((p.mask.blob.data, "mask", None))
    files += [(r.blob.data, "reference", None) for r in p.references]
    if p.markup is not None:
        files.append((p.markup.data, "markup", None))
    uses = put_files(gw.blobs, files)
    done = Intake(p, uses, upload_bytes)
    source_sha = p.source.blob.sha256 = done.shas[0]
    for sha, blob in ((source_sha, p.source.blob), *zip(done.ref_shas, (r.blob for r in p.references), strict=True)):
        if (path := gw.blobs.path(sha)) is not None:
            blob.release_to(path)  # the stored file holds these exact bytes: the edit keeps only its path
    return done


async def accept_edit(gw: Gateway, req: EditRequest, raw: RawInputs, target: EditTarget, queued: bool = False
                      ) -> tuple[EditRun, RouteDecision | None]:  # fmt: skip
    """Intake, then the accept transition: a synchronous edit routes first (so the version names the
    call it is about to make), a queued one routes when it is claimed."""
    if gw.draining:
        raise ApiError(503, "draining", "This instance is shutting down; send the edit again (another takes it).",
                       retry_after=1)  # fmt: skip
    t0 = time.perf_counter()
    kept_raw = raw if gw.policy.shadows else None  # only shadow traffic needs the upload again after intake
    check_svg_author(svg_author(req), gw.prices)
    done = await gw.workers.run(lambda: intake_and_store(gw, req, raw, target.tenant, kept_raw is not None))
    p, uses, source_sha, mask_sha, ref_shas = done.p, done.uses, done.shas[0], done.mask_sha, done.ref_shas
    url = target.base_url
    session_id, parent, new_session = target.session_id, target.parent, None
    if session_id is None or parent is None:  # a standalone edit: its session's version 0 is the source
        session_id = new_id("ses")
        v0 = {"image": file_ref(url, source_sha, p.source.blob, p.source.format).model_dump(),
              "warnings": p.source.notes}  # fmt: skip
        new_session = NewSession(session_id, expiry(gw.settings), source_sha, p.source.blob.nbytes, v0)
        parent = Version(id="", tenant_id=target.tenant, session_id=session_id, number=0, status="succeeded",
                         image_sha=source_sha, result=v0)  # fmt: skip
    inputs = Inputs(
        source=file_ref(url, source_sha, p.source.blob, p.source.format),
        mask=file_ref(url, mask_sha, p.mask.blob, "png") if p.mask and mask_sha else None,
        references=[file_ref(url, s, r.blob, r.format) for s, r in zip(ref_shas, p.references, strict=True)],
        markup=file_ref(url, done.markup_sha, p.markup, "png") if p.markup and done.markup_sha else None,
    )
    decision, hold = None, BudgetHold()
    if not queued:
        decision = await route(gw, p, target.tenant, session_id, parent.provider, shadow=target.shadow_of is not None,
                               parent=parent, hold=hold)  # fmt: skip
    settings = req.model_dump(exclude=SETTINGS_EXCLUDED)
    try:
        version = await gw.lifecycle.accept(
            target.tenant, session_id, parent.number, new_session, uses,
            fields=dict(prompt=req.prompt, chips=p.chips, settings=settings, source_sha=source_sha, mask_sha=mask_sha,
                        reference_shas=ref_shas, markup_sha=done.markup_sha, retry_of=target.retry_of,
                        shadow_of=target.shadow_of,
                        **route_columns(decision, p, target.tenant, parent.provider)),
            record=_open_record(inputs, settings, decision, url, p), queued=queued, claim=target.claim,
        )  # fmt: skip
    except BaseException as exc:
        if hold.held:  # no run will settle it
            with anyio.CancelScope(shield=True):
                await gw.resources.limits.settle(hold, 0.0)
        if isinstance(exc, SessionGone):
            raise ApiError(404, "not_found", f"Session {session_id!r} was deleted.", "session_id") from None
        raise
    gw.events.accepted(version.id, await gw.lifecycle.queue_position(version) if queued else 0)
    run = EditRun(gw, p, target, session_id, parent, version, inputs, t0)
    run.budget_hold = hold
    run.raw = kept_raw
    run.upload_bytes = done.upload_bytes
    return run, decision


async def run_edit(gw: Gateway, req: EditRequest, raw: RawInputs, target: EditTarget) -> EditResponse:
    """A synchronous edit: accept, then run to a terminal state. The run is shielded from the caller:
    a client that disconnects does not cancel a paid render (its result is stored, and an
    Idempotency-Key gets it back)."""
    run, decision = await accept_edit(gw, req, raw, target)
    return await gw.shielded(run, run.run(decision))


async def enqueue_edit(gw: Gateway, req: EditRequest, raw: RawInputs, target: EditTarget) -> Version:
    """An async edit: intake and the accept transition now; the queue runs it from what is stored."""
    run, _ = await accept_edit(gw, req, raw, target, queued=True)
    return run.version


async def default_shape(response: EditResponse) -> Any:
    from router.idempotency import Answer  # the answer's HTTP shape lives with the handlers

    return Answer.of_edit(response)
