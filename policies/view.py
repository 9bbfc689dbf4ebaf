"""What of a policy one tenant may see: what can apply to it, and nothing that names another tenant.

The whole policy (every tenant's budget, tenant-specific rules, shadows) is the operator's; a tenant
sees its own budget, the rules and experiments that can match its requests (with the tenant condition,
which holds, left out), and the providers, models and ``model`` aliases it can be routed to.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from policies.engine import may_apply_to
from policies.model import Policy


def _without_tenant(when: dict[str, Any]) -> dict[str, Any]:
    return {feature: cond for feature, cond in when.items() if feature != "tenant"}


def tenant_view(policy: Policy, tenant: str, available: Collection[str]) -> dict[str, Any]:
    """The policy as ``tenant`` sees it; ``available`` are the providers configured on this gateway."""
    rules = [
        {**rule.model_dump(), "when": _without_tenant(rule.when)}
        for rule in policy.rules
        if may_apply_to(rule.checks, tenant)
    ]
    visible = {rule["name"] for rule in rules}
    experiments = [
        {**exp.model_dump(exclude={"enabled"}), "when": _without_tenant(exp.when),
         "applies_to_rules": [name for name in exp.applies_to_rules if name in visible]}
        for exp in policy.experiments
        if exp.enabled and may_apply_to(exp.checks, tenant)
        and (not exp.applies_to_rules or visible.intersection(exp.applies_to_rules))
    ]  # fmt: skip
    return {
        "tenant": tenant,
        "version": policy.version,
        "digest": policy.digest,
        "providers": {
            name: {"model": p.model} for name, p in policy.providers.items() if p.enabled and name in available
        },
        "allow_request_provider": policy.allow_request_provider,
        "model_aliases": policy.model_aliases,
        "rules": rules,
        "default_route": [policy.default_route, *policy.default_fallbacks],
        "experiments": experiments,
        "budget": {"daily_usd": policy.budgets.limit_for(tenant), "on_exceed": policy.budgets.on_exceed},
    }
