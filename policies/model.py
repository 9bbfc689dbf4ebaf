"""The policy file's schema and the decision it produces.

A policy is validated whole when it is parsed: an unknown feature, operator or provider name in a
rule is refused at load time, never discovered by a request.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from policies import document
from policies.features import Features

Operator = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains"]
_FEATURE_NAMES = frozenset(Features.model_fields)


def split_target(target: str) -> tuple[str, str | None]:
    """A route names a provider (``gemini``) or a provider and one of its models
    (``openai-images/gpt-image-2.5-flare``): the provider, and the model or None (its configured ``model``)."""
    provider, _, model = target.partition("/")
    return provider, model or None


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    enabled: bool = True
    timeout_s: float = Field(300.0, ge=1, description="Read timeout of one call; image calls run for minutes.")
    connect_timeout_s: float = Field(10.0, gt=0)
    max_concurrency: int = Field(
        16,
        ge=1,
        description="Calls in flight to this provider's account (all replicas with REDIS_URL); the rest queue.",
    )
    requests_per_minute: int | None = Field(
        None, ge=1, description="Calls started per minute on this account (sliding minute); None: no limit."
    )
    images_per_minute: int | None = Field(
        None, ge=1, description="Images asked for per minute on this account (sliding minute); None: no limit."
    )
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
    checks = property(lambda self: compiled_checks(self))
    sticky_by: Literal["tenant", "session", "key"] = "tenant"
    holdout: float = Field(0.0, ge=0, lt=1, description="Share that keeps the rule's own route.")
    arms: list[Arm] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_arms(self) -> Experiment:
        seen: set[str] = {"holdout"}
        problems = []
        for i, arm in enumerate(self.arms):
            if arm.name in seen:
                message = f"experiment {self.name!r}: arm names must be unique and not 'holdout'"
                problems.append((("arms", i, "name"), "duplicate_name", message, arm.name))
            seen.add(arm.name)
        raise_at(type(self).__name__, problems)
        return self


class Shadow(BaseModel):
    """Send a share of requests also to ``provider`` in the background; the caller sees only the primary."""

    model_config = ConfigDict(extra="forbid")

    name: str
    provider: str
    fraction: float = Field(gt=0, le=1)
    when: dict[str, Any] = Field(default_factory=dict)
    _known_features = field_validator("when")(classmethod(lambda cls, when: check_conditions(when)))
    checks = property(lambda self: compiled_checks(self))


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_daily_usd: float | None = Field(None, ge=0)
    tenants: dict[str, float] = Field(default_factory=dict, description="Tenant id -> daily USD cap.")
    on_exceed: Literal["downgrade", "reject"] = "downgrade"

    def limit_for(self, tenant: str | None) -> float | None:
        return self.tenants.get(tenant or "", self.default_daily_usd)


class Rule(BaseModel):
    """``when`` maps a feature to a value (equality) or to ``{operator: value}``; all must hold. ``route`` and
    ``fallbacks`` name a provider, or a provider and model (``openai-images/gpt-image-2.5-flare``) to route by
    model generation; the same provider may then appear more than once with different models."""

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
    rerun_interrupted: bool = Field(
        False,
        description="Re-run (as a queued retry) an edit of this rule that a crash interrupted; it may pay twice.",
    )

    _known_features = field_validator("when")(classmethod(lambda cls, when: check_conditions(when)))
    checks = property(lambda self: compiled_checks(self))


Check = tuple[str, str, Any]
"""One condition of a ``when``, flat: (feature, operator, wanted value)."""


def compiled_checks(model: BaseModel) -> tuple[Check, ...]:
    """``model.when`` as flat checks, compiled once per ``when`` object (a copy with another ``when`` compiles
    its own; a ``when`` changed in place is not seen: policies are parsed, never edited)."""
    cached, when = model.__dict__.get("_compiled_checks"), model.when  # type: ignore[attr-defined]
    if cached is None or cached[0] is not when:  # kept beside the fields, as functools.cached_property keeps its value
        cached = model.__dict__["_compiled_checks"] = (when, compile_conditions(when))
    return cached[1]


def compile_conditions(when: dict[str, Any]) -> tuple[Check, ...]:
    """``when`` as the flat checks the engine runs on every request, so a decision never re-reads its shape."""
    return tuple(
        (feature, op, want)
        for feature, cond in when.items()
        for op, want in (cond.items() if isinstance(cond, dict) else (("eq", cond),))
    )


def check_conditions(when: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown features and operators, and values an enumerated feature can never take."""
    for feature, cond in when.items():
        if feature not in _FEATURE_NAMES:
            raise ValueError(f"unknown feature {feature!r}; known: {sorted(_FEATURE_NAMES)}")
        ops = cond if isinstance(cond, dict) else {"eq": cond}
        annotation = Features.model_fields[feature].annotation
        allowed = get_args(annotation)
        for op, want in ops.items():
            if op not in Operator.__args__:
                raise ValueError(f"unknown operator {op!r} on {feature!r}; known: {Operator.__args__}")
            values = want if op in ("in", "not_in") and isinstance(want, list) else [want]
            if annotation is bool and not all(isinstance(v, bool) for v in values):
                raise ValueError(f"{feature} is true or false, not {values}")
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
        problems = []
        seen_rules: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen_rules:
                problems.append((("rules", i, "name"), "duplicate_name", "rule names must be unique", rule.name))
            seen_rules.add(rule.name)
        for loc, target in self._routes():
            name = split_target(target)[0]
            if name not in self.providers:
                known = sorted(self.providers)
                message = f"route names provider {name!r}, which is not listed under 'providers' ({known})"
                problems.append((loc, "unknown_provider", message, name))
        raise_at(type(self).__name__, problems)
        return self

    def targets(self) -> list[str]:
        """Every distinct route target (``provider`` or ``provider/model``) the policy names."""
        return list(dict.fromkeys(target for _, target in self._routes()))

    def _routes(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every route target (provider, or provider/model) a route uses, with where it is written."""
        out: list[tuple[tuple[str | int, ...], str]] = [(("default_route",), self.default_route)]
        out += [(("default_fallbacks", i), p) for i, p in enumerate(self.default_fallbacks)]
        out += [(("forced_fallbacks", i), p) for i, p in enumerate(self.forced_fallbacks)]
        for i, rule in enumerate(self.rules):
            out += [(("rules", i, "route"), rule.route)]
            out += [(("rules", i, "fallbacks", j), p) for j, p in enumerate(rule.fallbacks)]
        for i, exp in enumerate(self.experiments):
            for j, arm in enumerate(exp.arms):
                out += [(("experiments", i, "arms", j, "route"), arm.route)]
                out += [(("experiments", i, "arms", j, "fallbacks", k), p) for k, p in enumerate(arm.fallbacks)]
        out += [(("shadows", i, "provider"), shadow.provider) for i, shadow in enumerate(self.shadows)]
        return out


def raise_at(title: str, problems: list[tuple[tuple[str | int, ...], str, str, Any]]) -> None:
    """Raise the cross-field ``problems`` (loc, code, message, input) as one ValidationError.

    A model validator's own ``ValueError`` is reported at the model's location; this names the field
    (or list item) that is wrong, so an error message can point at its line.
    """
    if problems:
        details = [
            InitErrorDetails(type=PydanticCustomError(code, message), loc=loc, input=value)
            for loc, code, message, value in problems
        ]
        raise ValidationError.from_exception_data(title, details)


class PolicyError(ValueError):
    """An invalid policy file; each of ``problems`` names a line (and column) where it can."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _located(doc: Any, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        pos = document.position(doc, err["loc"])
        at = f"line {pos[0]}, column {pos[1]}" if pos else "line ?"
        out.append(f"{at}: {where}: {err['msg']}")
    return out


def parse_policy(text: str) -> Policy:
    """Parse and validate a policy document; the digest identifies exactly this text.

    Raises :class:`PolicyError` for YAML that does not parse (duplicate keys included) and for a
    document that does not validate, each problem located at the node that is wrong.
    """
    try:
        doc = document.load(text)
    except document.DuplicateKeyError as exc:
        mark = exc.problem_mark
        key = (exc.problem or "").split(" with value")[0].removeprefix("found ")
        at = f"line {mark.line + 1}, column {mark.column + 1}"
        message = f"{at}: {key}: a key may appear only once in a mapping (the later one would replace the earlier)"
        raise PolicyError([message]) from None
    except document.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PolicyError([f"{at}{exc.context + '; ' if exc.context else ''}{exc.problem}"]) from None
    except document.YAMLError as exc:
        raise PolicyError([str(exc)]) from None
    data = document.plain(doc)
    if not isinstance(data, dict):
        raise PolicyError(["a policy file must be a YAML mapping"])
    data["digest"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_located(doc, exc)) from None


class Candidate(BaseModel):
    provider: str
    model: str
    target: str = Field("", description="The route target as the policy wrote it: `provider` or `provider/model`.")
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
    param: str | None = None


class RouteDecision(BaseModel):
    """Ordered candidates and everything needed to explain how they were chosen."""

    rule: str
    candidates: list[Candidate]
    dropped: list[DroppedCandidate] = Field(default_factory=list)
    trace: list[RuleTrace] = Field(default_factory=list)
    policy_version: str = Field("", description="The policy's own ``version`` string.")
    policy_digest: str = Field("", description="Identifies the exact policy text that decided.")
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
