"""The policy file's schema and the decision it produces.

A policy is validated whole when it is parsed: an unknown feature, operator or provider name in a
rule is refused at load time, never discovered by a request.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies.features import Features

Operator = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains"]
_FEATURE_NAMES = frozenset(Features.model_fields)


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    enabled: bool = True
    timeout_s: float = Field(300.0, ge=1, description="Read timeout of one call; image calls run for minutes.")
    connect_timeout_s: float = Field(10.0, gt=0)
    max_concurrency: int = Field(16, ge=1, description="Calls in flight to this provider; the rest queue.")
    retries: int = Field(1, ge=0, le=5, description="Retries of a retryable failure before the next candidate.")
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter options, e.g. image_model.")


class BreakerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consecutive_failures: int = Field(5, ge=1)
    error_rate: float = Field(0.5, gt=0, le=1)
    window: int = Field(20, ge=2, description="Recent calls the error rate is measured over.")
    min_calls: int = Field(10, ge=1)
    cool_down_s: float = Field(30.0, gt=0)


class Arm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    weight: float = Field(gt=0)
    route: str
    fallbacks: list[str] = Field(default_factory=list)


class Experiment(BaseModel):
    """Weighted arms, assigned by a hash of the sticky key: stable across restarts and replicas."""

    model_config = ConfigDict(extra="forbid")

    name: str
    enabled: bool = True
    applies_to_rules: list[str] = Field(default_factory=list, description="Empty: every rule-chosen route.")
    when: dict[str, Any] = Field(default_factory=dict)
    _known_features = field_validator("when")(classmethod(lambda cls, when: check_conditions(when)))
    sticky_by: Literal["tenant", "session", "key"] = "tenant"
    holdout: float = Field(0.0, ge=0, lt=1, description="Share that keeps the rule's own route.")
    arms: list[Arm] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_arms(self) -> Experiment:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or "holdout" in names:
            raise ValueError(f"experiment {self.name!r}: arm names must be unique and not 'holdout'")
        return self


class Shadow(BaseModel):
    """Send a share of requests also to ``provider`` in the background; the caller sees only the primary."""

    model_config = ConfigDict(extra="forbid")

    name: str
    provider: str
    fraction: float = Field(gt=0, le=1)
    when: dict[str, Any] = Field(default_factory=dict)
    _known_features = field_validator("when")(classmethod(lambda cls, when: check_conditions(when)))


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_daily_usd: float | None = Field(None, ge=0)
    tenants: dict[str, float] = Field(default_factory=dict, description="Tenant id -> daily USD cap.")
    on_exceed: Literal["downgrade", "reject"] = "downgrade"

    def limit_for(self, tenant: str | None) -> float | None:
        return self.tenants.get(tenant or "", self.default_daily_usd)


class Rule(BaseModel):
    """``when`` maps a feature to a value (equality) or to ``{operator: value}``; all must hold."""

    model_config = ConfigDict(extra="forbid")

    name: str
    when: dict[str, Any] = Field(default_factory=dict)
    route: str
    fallbacks: list[str] = Field(default_factory=list)
    description: str = ""
    deadline_s: float | None = Field(None, gt=0, description="Overall deadline of this route, all attempts.")
    fallback_on_rejected: bool = Field(False, description="Try the next candidate after a safety rejection.")
    retry_ambiguous: bool = Field(
        False, description="Retry or fall back after a read timeout (the provider may have rendered and billed)."
    )

    _known_features = field_validator("when")(classmethod(lambda cls, when: check_conditions(when)))


def check_conditions(when: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown features and operators, and values an enumerated feature can never take."""
    for feature, cond in when.items():
        if feature not in _FEATURE_NAMES:
            raise ValueError(f"unknown feature {feature!r}; known: {sorted(_FEATURE_NAMES)}")
        ops = cond if isinstance(cond, dict) else {"eq": cond}
        allowed = get_args(Features.model_fields[feature].annotation)
        for op, want in ops.items():
            if op not in Operator.__args__:
                raise ValueError(f"unknown operator {op!r} on {feature!r}; known: {Operator.__args__}")
            values = want if op in ("in", "not_in") and isinstance(want, list) else [want]
            if allowed and all(isinstance(a, str) for a in allowed) and op in ("eq", "ne", "in", "not_in"):
                bad = [v for v in values if v not in allowed]
                if bad:
                    raise ValueError(f"{feature} can never be {bad}; its values are {list(allowed)}")
    return when


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str
    default_route: str
    default_fallbacks: list[str] = Field(default_factory=list)
    allow_request_provider: bool = True
    forced_fallbacks: list[str] = Field(
        default_factory=list,
        description="Tried when IMAGE_EDIT_PROVIDER forces a provider that cannot serve a request.",
    )
    providers: dict[str, ProviderSettings]
    model_aliases: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"editgate-auto": {}},
        description="OpenAI-compatible `model` names that let the policy decide, with request fields they set.",
    )
    rules: list[Rule] = Field(default_factory=list)
    experiments: list[Experiment] = Field(default_factory=list)
    shadows: list[Shadow] = Field(default_factory=list)
    budgets: Budgets = Field(default_factory=Budgets)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    digest: str = ""

    @model_validator(mode="after")
    def _routes_name_known_providers(self) -> Policy:
        names = set(self.providers)
        routes = [self.default_route, *self.default_fallbacks, *self.forced_fallbacks]
        for rule in self.rules:
            routes += [rule.route, *rule.fallbacks]
        for exp in self.experiments:
            for arm in exp.arms:
                routes += [arm.route, *arm.fallbacks]
        routes += [shadow.provider for shadow in self.shadows]
        rule_names = [r.name for r in self.rules]
        if len(set(rule_names)) != len(rule_names):
            raise ValueError("rule names must be unique")
        unknown = sorted({r for r in routes if r not in names})
        if unknown:
            raise ValueError(f"routes name providers not listed under 'providers': {unknown}")
        return self


def parse_policy(text: str) -> Policy:
    """Parse and validate a policy document; the digest identifies exactly this text."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("a policy file must be a YAML mapping")
    data["digest"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Policy.model_validate(data)


class Candidate(BaseModel):
    provider: str
    model: str
    timeout_s: float = 300.0
    connect_timeout_s: float = 10.0
    estimate_usd: float | None = None


class DroppedCandidate(BaseModel):
    provider: str
    reasons: list[str]


class RuleTrace(BaseModel):
    rule: str
    matched: bool
    why: str


class BudgetCheck(BaseModel):
    limit_usd: float
    spent_usd: float
    estimate_usd: float | None
    action: Literal["within", "downgrade", "reject"]
    shadow_usd: float = Field(
        0.0, description="Today's shadow traffic for this tenant: the operator's experiment, not in spent_usd."
    )


class Refusal(BaseModel):
    status: int
    code: str
    message: str


class RouteDecision(BaseModel):
    """Ordered candidates and everything needed to explain how they were chosen."""

    rule: str
    candidates: list[Candidate]
    dropped: list[DroppedCandidate] = Field(default_factory=list)
    trace: list[RuleTrace] = Field(default_factory=list)
    policy_version: str = ""
    experiment: str | None = None
    arm: str | None = None
    budget: BudgetCheck | None = None
    refusal: Refusal | None = None
    deadline_s: float | None = None
    fallback_on_rejected: bool = False
    retry_ambiguous: bool = False

    @property
    def refused(self) -> bool:
        return not self.candidates
