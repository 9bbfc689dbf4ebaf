"""The pure routing engine: rules, forced provider, capability drops, and policy validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from policies import Capabilities, Features, decide
from policies.capabilities import missing_capabilities
from policies.model import parse_policy

POLICY = parse_policy(
    """
version: t1
default_route: cheap
providers:
  cheap: {model: c-1}
  pro: {model: p-1}
  spare: {model: o-1, enabled: false}
forced_fallbacks: [cheap]
rules:
  - name: pro-masked
    when: {tier: pro, has_mask: true}
    route: pro
    fallbacks: [cheap]
  - name: big
    when: {long_edge: {gt: 3840}}
    route: spare
"""
)
CAPS = {
    "cheap": Capabilities(prompt_guided=False, max_refs=0),
    "pro": Capabilities(prompt_guided=True, max_refs=4, transparent=True),
    "spare": Capabilities(),
}


def _decide(forced: str | None = None, **f: object):
    return decide(Features(**f), POLICY, forced_provider=forced, capabilities=CAPS)


def test_first_matching_rule_wins_and_trace_explains_each_rule() -> None:
    d = _decide(tier="pro", has_mask=True, removal=True)
    assert d.rule == "pro-masked"
    assert [c.provider for c in d.candidates] == ["pro", "cheap"]
    assert d.trace[0].matched and d.policy_digest == POLICY.digest and d.policy_version == POLICY.version


def test_a_near_miss_falls_through_with_the_failing_condition_named() -> None:
    d = _decide(tier="pro", has_mask=False, removal=True)
    assert d.rule == "default"
    assert not d.trace[0].matched and "has_mask" in d.trace[0].why


def test_incapable_and_disabled_candidates_are_dropped_with_reasons() -> None:
    d = _decide(tier="pro", has_mask=True, removal=False, n_refs=2)
    assert [c.provider for c in d.candidates] == ["pro"]
    assert d.dropped[0].provider == "cheap" and any("prompt_guided" in r for r in d.dropped[0].reasons)
    d = _decide(long_edge=4000, has_mask=True, removal=True)
    assert d.refused and d.dropped[0].reasons == ["disabled by policy"]


def test_forced_provider_overrides_rules_and_uses_declared_fallback() -> None:
    d = _decide("pro", tier="pro", has_mask=True, removal=True)
    assert d.rule == "env.IMAGE_EDIT_PROVIDER" and d.candidates[0].provider == "pro"
    d = _decide("cheap", transparent=True, has_mask=True, removal=True)
    assert d.refused and "transparent" in d.dropped[0].reasons[0]
    d = _decide("auto", has_mask=True, removal=True)
    assert d.rule == "default"


def test_request_provider_and_unknown_names() -> None:
    d = _decide(requested_provider="nope")
    assert d.refused and d.dropped[0].reasons == ["not configured on this gateway"]


@pytest.mark.parametrize(
    ("features", "missing"),
    [
        ({"mode": "variation"}, "variation"),
        ({"has_mask": False}, "prompt_guided"),
        ({"has_mask": True, "removal": False}, "prompt_guided"),
        ({"has_mask": True, "removal": True, "n": 2}, "n"),
        ({"has_mask": True, "removal": True, "transparent": True}, "transparent"),
    ],
)
def test_missing_capabilities(features: dict, missing: str) -> None:
    caps = Capabilities(prompt_guided=False, variation=False)
    assert missing_capabilities(caps, Features(**features))[0].startswith(missing)
    assert missing_capabilities(caps, Features(has_mask=True, removal=True)) == []


BASE = "version: x\ndefault_route: a\nproviders: {a: {model: m}}\n"


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ("version: x\ndefault_route: a\nproviders: {}\n", "provider 'a'"),
        (
            BASE + "rules: [{name: r, when: {colour: red}, route: a}]",
            "colour",
        ),
        (
            BASE + "rules: [{name: r, when: {n: {approx: 1}}, route: a}]",
            "approx",
        ),
        ("- just a list", "mapping"),
    ],
)
def test_invalid_policies_are_refused_at_load(doc: str, needle: str) -> None:
    with pytest.raises((ValidationError, ValueError)) as err:
        parse_policy(doc)
    assert needle in str(err.value)


def test_packaged_default_policy_loads() -> None:
    from importlib import resources

    policy = parse_policy(resources.files("policies").joinpath("default.yaml").read_text())
    assert policy.default_route in policy.providers
