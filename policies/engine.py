"""``decide()``: features + policy + forced provider + available capabilities -> RouteDecision.

Pure: everything that varies (the environment flag, which providers are up) is passed in, so the
explain endpoint runs exactly the decision a real request gets.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from policies.capabilities import Capabilities, missing_capabilities
from policies.features import Features
from policies.model import Candidate, DroppedCandidate, Policy, RouteDecision, Rule, RuleTrace

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


def _holds(value: Any, cond: Any) -> tuple[bool, str]:
    if not isinstance(cond, dict):
        cond = {"eq": cond}
    for op, want in cond.items():
        if not _OPS[op](value, want):
            return False, f"{op} {want!r} failed (is {value!r})"
    return True, ""


def _match(rule: Rule, f: Features) -> tuple[bool, str]:
    for feature, cond in rule.when.items():
        ok, why = _holds(getattr(f, feature), cond)
        if not ok:
            return False, f"{feature}: {why}"
    return True, "all conditions hold" if rule.when else "unconditional"


def _route(f: Features, policy: Policy, forced: str | None) -> tuple[str, list[str], list[RuleTrace]]:
    if f.requested_provider and policy.allow_request_provider:
        trace = [RuleTrace(rule="request.provider", matched=True, why=f"caller asked for {f.requested_provider}")]
        return "request.provider", [f.requested_provider], trace
    if forced:
        why = f"IMAGE_EDIT_PROVIDER={forced}"
        return (
            "env.IMAGE_EDIT_PROVIDER",
            [forced, *policy.forced_fallbacks],
            [RuleTrace(rule="env.IMAGE_EDIT_PROVIDER", matched=True, why=why)],
        )
    trace: list[RuleTrace] = []
    for rule in policy.rules:
        ok, why = _match(rule, f)
        trace.append(RuleTrace(rule=rule.name, matched=ok, why=why))
        if ok:
            return rule.name, [rule.route, *rule.fallbacks], trace
    trace.append(RuleTrace(rule="default", matched=True, why="no rule matched"))
    return "default", [policy.default_route, *policy.default_fallbacks], trace


def decide(
    features: Features,
    policy: Policy,
    *,
    forced_provider: str | None,
    capabilities: Mapping[str, Capabilities],
) -> RouteDecision:
    """Choose ordered candidates; drop (and say why) any that is unknown, disabled or not capable."""
    forced = forced_provider if forced_provider not in (None, "", "auto") else None
    rule, names, trace = _route(features, policy, forced)
    candidates: list[Candidate] = []
    dropped: list[DroppedCandidate] = []
    for name in dict.fromkeys(names):
        settings = policy.providers.get(name)
        caps = capabilities.get(name)
        if settings is None or caps is None:
            dropped.append(DroppedCandidate(provider=name, reasons=["not configured on this gateway"]))
        elif not settings.enabled:
            dropped.append(DroppedCandidate(provider=name, reasons=["disabled by policy"]))
        elif missing := missing_capabilities(caps, features):
            dropped.append(DroppedCandidate(provider=name, reasons=missing))
        else:
            candidates.append(Candidate(provider=name, model=settings.model, timeout_s=settings.timeout_s))
    return RouteDecision(rule=rule, candidates=candidates, dropped=dropped, trace=trace, policy_version=policy.digest)
