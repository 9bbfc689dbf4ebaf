"""``decide()``: features + policy + what varies (env flag, health, spend, estimates) -> RouteDecision.

Pure: no I/O, no clock, no randomness. Experiment arms come from a hash of the sticky key, so the
explain endpoint, a replica and a replay all get exactly the decision a real request gets.

    route  = request.provider | IMAGE_EDIT_PROVIDER | first matching rule | default
    route  = experiment arm, when one applies to the chosen rule
             (a route target is a provider, or provider/model to route by model generation)
    drop     unknown, disabled, incapable or unhealthy candidates, and models that do not take a parameter
             the request uses (each with its reason)
    budget   over the tenant's daily cap: downgrade to the cheapest capable candidate, or refuse (402);
             a free call never exceeds a budget, and shadow traffic (the operator's) is not under one
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Mapping
from typing import Any

from policies.capabilities import Capabilities, missing_capabilities
from policies.features import Features
from policies.model import (
    BudgetCheck,
    Candidate,
    Check,
    DroppedCandidate,
    Experiment,
    Policy,
    Refusal,
    RouteDecision,
    Rule,
    RuleTrace,
    Shadow,
    split_target,
)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "in": lambda value, want: value in want,
    "not_in": lambda value, want: value not in want,
    "gt": lambda value, want: value is not None and value > want,
    "gte": lambda value, want: value is not None and value >= want,
    "lt": lambda value, want: value is not None and value < want,
    "lte": lambda value, want: value is not None and value <= want,
    "contains": lambda value, want: want in (value or ()),
}


def _failed(checks: tuple[Check, ...], f: Features) -> str | None:
    """Why the first failing check fails, or None when all hold (the reason is built only on failure)."""
    for feature, op, want in checks:
        value = getattr(f, feature)
        if not _OPS[op](value, want):
            return f"{feature}: {op} {want!r} failed (is {value!r})"
    return None


def may_apply_to(checks: tuple[Check, ...], tenant: str | None) -> bool:
    """Whether a rule's ``when`` can hold for ``tenant`` (its other conditions depend on the request)."""
    return all(_OPS[op](tenant, want) for feature, op, want in checks if feature == "tenant")


