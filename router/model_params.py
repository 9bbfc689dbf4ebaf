"""What routing by model and forwarding a provider's own parameters need, gathered for the engine and the job.

The engine is pure: it is handed, for every route target the policy names (``provider`` or ``provider/model``),
the model-specific parameters that target takes (``accepts``). A job carries the caller's provider-native
parameters (the drop-in's OpenAI fields) to the adapter, which forwards those its API takes; the engine has
already dropped every candidate that could not take them, so none is silently left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from policies.engine import target_of
from policies.model import Policy, split_target
from providers.base import Provider
from router.registry import CLOUD

SAFETY_ID_PREFIX = "editgate-tenant-"


def model_targets(policy: Policy, requested: str | None = None) -> list[str]:
    """The route targets that name a model (``provider/model``), the caller's included."""
    targets = [t for t in policy.targets() if split_target(t)[1]]
    return list(dict.fromkeys([*targets, *([requested] if requested else [])]))


def accepts_for(policy: Policy, providers: Mapping[str, Provider], targets: Iterable[str]) -> dict[str, frozenset[str]]:
    """For each provider's configured model and each of ``targets``: the model-specific parameters it takes.

    A provider declares them with ``accepted_params(model, options)``; one that does not takes none."""
    out: dict[str, frozenset[str]] = {}
    pairs = [(name, p.model) for name, p in policy.providers.items()]
    for target in targets:
        name, model = split_target(target)
        if name in policy.providers:
            pairs.append((name, model or policy.providers[name].model))
    for name, model in pairs:
        declare = getattr(providers.get(name), "accepted_params", None)
        options = policy.providers[name].options
        out[target_of(name, model)] = declare(model, options) if declare else frozenset()
    return out


def tenant_safety_identifier(tenant: str) -> str:
    """A stable, non-identifying ``safety_identifier`` per tenant: OpenAI's abuse monitoring then flags one
    tenant, not the whole account that editgate calls with."""
    return SAFETY_ID_PREFIX + hashlib.sha256(f"editgate-safety\x00{tenant}".encode()).hexdigest()[:32]


def safety_identifier_for(params: Mapping[str, Any], tenant: str) -> str | None:
    """The caller's ``safety_identifier`` wins; a caller's ``user`` alone is left to stand (the API uses it when
    no identifier is sent); otherwise the tenant's own."""
    if params.get("safety_identifier"):
        return str(params["safety_identifier"])
    if params.get("user"):
        return None
    return tenant_safety_identifier(tenant)


def route_model_problems(policy: Policy) -> list[str]:
    """Each route target whose model its provider does not serve (a typo would otherwise fail every call); a
    provider class with ``known_models`` lists what it serves."""
    problems = []
    for target in policy.targets():
        name, model = split_target(target)
        known = getattr(CLOUD.get(name), "known_models", None)
        if model and known is not None and model not in known():
            problems.append(f"route {target!r}: {name} serves no model {model!r} (known: {', '.join(known())})")
    return problems


def model_taking(policy: Policy, name: str, needs: Iterable[str]) -> str | None:
    """A model of provider ``name`` that takes every one of ``needs`` (a request's model-specific parameters),
    when the provider's configured model does not: what a run forced onto that provider (a compare's arm)
    must be sent to. None when the configured model takes them, or no model of the provider does."""
    wanted, cls = set(needs), CLOUD.get(name)
    declare, known = getattr(cls, "accepted_params", None), getattr(cls, "known_models", None)
    if not wanted or declare is None or known is None or name not in policy.providers:
        return None
    settings = policy.providers[name]
    if wanted <= declare(settings.model, settings.options):
        return None
    return next((m for m in known() if wanted <= declare(m, settings.options)), None)
