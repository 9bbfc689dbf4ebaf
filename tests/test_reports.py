"""Experiment report intervals against published worked examples, and the rounding of what it prints."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from scipy import stats

from router.reports import Report, build_report


def _report(arms: dict[str, list[tuple[float, bool | None]]]) -> Report:
    """Ledger-shaped rows: per arm, one successful edit per (cost, accepted) pair."""
    attempts, feedback = [], {}
    for arm, units in arms.items():
        for i, (cost, verdict) in enumerate(units):
            vid = f"{arm}-{i}"
            attempts.append(SimpleNamespace(version_id=vid, arm=arm, outcome="ok", actual_usd=cost, total_ms=1000.0))
            if verdict is not None:
                feedback[vid] = SimpleNamespace(verdict="accepted" if verdict else "rejected", rating=None)
    return build_report("e", attempts, feedback, {})


def _acceptance(successes: int, n: int) -> list[tuple[float, bool]]:
    return [(0.04, i < successes) for i in range(n)]


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score, no correction).
NEWCOMBE = [
    ((56, 70), (48, 80), (0.0524, 0.3339)),
    ((9, 10), (3, 10), (0.1705, 0.8090)),
    ((6, 7), (2, 7), (0.0582, 0.8062)),
    ((5, 56), (0, 29), (-0.0381, 0.1926)),
    ((0, 10), (0, 20), (-0.1611, 0.2775)),
    ((0, 10), (0, 10), (-0.2775, 0.2775)),
    ((10, 10), (0, 20), (0.6791, 1.0000)),
    ((10, 10), (0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("arm", "baseline", "published"), NEWCOMBE)
def test_acceptance_interval_is_newcombes_hybrid_score(
    arm: tuple[int, int], baseline: tuple[int, int], published: tuple[float, float]
) -> None:
    report = _report({"primary": _acceptance(*baseline), "treatment": _acceptance(*arm)})
    (diff,) = report.differences
    assert diff.acceptance_diff == pytest.approx(arm[0] / arm[1] - baseline[0] / baseline[1])
    assert diff.acceptance_ci95 == pytest.approx(published, abs=5e-5)


def test_acceptance_interval_has_width_at_zero_and_hundred_percent() -> None:
    report = _report({"primary": _acceptance(3, 3), "treatment": _acceptance(0, 3)})
    lo, hi = report.differences[0].acceptance_ci95
    assert lo == pytest.approx(-1) and hi > -0.4, "3 edits per arm cannot pin a difference of -100 points"


# Welch's t-test, example 1 of its Wikipedia article: t = -2.46, df = 25.0, p = 0.021.
WELCH_A = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
WELCH_B = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_cost_interval_is_welchs_t_with_satterthwaite_df() -> None:
    report = _report({"primary": [(c, None) for c in WELCH_B], "treatment": [(c, None) for c in WELCH_A]})
    (diff,) = report.differences
    lo, hi = diff.cost_ci95
    mean = sum(WELCH_A) / 15 - sum(WELCH_B) / 15
    assert diff.cost_diff_usd == pytest.approx(mean)
    # The published t and df give the interval: mean +- t_{0.975, 25} * (mean / t).
    half = stats.t.ppf(0.975, 25.0) * abs(mean / -2.46)
    assert (lo + hi) / 2 == pytest.approx(mean) and (hi - lo) / 2 == pytest.approx(half, rel=5e-3)
    exact = stats.ttest_ind(WELCH_A, WELCH_B, equal_var=False).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((exact.low, exact.high))


def test_three_edits_per_arm_widen_the_cost_interval_by_t_not_z() -> None:
    a, b = [0.10, 0.12, 0.17], [0.04, 0.05, 0.04]
    report = _report({"primary": [(c, None) for c in b], "treatment": [(c, None) for c in a]})
    lo, hi = report.differences[0].cost_ci95
    se = (stats.tvar(a) / 3 + stats.tvar(b) / 3) ** 0.5
    multiplier = (hi - lo) / 2 / se
    assert 2.7 < multiplier < 4.4, f"Welch's t for about 2-4 degrees of freedom, not 1.96 (got {multiplier:.2f})"


def test_constant_costs_give_a_point_interval_without_warnings() -> None:
    report = _report({"primary": [(0.04, None)] * 4, "treatment": [(0.17, None)] * 5})
    assert report.differences[0].cost_ci95 == pytest.approx((0.13, 0.13))


def test_json_report_is_rounded() -> None:
    report = _report({"primary": [(c / 7, None) for c in WELCH_B], "treatment": [(c / 7, True) for c in WELCH_A]})
    printed = report.model_dump_json()
    decimals = [len(m) for m in re.findall(r"\.(\d+)", printed)]
    assert decimals and max(decimals) <= 6, printed
    body = json.loads(printed)
    assert body["arms"][0]["cost_mean_usd"] == round(sum(WELCH_B) / 7 / 15, 6)
    assert report.arms[0].cost_mean_usd != body["arms"][0]["cost_mean_usd"], "only what is printed is rounded"
