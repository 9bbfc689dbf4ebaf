"""The policy file's schema and the decision it produces.

A policy is validated whole when it is parsed: an unknown feature, operator or provider name in a
rule is refused at load time, never discovered by a request.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies.features import Features

Operator = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains"]
_FEATURE_NAMES = frozenset(Features.model_fields)


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    enabled: bool = True
    timeout_s: float = Field(300.0, description="Read timeout of one call; image calls run for minutes.")
    connect_timeout_s: float = 10.0
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter options, e.g. image_model.")


class Rule(BaseModel):
    """``when`` maps a feature to a value (equality) or to ``{operator: value}``; all must hold."""

    model_config = ConfigDict(extra="forbid")

    name: str
    when: dict[str, Any] = Field(default_factory=dict)
    route: str
    fallbacks: list[str] = Field(default_factory=list)
    description: str = ""

    @field_validator("when")
    @classmethod
    def _known_features(cls, when: dict[str, Any]) -> dict[str, Any]:
        for feature, cond in when.items():
            if feature not in _FEATURE_NAMES:
                raise ValueError(f"unknown feature {feature!r}; known: {sorted(_FEATURE_NAMES)}")
            if isinstance(cond, dict):
                for op in cond:
                    if op not in Operator.__args__:
                        raise ValueError(f"unknown operator {op!r} on {feature!r}; known: {Operator.__args__}")
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
    rules: list[Rule] = Field(default_factory=list)
    digest: str = ""

    @model_validator(mode="after")
    def _routes_name_known_providers(self) -> Policy:
        names = set(self.providers)
        routes = [self.default_route, *self.default_fallbacks, *self.forced_fallbacks]
        for rule in self.rules:
            routes += [rule.route, *rule.fallbacks]
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


class DroppedCandidate(BaseModel):
    provider: str
    reasons: list[str]


class RuleTrace(BaseModel):
    rule: str
    matched: bool
    why: str


class RouteDecision(BaseModel):
    """Ordered candidates and everything needed to explain how they were chosen."""

    rule: str
    candidates: list[Candidate]
    dropped: list[DroppedCandidate] = Field(default_factory=list)
    trace: list[RuleTrace] = Field(default_factory=list)
    policy_version: str = ""

    @property
    def refused(self) -> bool:
        return not self.candidates
