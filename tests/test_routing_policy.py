"""The pure routing engine against the packaged default policy, and its properties."""

from __future__ import annotations

from collections import Counter
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import Capabilities, Features, decide
from policies.capabilities import missing_capabilities
from policies.engine import assign_arm
from policies.model import Experiment, parse_policy
from router.registry import CLOUD, LocalProvider

DEFAULT = parse_policy(resources.files("policies").joinpath("default.yaml").read_text())
CAPS: dict[str, Capabilities] = {"local": LocalProvider.capabilities, **{n: c.capabilities for n, c in CLOUD.items()}}
PLAIN = {"has_mask": False, "tier": "standard", "text_in_output": False, "long_edge": 1024}


def route_of(**features: object) -> tuple[str, list[str]]:
    d = decide(Features(**{**PLAIN, **features}), DEFAULT, forced_provider=None, capabilities=CAPS)
    return d.rule, [c.provider for c in d.candidates]


@pytest.mark.parametrize(
    ("hit", "miss", "rule", "route"),
    [
        ({"session_provider": "openai-responses"}, {"session_provider": "gemini"}, "session-chain",
         ["openai-responses", "openai-images", "gemini"]),
        ({"session_provider": "gemini", "tier": "pro"}, {"session_provider": "gemini", "has_mask": True,
         "tier": "pro"}, "session-chain-gemini", ["gemini", "openai-images"]),
        ({"has_mask": True, "removal": True}, {"has_mask": True, "removal": True, "text_in_output": True},
         "free-removal", ["local", "gemini"]),
        ({"tier": "pro", "has_mask": True}, {"tier": "pro", "has_mask": False}, "pro-masked",
         ["openai-images", "gemini"]),
        ({"text_in_output": True}, {"text_in_output": False, "tier": "pro"}, "on-image-text",
         ["gemini", "openai-images"]),
        ({"long_edge": 3840, "tier": "pro"}, {"long_edge": 3839, "tier": "pro"}, "large-output", ["gemini"]),
        ({"tier": "standard"}, {"tier": "pro"}, "standard-tier", ["gemini", "openai-images"]),
    ],
)  # fmt: skip
def test_each_default_rule_hits_and_just_misses(hit: dict, miss: dict, rule: str, route: list[str]) -> None:
    got_rule, got_route = route_of(**hit)
    assert got_rule == rule and got_route[: len(route)] == route
    assert route_of(**miss)[0] != rule


def test_the_default_route_is_openai_images_with_fallbacks() -> None:
    assert route_of(tier="pro") == ("default", ["openai-images", "gemini"])  # local can't do prompt-guided edits


features = st.builds(
    Features,
    has_mask=st.booleans(),
    mask_coverage=st.floats(0, 1),
    mode=st.sampled_from(["inpaint", "variation", "outpaint"]),
    removal=st.booleans(),
    tier=st.sampled_from(["standard", "pro"]),
    quality=st.sampled_from(["draft", "final"]),
    long_edge=st.integers(16, 8192),
    n=st.integers(1, 10),
    n_refs=st.integers(0, 16),
    text_in_output=st.booleans(),
    transparent=st.booleans(),
    session_provider=st.sampled_from([None, "openai-responses", "gemini", "local"]),
    requested_provider=st.sampled_from([None, None, "gemini", "local", "openai-images", "nope"]),
)


@settings(max_examples=1500, deadline=None)
@given(f=features, forced=st.sampled_from([None, "auto", "gemini", "local", "openai-responses"]),
       healthy=st.dictionaries(st.sampled_from(list(CAPS)), st.booleans()))  # fmt: skip
def test_a_decision_is_always_a_capable_candidate_or_a_clear_refusal(f: Features, forced: str | None,
                                                                    healthy: dict[str, bool]) -> None:  # fmt: skip
    d = decide(f, DEFAULT, forced_provider=forced, capabilities=CAPS, health=healthy)
    if d.candidates:
        assert d.refusal is None
        for c in d.candidates:
            assert missing_capabilities(CAPS[c.provider], f) == [] and healthy.get(c.provider, True)
    else:
        assert d.refusal is not None and d.refusal.status in (422, 503) and d.dropped
        assert all(reason for dropped in d.dropped for reason in dropped.reasons)