def assignment_unit(experiment: str, key: str) -> float:
    """A stable number in [0, 1) for (experiment, key): SHA-256, so every replica agrees."""
    digest = hashlib.sha256(f"{experiment}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arm(exp: Experiment, key: str) -> str:
    u = assignment_unit(exp.name, key)
    if u < exp.holdout:
        return "holdout"
    u = (u - exp.holdout) / (1 - exp.holdout)
    total = sum(a.weight for a in exp.arms)
    acc = 0.0
    for arm in exp.arms:
        acc += arm.weight / total
        if u < acc:
            return arm.name
    return exp.arms[-1].name


def shadow_for(features: Features, policy: Policy, key: str) -> Shadow | None:
    """The shadow this request is sampled into, if any: a stable hash of ``key`` against each fraction."""
    for shadow in policy.shadows:
        if _failed(shadow.checks, features) is None and assignment_unit(shadow.name, key) < shadow.fraction:
            return shadow
    return None


def _route(f: Features, policy: Policy, forced: str | None) -> tuple[str, Rule | None, list[str], list[RuleTrace]]:
    if f.requested_provider and policy.allow_request_provider:
        target = f"{f.requested_provider}/{f.requested_model}" if f.requested_model else f.requested_provider
        trace = [RuleTrace(rule="request.provider", matched=True, why=f"caller asked for {target}")]
        return "request.provider", None, [target], trace
    if forced:
        trace = [RuleTrace(rule="env.IMAGE_EDIT_PROVIDER", matched=True, why=f"IMAGE_EDIT_PROVIDER={forced}")]
        return "env.IMAGE_EDIT_PROVIDER", None, [forced, *policy.forced_fallbacks], trace
    trace = []
    for rule in policy.rules:
        checks = rule.checks
        if not may_apply_to(checks, f.tenant):
            continue  # another tenant's rule: the trace is shown to the caller, so it is not listed
        why = _failed(checks, f)
        held = "all conditions hold" if checks else "unconditional"
        trace.append(RuleTrace(rule=rule.name, matched=why is None, why=why or held))
        if why is None:
            return rule.name, rule, [rule.route, *rule.fallbacks], trace
    trace.append(RuleTrace(rule="default", matched=True, why="no rule matched"))
    return "default", None, [policy.default_route, *policy.default_fallbacks], trace


def _experiment(
    policy: Policy, rule_name: str, f: Features, keys: Mapping[str, str | None]
) -> tuple[Experiment, str, list[str]] | None:
    if rule_name in ("request.provider", "env.IMAGE_EDIT_PROVIDER"):
        return None
    for exp in policy.experiments:
        if not exp.enabled or (exp.applies_to_rules and rule_name not in exp.applies_to_rules):
            continue
        key = keys.get(exp.sticky_by)
        if not key or _failed(exp.checks, f) is not None:
            continue
        arm_name = assign_arm(exp, key)
        if arm_name == "holdout":
            return exp, arm_name, []
        arm = next(a for a in exp.arms if a.name == arm_name)
        return exp, arm_name, [arm.route, *arm.fallbacks]
    return None


def target_of(provider: str, model: str) -> str:
    """The key of a (provider, model) pair in ``estimates`` and ``accepts``."""
    return f"{provider}/{model}"


def _lacking(f: Features, accepts: Mapping[str, frozenset[str]], provider: str, model: str) -> list[str]:
    taken = accepts.get(target_of(provider, model), frozenset())
    return [f"{model} does not take {need}" for need in f.needs if need not in taken]


def _screen(
    names: list[str],
    f: Features,
    policy: Policy,
    capabilities: Mapping[str, Capabilities],
    health: Mapping[str, bool],
    estimates: Mapping[str, float | None],
    accepts: Mapping[str, frozenset[str]],
) -> tuple[list[Candidate], list[DroppedCandidate]]:
    """``names`` are route targets (``provider`` or ``provider/model``); ``estimates`` and ``accepts`` are keyed
    by :func:`target_of` (``estimates`` also by provider alone, for the provider's configured model)."""
    kept: list[Candidate] = []
    dropped: list[DroppedCandidate] = []
    for target in dict.fromkeys(names):
        name, named_model = split_target(target)
        settings = policy.providers.get(name)
        caps = capabilities.get(name)
        model = named_model or (settings.model if settings else "")
        if settings is None or caps is None:
            dropped.append(DroppedCandidate(provider=target, reasons=["not configured on this gateway"]))
        elif not settings.enabled:
            dropped.append(DroppedCandidate(provider=target, reasons=["disabled by policy"]))
        elif missing := missing_capabilities(caps, f) + _lacking(f, accepts, name, model):
            dropped.append(DroppedCandidate(provider=target, reasons=missing))
        elif not health.get(name, True):
            dropped.append(DroppedCandidate(provider=target, reasons=["circuit breaker open"]))
        else:
            estimate = estimates.get(target_of(name, model), estimates.get(name))
            kept.append(
                Candidate(
                    provider=name,
                    model=model,
                    target=target,
                    timeout_s=settings.timeout_s,
                    connect_timeout_s=settings.connect_timeout_s,
                    estimate_usd=estimate,
                )
            )
    return kept, dropped


def decide(
    features: Features,
    policy: Policy,
    *,
    forced_provider: str | None,
    capabilities: Mapping[str, Capabilities],
    health: Mapping[str, bool] | None = None,
    estimates: Mapping[str, float | None] | None = None,
    spent_today_usd: float = 0.0,
    shadow_today_usd: float = 0.0,
    keys: Mapping[str, str | None] | None = None,
    shadow: bool = False,
    accepts: Mapping[str, frozenset[str]] | None = None,
) -> RouteDecision:
    """Choose ordered candidates; drop (and say why) any that is unknown, disabled, incapable or unhealthy.

    ``spent_today_usd`` is the tenant's own spend; ``shadow_today_usd`` (reported, never counted) its
    shadow traffic. ``shadow``: this request is shadow traffic, which no tenant budget limits. ``accepts``: the
    model-specific parameters each ``provider/model`` takes (see ``Features.needs``)."""
    health, estimates, keys, accepts = health or {}, estimates or {}, keys or {}, accepts or {}
    forced = forced_provider if forced_provider not in (None, "", "auto") else None
    rule_name, rule, names, trace = _route(features, policy, forced)
    experiment = _experiment(policy, rule_name, features, keys)
    exp_name, arm = (experiment[0].name, experiment[1]) if experiment else (None, None)
    if experiment and experiment[2]:
        names = experiment[2]
        trace.append(RuleTrace(rule=f"experiment.{exp_name}", matched=True, why=f"arm {arm}"))
    candidates, dropped = _screen(names, features, policy, capabilities, health, estimates, accepts)
    decision = RouteDecision(
        rule=rule_name,
        candidates=candidates,
        dropped=dropped,
        trace=trace,
        policy_version=policy.version,
        policy_digest=policy.digest,
        experiment=exp_name,
        arm=arm,
        deadline_s=rule.deadline_s if rule else None,
        fallback_on_rejected=rule.fallback_on_rejected if rule else False,
        retry_ambiguous=rule.retry_ambiguous if rule else False,
    )
    if not candidates:
        reasons = "; ".join(f"{d.provider}: {', '.join(d.reasons)}" for d in dropped)
        unhealthy = dropped and all(d.reasons == ["circuit breaker open"] for d in dropped)
        lacked = [need for need in features.needs if any(need in r for d in dropped for r in d.reasons)]
        decision.refusal = (
            Refusal(status=503, code="providers_unavailable", message=f"Every candidate is unavailable ({reasons}).")
            if unhealthy
            else Refusal(
                status=422,
                code="no_capable_provider",
                message=f"No configured provider can serve this request ({reasons}).",
                param=lacked[0].split("=")[0] if lacked else None,
            )
        )
        return decision
    if shadow:
        return decision
    decision = _apply_budget(decision, features, policy, capabilities, health, estimates, spent_today_usd, accepts)
    if decision.budget is not None:
        decision.budget.shadow_usd = round(shadow_today_usd, 6)
    return decision


def _exceeds(spent: float, limit: float, estimate: float | None) -> bool:
    """Would this call take the tenant past its limit? A free one never does; one of unknown cost does
    once the limit is reached."""
    if estimate == 0:
        return False
    return spent >= limit or (estimate is not None and spent + estimate > limit)


def _over_budget(decision: RouteDecision, why: str) -> RouteDecision:
    decision.candidates = []
    decision.refusal = Refusal(status=402, code="budget_exceeded", message=f"{why}; it resets at 00:00 UTC.")
    return decision


def _apply_budget(
    decision: RouteDecision,
    f: Features,
    policy: Policy,
    capabilities: Mapping[str, Capabilities],
    health: Mapping[str, bool],
    estimates: Mapping[str, float | None],
    spent: float,
    accepts: Mapping[str, frozenset[str]],
) -> RouteDecision:
    limit = policy.budgets.limit_for(f.tenant)
    if limit is None:
        return decision
    first = decision.candidates[0].estimate_usd
    check = BudgetCheck(limit_usd=limit, spent_usd=round(spent, 6), estimate_usd=first, action="within")
    decision.budget = check
    if not _exceeds(spent, limit, first):
        if spent >= limit:  # a free first candidate: its fallbacks may not spend past the budget either
            decision.candidates = [c for c in decision.candidates if not _exceeds(spent, limit, c.estimate_usd)]
        return decision
    if policy.budgets.on_exceed == "reject":
        check.action = "reject"
        return _over_budget(decision, f"Tenant {f.tenant}'s daily budget of ${limit:.2f} is used (${spent:.4f} spent)")
    everyone, _ = _screen(list(policy.providers), f, policy, capabilities, health, estimates, accepts)
    affordable = [c for c in everyone if c.estimate_usd is not None and spent + c.estimate_usd <= limit]
    priced = sorted(affordable or [c for c in everyone if c.estimate_usd == 0], key=lambda c: c.estimate_usd or 0.0)
    check.action = "downgrade"
    if not priced:
        return _over_budget(decision, f"Tenant {f.tenant}'s daily budget of ${limit:.2f} leaves no capable provider")
    decision.candidates = priced[:1]
    decision.trace.append(
        RuleTrace(rule="budget", matched=True, why=f"over ${limit:.2f}/day: downgraded to {priced[0].provider}")
    )
    return decision
