"""The what-if replay's arithmetic, pure and fast: moves, totals, per rule, refusals, capability drops,
the 95 % interval, and the reading of the candidate policy and the window."""

from __future__ import annotations

import math
import statistics
from importlib import resources

import numpy as np
import pytest

from policies import Capabilities, Features, parse_policy
from policies.what_if import Moved, Observed, PastEdit, interval95, replay_all, summarize
from providers.pricing import UsageInputs, default_prices, estimate_usd
from router.errors import ApiError
from router.storage.replay import LedgerCall
from router.what_if import Pricer, observations, parse_since, read_candidate

DEFAULT_TEXT = resources.files("policies").joinpath("default.yaml").read_text()
RUNNING = parse_policy(DEFAULT_TEXT)
CAPS = {
    "local": Capabilities(prompt_guided=False, native_mask=True, variation=False, generation=False),
    "openai-images": Capabilities(native_mask=True, max_refs=15, max_n=10, transparent=True),
    "openai-responses": Capabilities(native_mask=True, max_refs=15, multi_turn=True),
    "gemini": Capabilities(max_refs=13, text_rendering=True, native_4k=True),
}
PRO_MASKED = Features(has_mask=True, mask_coverage=0.2, tier="pro", tenant="acme")
STANDARD = Features(tier="standard", tenant="acme")
TODAY = {"openai-images": 0.2, "gemini": 0.067, "local": 0.0, "openai-responses": 0.21}


def candidate(old: str, new: str) -> str:
    assert old in DEFAULT_TEXT
    return DEFAULT_TEXT.replace(old, new, 1)


PRO_TO_GEMINI = candidate(
    "    when: {tier: pro, has_mask: true}\n    route: openai-images\n    fallbacks: [gemini]",
    "    when: {tier: pro, has_mask: true}\n    route: gemini\n    fallbacks: [openai-images]",
)


def edit(features: Features, rule: str, provider: str, before: float, **kw: object) -> PastEdit:
    return PastEdit(features=features, rule=rule, provider=provider, before_usd=before, estimates=TODAY,
                    keys={"tenant": features.tenant}, **kw)  # type: ignore[arg-type]  # fmt: skip


def moved(*estimates: float) -> Moved:
    group = Moved()
    for e in estimates:
        group.add(e)
    return group


def report(edits: list[PastEdit], text: str, observed: dict[str, Observed] | None = None) -> dict:
    policy = parse_policy(text)
    return summarize(replay_all(edits, policy, CAPS), policy, observed or {})


def test_the_running_policy_replays_every_edit_unchanged_at_its_recorded_cost() -> None:
    edits = [edit(PRO_MASKED, "pro-masked", "openai-images", 0.19), edit(STANDARD, "standard-tier", "gemini", 0.07)]
    out = report(edits, DEFAULT_TEXT)
    assert (out["edits"], out["unchanged"], out["changed"], out["moves"]) == (2, 2, 0, [])
    assert out["cost"]["before_usd"] == out["cost"]["after_usd"] == 0.26
    assert out["cost"]["delta_usd"] == 0.0
    assert out["cost"]["after_interval95_usd"] == [0.26, 0.26]


def test_a_rule_moved_to_gemini_moves_its_edits_and_prices_them_at_today_s_estimate() -> None:
    edits = [edit(PRO_MASKED, "pro-masked", "openai-images", 0.19) for _ in range(3)]
    edits.append(edit(STANDARD, "standard-tier", "gemini", 0.07))
    out = report(edits, PRO_TO_GEMINI)
    assert (out["edits"], out["unchanged"], out["changed"]) == (4, 1, 3)
    assert out["moves"] == [
        {"from": {"rule": "pro-masked", "provider": "openai-images"},
         "to": {"rule": "pro-masked", "provider": "gemini"}, "count": 3}
    ]  # fmt: skip
    cost = out["cost"]
    assert cost["before_usd"] == pytest.approx(3 * 0.19 + 0.07)
    assert cost["after_usd"] == pytest.approx(3 * 0.067 + 0.07)
    assert cost["delta_usd"] == pytest.approx(cost["after_usd"] - cost["before_usd"])
    assert cost["per_rule"] == [
        {"rule": "pro-masked", "edits": 3, "before_usd": pytest.approx(0.57), "after_usd": pytest.approx(0.201)},
        {"rule": "standard-tier", "edits": 1, "before_usd": 0.07, "after_usd": 0.07},
    ]
    providers = {p["provider"]: (p["edits_before"], p["edits_after"]) for p in out["providers"]}
    assert providers == {"openai-images": (3, 0), "gemini": (1, 4)}
    assert any(note.startswith("gemini served other edits in this window") for note in out["estimates"])


