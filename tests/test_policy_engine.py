"""The pure routing engine: rules, forced provider, capability drops, and policy validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from policies import Capabilities, Features, decide
from policies.capabilities import missing_capabilities
from policies.model import PolicyError, parse_policy

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


MODEL_POLICY = parse_policy(
    """
version: t2
default_route: images
default_fallbacks: [other]
providers:
  images: {model: img-2}
  other: {model: o-1}
rules:
  - name: newer
    when: {model_specific: true}
    route: images/img-2.5
    fallbacks: [images/img-2.6, other]
  - name: pro
    when: {tier: pro}
    route: images/img-2.6
    fallbacks: [images]
"""
)
MODEL_CAPS = {"images": Capabilities(prompt_guided=True), "other": Capabilities(prompt_guided=True)}
ACCEPTS = {"images/img-2": frozenset(), "images/img-2.5": frozenset({"markup", "quality=xhigh"}),
           "images/img-2.6": frozenset({"complexity"}), "other/o-1": frozenset()}  # fmt: skip


def test_a_route_can_name_provider_and_model() -> None:
    d = decide(Features(tier="pro"), MODEL_POLICY, forced_provider=None, capabilities=MODEL_CAPS, accepts=ACCEPTS,
               estimates={"images": 0.2, "images/img-2.6": 0.3})  # fmt: skip
    assert d.rule == "pro"
    assert [(c.provider, c.model, c.estimate_usd) for c in d.candidates] == [
        ("images", "img-2.6", 0.3), ("images", "img-2", 0.2)]  # fmt: skip
    assert [c.target for c in d.candidates] == ["images/img-2.6", "images"]


def test_models_that_do_not_take_a_parameter_are_dropped_by_name() -> None:
    f = Features(needs=("markup",), model_specific=True)
    d = decide(f, MODEL_POLICY, forced_provider=None, capabilities=MODEL_CAPS, accepts=ACCEPTS)
    assert d.rule == "newer" and [(c.provider, c.model) for c in d.candidates] == [("images", "img-2.5")]
    assert {x.provider: x.reasons for x in d.dropped} == {
        "images/img-2.6": ["img-2.6 does not take markup"], "other": ["o-1 does not take markup"]}  # fmt: skip
    refused = decide(Features(needs=("markup",), requested_provider="images", requested_model="img-2.6"),
                     MODEL_POLICY, forced_provider=None, capabilities=MODEL_CAPS, accepts=ACCEPTS)  # fmt: skip
    assert refused.refusal is not None and refused.refusal.param == "markup"
    assert "img-2.6 does not take markup" in refused.refusal.message


def test_a_route_naming_an_unknown_provider_with_a_model_is_refused_at_load() -> None:
    with pytest.raises(PolicyError, match="gemnii"):
        parse_policy("version: t\ndefault_route: gemnii/g-1\nproviders: {images: {model: m}}\n")