ARMS = [{"name": "gemini", "weight": 70, "route": "gemini"}, {"name": "openai", "weight": 30, "route": "openai-images"}]
EXPERIMENT = Experiment.model_validate({"name": "gemini-vs-openai", "sticky_by": "tenant", "arms": ARMS})


def test_arms_split_within_two_points_of_their_weights() -> None:
    counts = Counter(assign_arm(EXPERIMENT, f"tenant-{i}") for i in range(10_000))
    assert abs(counts["gemini"] / 10_000 - 0.70) <= 0.02 and abs(counts["openai"] / 10_000 - 0.30) <= 0.02


def test_holdout_share_is_kept_out() -> None:
    held = EXPERIMENT.model_copy(update={"holdout": 0.1})
    counts = Counter(assign_arm(held, f"k{i}") for i in range(10_000))
    assert abs(counts["holdout"] / 10_000 - 0.10) <= 0.02


@settings(max_examples=300, deadline=None)
@given(key=st.text(min_size=1, max_size=40))
def test_assignment_never_changes_for_the_same_key_and_policy(key: str) -> None:
    reparsed = Experiment.model_validate(EXPERIMENT.model_dump())
    assert assign_arm(EXPERIMENT, key) == assign_arm(EXPERIMENT, key) == assign_arm(reparsed, key)


def _with(**extra: object):
    data = {**DEFAULT.model_dump(exclude={"digest"}), **extra}
    return parse_policy(__import__("yaml").safe_dump(data))


def test_experiment_arm_replaces_the_rule_route_and_is_reported() -> None:
    policy = _with(experiments=[{**EXPERIMENT.model_dump(), "applies_to_rules": ["standard-tier"]}])
    d = decide(Features(**PLAIN), policy, forced_provider=None, capabilities=CAPS, keys={"tenant": "acme"})
    assert d.experiment == "gemini-vs-openai" and d.arm == assign_arm(EXPERIMENT, "acme")
    assert d.candidates[0].provider == {"gemini": "gemini", "openai": "openai-images"}[d.arm]
    pro = decide(Features(**{**PLAIN, "tier": "pro"}), policy, forced_provider=None, capabilities=CAPS,
                 keys={"tenant": "acme"})  # fmt: skip
    assert pro.experiment is None, "the experiment only applies to its rules"


@pytest.mark.parametrize(
    ("on_exceed", "spent", "expect"),
    [
        ("reject", 0.95, ("reject", 402)),
        ("downgrade", 0.95, ("downgrade", "local")),
        ("downgrade", 0.1, ("within", "gemini")),
    ],
)
def test_budgets(on_exceed: str, spent: float, expect: tuple) -> None:
    policy = _with(budgets={"tenants": {"acme": 1.0}, "on_exceed": on_exceed})
    f = Features(**{**PLAIN, "has_mask": True, "removal": True, "text_in_output": True, "tenant": "acme"})
    estimates = {"gemini": 0.07, "openai-images": 0.14, "openai-responses": 0.14, "local": 0.0}
    d = decide(f, policy, forced_provider=None, capabilities=CAPS, estimates=estimates, spent_today_usd=spent)
    assert d.budget is not None and d.budget.action == expect[0]
    if expect[0] == "reject":
        assert d.refusal is not None and d.refusal.status == 402 and "resets" in d.refusal.message
    else:
        assert d.candidates[0].provider == expect[1]


def test_open_breaker_drops_the_provider() -> None:
    d = decide(Features(**{**PLAIN, "tier": "pro", "has_mask": True}), DEFAULT, forced_provider=None,
               capabilities=CAPS, health={"openai-images": False})  # fmt: skip
    assert [c.provider for c in d.candidates] == ["gemini"]
    assert d.dropped == [type(d.dropped[0])(provider="openai-images", reasons=["circuit breaker open"])]


def test_forced_provider_without_the_capability_gets_the_declared_fallback_or_a_422() -> None:
    f = Features(**{**PLAIN, "transparent": True})
    refused = decide(f, DEFAULT, forced_provider="gemini", capabilities=CAPS)
    assert refused.refusal is not None and refused.refusal.status == 422 and "transparent" in refused.refusal.message
    with_fallback = _with(forced_fallbacks=["openai-images"])
    served = decide(f, with_fallback, forced_provider="gemini", capabilities=CAPS)
    assert [c.provider for c in served.candidates] == ["openai-images"]