def test_per_rule_totals_add_up_to_the_totals_and_follow_the_candidate_s_rule_order() -> None:
    edits = [
        edit(STANDARD, "standard-tier", "gemini", 0.07),
        edit(PRO_MASKED, "pro-masked", "openai-images", 0.2),
        edit(Features(tier="pro", tenant="acme"), "default", "openai-images", 0.25),
    ]
    out = report(edits, PRO_TO_GEMINI)
    rules = [row["rule"] for row in out["cost"]["per_rule"]]
    assert rules == ["pro-masked", "standard-tier", "default"]
    assert math.fsum(r["before_usd"] for r in out["cost"]["per_rule"]) == pytest.approx(out["cost"]["before_usd"])
    assert math.fsum(r["after_usd"] for r in out["cost"]["per_rule"]) == pytest.approx(out["cost"]["after_usd"])
    assert sum(r["edits"] for r in out["cost"]["per_rule"]) == out["edits"] == 3


def test_a_provider_that_never_served_these_edits_is_named_as_an_estimate() -> None:
    out = report([edit(PRO_MASKED, "pro-masked", "openai-images", 0.2)], PRO_TO_GEMINI)
    assert any(n.startswith("gemini never served these edits: the cost of the 1 edit(s) moved to it is today's "
                            "price table, not observed") for n in out["estimates"])  # fmt: skip


def test_a_rule_renamed_onto_the_same_provider_is_a_move_that_keeps_its_recorded_cost() -> None:
    renamed = candidate("  - name: pro-masked\n", "  - name: pro-with-mask\n")
    out = report([edit(PRO_MASKED, "pro-masked", "openai-images", 0.1834)], renamed)
    assert out["moves"][0]["to"] == {"rule": "pro-with-mask", "provider": "openai-images"}
    assert out["cost"]["after_usd"] == 0.1834 and out["cost"]["after_interval95_usd"] == [0.1834, 0.1834]


def test_refusals_and_new_capability_drops_are_counted_and_refused_edits_cost_nothing() -> None:
    transparent = Features(tier="pro", transparent=True, tenant="acme")
    to_gemini_only = candidate("default_route: openai-images\ndefault_fallbacks: [gemini, local]",
                               "default_route: gemini\ndefault_fallbacks: []")  # fmt: skip
    out = report([edit(transparent, "default", "openai-images", 0.3), edit(STANDARD, "standard-tier", "gemini", 0.07)],
                 to_gemini_only)  # fmt: skip
    assert out["refusals"] == [{"code": "no_capable_provider", "count": 1}]
    assert out["capability_drops"] == [{"capability": "transparent", "count": 1}]
    assert out["moves"] == [{"from": {"rule": "default", "provider": "openai-images"},
                             "to": {"rule": "default", "provider": None}, "count": 1}]  # fmt: skip
    assert out["cost"]["after_usd"] == 0.07
    assert any("refuses count $0" in n for n in out["estimates"])


def test_an_unchanged_route_causes_no_capability_drop() -> None:
    transparent = Features(tier="pro", transparent=True, tenant="acme")
    out = report([edit(transparent, "default", "openai-images", 0.3)], DEFAULT_TEXT)
    assert out["capability_drops"] == [] and out["changed"] == 0


def test_an_unchanged_edit_keeps_its_cost_exactly_even_when_that_cost_was_an_estimate() -> None:
    spread = {"openai-images": Observed(ratios=[0.8, 1.2, 1.0])}
    out = report([edit(PRO_MASKED, "pro-masked", "openai-images", 0.2, before_estimated=True)], DEFAULT_TEXT, spread)
    assert out["cost"]["after_usd"] == 0.2 and out["cost"]["after_interval95_usd"] == [0.2, 0.2]
    assert any(n.startswith("Some 'before' costs are the recorded estimate") for n in out["estimates"])


