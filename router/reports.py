"""Experiment reports from the ledger: per arm, and each arm against the baseline with 95% intervals.

Pure arithmetic on rows, so the API, the CLI and a test that recomputes it all agree. One unit is one
version (an edit): its attempts share an arm; it succeeded if any attempt did.

Intervals are the ones that hold for the small arms an experiment starts with: cost per edit uses
Welch's t with Welch-Satterthwaite degrees of freedom (scipy), not z = 1.96; acceptance uses
Newcombe's hybrid score interval for a difference of proportions, which stays honest at 0 % and 100 %
where the normal approximation collapses to zero width.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, PlainSerializer
from scipy import stats

CONFIDENCE = 0.95


def _rounded(digits: int) -> PlainSerializer:
    return PlainSerializer(lambda v: round(v, digits), return_type=float, when_used="json")


Usd = Annotated[float, _rounded(6)]
"""Micro-dollars: finer than any price, coarse enough to read."""
Fraction = Annotated[float, _rounded(4)]
"""Rates and their differences: a hundredth of a percentage point."""
Ms = Annotated[float, _rounded(1)]
Drift = Annotated[float, _rounded(3)]


class ArmStats(BaseModel):
    arm: str
    count: int
    succeeded: int
    success_rate: Fraction
    latency_p50_ms: Ms | None
    latency_p95_ms: Ms | None
    cost_mean_usd: Usd | None
    cost_total_usd: Usd
    feedback_count: int
    acceptance_rate: Fraction | None
    preservation_mean: Drift | None


class Difference(BaseModel):
    arm: str
    versus: str
    acceptance_diff: Fraction | None
    acceptance_ci95: tuple[Fraction, Fraction] | None
    cost_diff_usd: Usd | None
    cost_ci95: tuple[Usd, Usd] | None


class Report(BaseModel):
    experiment: str
    edits: int
    baseline: str | None
    arms: list[ArmStats]
    differences: list[Difference]


def accepted(verdict: str | None, rating: int | None) -> bool | None:
    """A verdict decides; without one, a rating of 4-5 counts as accepted and 1-3 as rejected."""
    if verdict in ("accepted", "rejected"):
        return verdict == "accepted"
    return None if rating is None else rating >= 4


def _units(attempts: Iterable[Any], feedback: Mapping[str, Any], versions: Mapping[str, Any]) -> dict[str, list[dict]]:
    by_version: dict[str, list[Any]] = defaultdict(list)
    for a in attempts:
        if a.version_id and a.arm:
            by_version[a.version_id].append(a)
    arms: dict[str, list[dict]] = defaultdict(list)
    for vid, rows in by_version.items():
        ok = [a for a in rows if a.outcome == "ok"]
        cost = sum(a.actual_usd for a in ok if a.actual_usd is not None) if ok else 0.0
        fb = feedback.get(vid)
        version = versions.get(vid)
        pres = ((version.result or {}).get("preservation") or {}).get("mean_abs_diff") if version and ok else None
        arms[rows[0].arm].append({
            "ok": bool(ok),
            "latency": ok[0].total_ms if ok and ok[0].total_ms is not None else None,
            "cost": cost,
            "accepted": accepted(fb.verdict, fb.rating) if fb else None,
            "preservation": pres,
        })  # fmt: skip
    return arms


def _stats(arm: str, units: list[dict]) -> ArmStats:
    latencies = [u["latency"] for u in units if u["latency"] is not None]
    costs = [u["cost"] for u in units if u["ok"]]
    verdicts = [u["accepted"] for u in units if u["accepted"] is not None]
    pres = [u["preservation"] for u in units if u["preservation"] is not None]
    succeeded = sum(u["ok"] for u in units)
    return ArmStats(
        arm=arm,
        count=len(units),
        succeeded=succeeded,
        success_rate=succeeded / len(units),
        latency_p50_ms=float(np.percentile(latencies, 50)) if latencies else None,
        latency_p95_ms=float(np.percentile(latencies, 95)) if latencies else None,
        cost_mean_usd=float(np.mean(costs)) if costs else None,
        cost_total_usd=float(sum(costs)),
        feedback_count=len(verdicts),
        acceptance_rate=sum(verdicts) / len(verdicts) if verdicts else None,
        preservation_mean=float(np.mean(pres)) if pres else None,
    )


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson's score interval for one proportion (scipy's, without continuity correction)."""
    ci = stats.binomtest(successes, n).proportion_ci(CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def proportion_difference(a: list[bool], b: list[bool]) -> tuple[float, tuple[float, float]] | None:
    """p(a) - p(b) with Newcombe's hybrid score interval (method 10 in R. G. Newcombe, "Interval
    estimation for the difference between independent proportions: comparison of eleven methods",
    Statistics in Medicine 17, 873-890, 1998): each arm's Wilson interval, combined. Unlike the Wald
    interval it has width at 0 % and 100 % and stays within [-1, 1]."""
    if not a or not b:
        return None
    pa, pb = sum(a) / len(a), sum(b) / len(b)
    (la, ua), (lb, ub) = wilson(sum(a), len(a)), wilson(sum(b), len(b))
    diff = pa - pb
    return diff, (diff - math.hypot(pa - la, ub - pb), diff + math.hypot(ua - pa, pb - lb))


def mean_difference(a: list[float], b: list[float]) -> tuple[float, tuple[float, float]] | None:
    """mean(a) - mean(b) with Welch's t interval: Welch-Satterthwaite degrees of freedom, scipy's t.

    The same interval as ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval()``,
    written out so that arms of (nearly) constant cost give a point instead of a precision warning.
    """
    if len(a) < 2 or len(b) < 2:
        return None
    diff = float(np.mean(a)) - float(np.mean(b))
    va, vb = float(np.var(a, ddof=1)) / len(a), float(np.var(b, ddof=1)) / len(b)
    if va + vb == 0:
        return diff, (diff, diff)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * math.sqrt(va + vb)
    return diff, (diff - half, diff + half)


def build_report(experiment: str, attempts: Iterable[Any], feedback: Mapping[str, Any],
                 versions: Mapping[str, Any]) -> Report:  # fmt: skip
    arms = _units(attempts, feedback, versions)
    names = sorted(arms)
    baseline = "primary" if "primary" in arms else (names[0] if names else None)
    differences = []
    for name in names:
        if name == baseline or baseline is None:
            continue
        base, other = arms[baseline], arms[name]
        acc = proportion_difference([u["accepted"] for u in other if u["accepted"] is not None],
                                    [u["accepted"] for u in base if u["accepted"] is not None])  # fmt: skip
        cost = mean_difference([u["cost"] for u in other if u["ok"]], [u["cost"] for u in base if u["ok"]])
        differences.append(Difference(
            arm=name, versus=baseline,
            acceptance_diff=acc[0] if acc else None, acceptance_ci95=acc[1] if acc else None,
            cost_diff_usd=cost[0] if cost else None, cost_ci95=cost[1] if cost else None,
        ))  # fmt: skip
    return Report(
        experiment=experiment,
        edits=sum(len(u) for u in arms.values()),
        baseline=baseline,
        arms=[_stats(n, arms[n]) for n in names],
        differences=differences,
    )


def render(report: Report) -> str:
    """A table a person can decide from."""

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = [f"experiment {report.experiment}: {report.edits} edits, baseline {report.baseline}", ""]
    lines.append(f"{'arm':<16}{'n':>6}{'ok%':>7}{'p50 ms':>9}{'p95 ms':>9}{'mean $':>10}{'total $':>10}"
                 f"{'accept%':>9}{'fb n':>6}{'drift':>8}")  # fmt: skip
    for a in report.arms:
        lines.append(
            f"{a.arm:<16}{a.count:>6}{a.success_rate * 100:>7.1f}{f(a.latency_p50_ms, '.0f'):>9}"
            f"{f(a.latency_p95_ms, '.0f'):>9}{f(a.cost_mean_usd, '.4f'):>10}{a.cost_total_usd:>10.4f}"
            f"{f(a.acceptance_rate and a.acceptance_rate * 100, '.1f'):>9}{a.feedback_count:>6}"
            f"{f(a.preservation_mean, '.2f'):>8}"
        )
    for d in report.differences:
        acc = "-" if d.acceptance_diff is None else (
            f"{d.acceptance_diff * 100:+.1f} pts [{d.acceptance_ci95[0] * 100:+.1f}, {d.acceptance_ci95[1] * 100:+.1f}]"  # type: ignore[index]
        )  # fmt: skip
        cost = "-" if d.cost_diff_usd is None else (
            f"{d.cost_diff_usd:+.4f} $ [{d.cost_ci95[0]:+.4f}, {d.cost_ci95[1]:+.4f}]"  # type: ignore[index]
        )  # fmt: skip
        lines.append(f"{d.arm} vs {d.versus}: acceptance {acc}; cost per edit {cost}  (95% CI)")
    return "\n".join(lines)