def test_a_move_to_a_free_provider_is_priced_and_one_to_an_unpriced_model_is_said_so() -> None:
    removal = Features(has_mask=True, removal=True, tier="standard", tenant="acme")
    to_local = report([edit(removal, "free-removal", "gemini", 0.07)], DEFAULT_TEXT)
    assert to_local["cost"]["after_usd"] == 0.0 and not any("no price" in n for n in to_local["estimates"])
    unpriced = {**TODAY, "gemini": None}
    moved = PastEdit(features=PRO_MASKED, rule="pro-masked", provider="openai-images", before_usd=0.2,
                     estimates=unpriced, keys={"tenant": "acme"})  # fmt: skip
    out = report([moved], PRO_TO_GEMINI)
    assert out["cost"]["after_usd"] == 0.0
    assert any(n.startswith("1 moved edit(s) have no price") for n in out["estimates"])


def test_interval_is_a_point_without_any_observed_spread() -> None:
    assert interval95(1.0, {"gemini": moved(0.5, 0.25)}, {}) == (1.75, 1.75)
    ones = {"gemini": Observed(ratios=[1.0, 1.0, 1.0])}
    assert interval95(1.0, {"gemini": moved(0.5, 0.25)}, ones) == (1.75, 1.75)


def test_interval_from_the_provider_s_own_ratios() -> None:
    ratios = [0.9, 1.1, 1.2, 0.8]
    mean, sd = statistics.fmean(ratios), statistics.stdev(ratios)
    variance = sd**2 * (1 + 4) + sd**2 / 4 * 3.0**2
    half = 1.959963984540054 * math.sqrt(variance)
    low, high = interval95(0.5, {"gemini": moved(1.0, 2.0)}, {"gemini": Observed(ratios=ratios)})
    assert (low, high) == pytest.approx((0.5 + 3 * mean - half, 0.5 + 3 * mean + half))


def test_a_provider_never_observed_is_centred_on_its_estimate_and_borrows_the_pooled_spread() -> None:
    pooled = [0.9, 1.1, 1.0, 1.3]
    sd = statistics.stdev(pooled)
    observed = {"openai-images": Observed(ratios=pooled[:2]), "local": Observed(ratios=pooled[2:])}
    half = 1.959963984540054 * math.sqrt(sd**2 * 4.0 + sd**2 * 4.0)
    assert interval95(0.0, {"gemini": moved(2.0)}, observed) == pytest.approx((2.0 - half, 2.0 + half))


def test_interval_never_goes_below_zero() -> None:
    low, _ = interval95(0.0, {"gemini": moved(1.0)}, {"gemini": Observed(ratios=[0.1, 3.0])})
    assert low == 0.0


def test_observed_latency_percentiles_and_failure_rate() -> None:
    ms = [100.0, 250.0, 400.0, 1000.0, 3000.0]
    calls = [LedgerCall("gemini", "ok", m, 0.067, 0.067) for m in ms]
    calls += [LedgerCall("gemini", "provider_unavailable", 5.0, 0.067, None)]
    observed = observations(calls)["gemini"]
    assert (observed.calls, observed.failures, observed.ratios) == (6, 1, [1.0] * 5)
    out = report([edit(STANDARD, "standard-tier", "gemini", 0.07)], DEFAULT_TEXT, {"gemini": observed})
    seen = out["providers"][0]["observed"]
    p95 = round(float(np.percentile(ms, 95)), 1)
    assert seen == {"edits": 6, "p50_ms": float(np.percentile(ms, 50)), "p95_ms": p95, "failure_rate": round(1 / 6, 4)}
    unseen = report([edit(PRO_MASKED, "pro-masked", "openai-images", 0.2)], DEFAULT_TEXT)["providers"][0]
    assert unseen["observed"] == {"edits": 0, "p50_ms": None, "p95_ms": None, "failure_rate": None}


def test_experiment_arms_replay_by_their_sticky_key() -> None:
    with_experiment = DEFAULT_TEXT + (
        "experiments:\n  - name: ab\n    applies_to_rules: [pro-masked]\n    sticky_by: tenant\n"
        "    arms:\n      - {name: a, weight: 1, route: gemini}\n      - {name: b, weight: 1, route: openai-images}\n"
    )
    tenants = [f"t{i}" for i in range(40)]
    edits = [edit(PRO_MASKED.model_copy(update={"tenant": t}), "pro-masked", "openai-images", 0.2) for t in tenants]
    first = report(edits, with_experiment)
    again = report(edits, with_experiment)
    assert first == again
    moved = sum(m["count"] for m in first["moves"])
    assert 0 < moved < 40, "some tenants' sticky arm is gemini, others' is openai-images"


def test_estimates_from_the_recorded_prompt_length_equal_the_price_table_s_for_the_prompt_itself() -> None:
    pricer = Pricer(RUNNING, default_prices(), CAPS)
    features = Features(has_mask=True, tier="pro", out_w=1536, out_h=1024, quality="draft", n=2)
    for prompt in ("replace the table with sand", "ersetze den Tisch durch Sand", "把桌子换成沙滩", "x" * 3001):
        usage = UsageInputs(prompt, ((1536, 1024), (512, 512)), 1536, 1024, "draft", 2, True)
        direct = {
            name: estimate_usd(name, RUNNING.providers[name].model, RUNNING.providers[name].options, usage)
            for name in CAPS
        }
        recorded = {"image_sizes": [[1536, 1024], [512, 512]], "prompt_bytes": len(prompt.encode())}
        assert pricer(recorded, features) == direct, prompt


# -- reading the request ----------------------------------------------------------------------------


def test_since_accepts_days_hours_and_iso_times() -> None:
    now = 1_800_000_000.0
    assert parse_since("7d", now) == now - 7 * 86400
    assert parse_since("12h", now) == now - 12 * 3600
    assert parse_since("2027-01-14T08:00:00Z", now) == now - 86400  # now is 2027-01-15T08:00:00Z
    assert parse_since("2027-01-14T09:00:00+01:00", now) == now - 86400


@pytest.mark.parametrize("bad", ["", "7", "7w", "0d", "-1d", "99999999d", "yesterday", "2026-01-01T00:00:00",
                                 "2099-01-01T00:00:00Z", "7" * 100000])  # fmt: skip
def test_a_bad_since_is_a_422_naming_since(bad: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_since(bad, 1_800_000_000.0)
    assert (caught.value.status, caught.value.param) == (422, "since")


def test_an_invalid_policy_is_a_422_with_its_line_and_column() -> None:
    bad = candidate("    route: openai-images\n    fallbacks: [gemini]", "    route: gemnii\n    fallbacks: [gemini]")
    with pytest.raises(ApiError) as caught:
        read_candidate(bad)
    error = caught.value
    assert (error.status, error.code, error.param) == (422, "invalid_policy", "policy")
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "gemnii" in text)
    index = next(i for i, rule in enumerate(RUNNING.rules) if rule.name == "pro-masked")
    assert f"line {line}, column 12: rules.{index}.route" in error.message and "gemnii" in error.message


@pytest.mark.parametrize(
    "hostile",
    [
        "a: &a ["
        + ",".join(["x"] * 10)
        + "]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8)),
        "a: &a [*a]\n",
        "[" * 5000 + "]" * 5000,
        "- " * 5000 + "x\n",
        "version: !!python/object:os.system x\n",
        "x" * (65 * 1024),
        "   \n",
        "- just\n- a list\n",
        "version: 1\nversion: 2\n",
        "\x00\x01binary",
    ],
    ids=[
        "alias-bomb",
        "self-alias",
        "deep",
        "deep-block",
        "python-tag",
        "huge",
        "blank",
        "list",
        "duplicate-key",
        "binary",
    ],
)
def test_a_hostile_policy_is_a_422_never_a_crash(hostile: str) -> None:
    with pytest.raises(ApiError) as caught:
        read_candidate(hostile)
    assert (caught.value.status, caught.value.code, caught.value.param) == (422, "invalid_policy", "policy")
